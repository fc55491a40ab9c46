"""factory review in headless Chromium: rows reviewed by keyboard, the server killed (-9) mid-review
and restarted, and every verdict still there; the page's screenshot at a laptop's size is kept."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from browser import chromium_driver
from conftest import ROOT, read_jsonl, run_cli
from filters.review_store import read_verdicts
from test_review_gate import gate_recipe

ARTIFACTS = Path(os.environ.get("FACTORY_TEST_ARTIFACTS") or ROOT / "test-artifacts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(folder: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "review", str(folder), "--port", str(port)],
                            stdout=log.open("a"), stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/queue", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"review app did not start: {log.read_text()}")


def wait_for(driver, script: str, expected, timeout: float = 20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value == expected:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{script} stayed {value!r}, expected {expected!r}")


def keys(driver, *sequence) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    for item in sequence:
        if isinstance(item, tuple):  # (modifier, key)
            chain.key_down(item[0]).send_keys(item[1]).key_up(item[0])
        else:
            chain.send_keys(item)
    chain.perform()
    time.sleep(0.15)


CURRENT = "return document.getElementById('row-title') && +document.getElementById('row-title').dataset.index"
PENDING = "return document.getElementById('status').dataset.pending"


def test_review_by_keyboard_survives_a_killed_server(write_recipe, tmp_path, cache_env):
    from selenium.webdriver.common.keys import Keys

    recipe = write_recipe(gate_recipe())
    out = tmp_path / "out"
    assert run_cli("build", str(recipe), "--output", str(out), env=cache_env).returncode == 6
    rows = json.loads((out / "review_queue.json").read_text())["rows"]
    port, log = free_port(), tmp_path / "app.log"
    url = f"http://127.0.0.1:{port}/"
    app = start_app(out, port, log)
    driver = chromium_driver()
    try:
        driver.set_window_size(1366, 768)
        driver.get(url)
        wait_for(driver, "return document.getElementById('namebox').classList.contains('open')", True)
        keys(driver, "alice", Keys.ENTER)  # no --reviewer: the page asks for a name
        wait_for(driver, CURRENT, 0)
        keys(driver, "k")  # row 1 kept
        keys(driver, "d", "1", Keys.ENTER)  # row 2 dropped with preset reason 1
        keys(driver, "e", (Keys.CONTROL, "a"), "Edited by a person.", (Keys.CONTROL, Keys.ENTER))  # row 3
        keys(driver, "d", Keys.ENTER)  # a drop without a reason is refused on the page
        assert driver.find_element("id", "message").text == "a drop needs a reason"
        keys(driver, Keys.ESCAPE, "k")  # row 4 kept
        wait_for(driver, PENDING, "0")
        given = {v.id: v for v in read_verdicts(out / "reviews.jsonl")}
        assert [given[r["id"]].verdict for r in rows[:4]] == ["keep", "drop", "edit", "keep"]
        assert given[rows[1]["id"]].reason == "wrong or inaccurate"
        assert given[rows[2]["id"]].edits == {"chosen": "Edited by a person."}

        app.send_signal(signal.SIGKILL)  # mid-review: the page does not know yet
        app.wait(10)
        keys(driver, "k")  # row 5: cannot be saved now
        keys(driver, "d", "hallucinated figures", Keys.ENTER)  # row 6
        wait_for(driver, PENDING, "2")
        assert "server unreachable" in driver.find_element("id", "status").text
        app = start_app(out, port, log)  # same port: the open page sends what it kept
        wait_for(driver, PENDING, "0", timeout=30)
        outage = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert outage and all("ERR_CONNECTION_REFUSED" in m for m in outage), outage  # only while it was down

        driver.get(url)  # a fresh page resumes at the first row without a verdict
        wait_for(driver, CURRENT, 6)
        marks = driver.execute_script(
            "return [...document.querySelectorAll('#list li')].map(li => li.dataset.verdict)")
        assert marks[:6] == ["keep", "drop", "edit", "keep", "keep", "drop"] and marks[6:] == [""] * 4
        given = {v.id: v for v in read_verdicts(out / "reviews.jsonl")}
        assert len(given) == 6 and given[rows[5]["id"]].reason == "hallucinated figures"

        app.send_signal(signal.SIGKILL)  # down again; this time the tab is closed before it is back
        app.wait(10)
        keys(driver, "k")  # row 7
        wait_for(driver, PENDING, "1")
        driver.get("about:blank")
        app = start_app(out, port, log)
        driver.get(url)  # the verdict the closed tab could not send is sent now
        wait_for(driver, PENDING, "0", timeout=30)
        wait_for(driver, CURRENT, 7)
        assert len(read_verdicts(out / "reviews.jsonl")) == 7
        driver.get_log("browser")  # the connection errors of the second outage

        ARTIFACTS.mkdir(parents=True, exist_ok=True)  # a QC-dropped borderline row is the busiest page
        dropped = next(i for i, r in enumerate(rows) if not r["shipped"])
        driver.execute_script(f"S.index = {dropped}; render();")
        keys(driver, "d")
        shot = ARTIFACTS / "review_app_1366x768.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
        keys(driver, Keys.ESCAPE, "u")
        for _ in range(len(rows) - 7):
            keys(driver, "k")
        wait_for(driver, PENDING, "0")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
        app.send_signal(signal.SIGINT)
        app.wait(10)
    assert "stopped; reviewed: alice 10/10" in log.read_text()
    assert all(v.reviewer == "alice" for v in read_verdicts(out / "reviews.jsonl"))

    result = run_cli("build", str(recipe), "--output", str(out), env=cache_env)
    assert result.returncode == 0, result.stderr
    dropped_ids = {r["id"] for r in read_jsonl(out / "rejects.jsonl") if r["reason"] == "human_review"}
    assert dropped_ids == {rows[1]["id"], rows[5]["id"]}  # row 5 was given while the server was down
    assert any(r["chosen"][0]["content"] == "Edited by a person." for r in read_jsonl(out / "dpo.jsonl"))


def test_the_app_refuses_other_sites_and_bad_verdicts(write_recipe, tmp_path, cache_env):
    import urllib.error

    recipe = write_recipe(gate_recipe())
    out = tmp_path / "out"
    assert run_cli("build", str(recipe), "--output", str(out), env=cache_env).returncode == 6
    rid = json.loads((out / "review_queue.json").read_text())["rows"][0]["id"]
    port = free_port()
    app = start_app(out, port, tmp_path / "app.log")

    def post(verdict: dict, **headers: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/verdict", json.dumps(verdict).encode(),
                                         method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as refused:
            return refused.code

    good = {"id": rid, "reviewer": "mallory", "verdict": "keep"}
    try:
        assert post(good, Host="evil.example") == 403  # DNS rebinding
        assert post(good, Origin="http://evil.example") == 403  # another site's script
        assert post(good, **{"Content-Type": "text/plain"}) == 415  # another site's form
        assert post({**good, "id": "not-in-queue"}) == 400
        assert post({**good, "verdict": "edit", "edits": {"rejected": "x"}}) == 400  # not editable
        assert post({**good, "verdict": "maybe"}) == 400
        assert post(good, Origin=f"http://127.0.0.1:{port}") == 200  # the page's own request
    finally:
        app.send_signal(signal.SIGINT)
        app.wait(10)
    assert [v.reviewer for v in read_verdicts(out / "reviews.jsonl")] == ["mallory"]
