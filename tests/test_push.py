"""factory push against a fake Hub on loopback: files and card arrive, errors are one line, and the
token is in no file, log or card."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import fake_recipe_text, run_cli
from fake_hub import FakeHub, card_errors

TOKEN = "hf_fakeTOKEN0123456789abcdefSECRET"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("push")
    (tmp / "recipe.yaml").write_text(fake_recipe_text())
    env = {**os.environ, "FACTORY_CACHE_DIR": str(tmp / "cache")}
    result = run_cli("build", str(tmp / "recipe.yaml"), "--output", str(tmp / "out"), env=env)
    assert result.returncode == 0, result.stderr
    return tmp / "out"


def hub_env(tmp_path: Path, hub: FakeHub, token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", FACTORY_CACHE_DIR=str(tmp_path / "cache"))
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def test_push_uploads_the_dataset_its_card_and_rejects(built, tmp_path):
    with FakeHub(TOKEN) as hub:
        result = run_cli("push", str(built), "--repo", "alice/pairs", "--private", "--rejects",
                         env=hub_env(tmp_path, hub))
        assert result.returncode == 0, result.stderr
        again = run_cli("push", str(built), "--repo", "alice/pairs", env=hub_env(tmp_path, hub))
        assert again.returncode == 0, again.stderr  # an existing repo takes a new commit
        assert "(existing repo)" in again.stdout
    repo = hub.repos["alice/pairs"]
    assert repo.private and len(repo.commits) == 2
    names = ["README.md", "dpo.parquet", "sft.parquet", "stats.json", "rejects.jsonl"]
    assert sorted(repo.files) == sorted(names)
    assert all(repo.files[n] == (built / n).read_bytes() for n in names)
    puts = [path for method, path, _ in hub.seen if method == "PUT"]
    assert len(puts) == 2  # the two parquet files went by LFS, once: the second push found them there
    assert result.stdout.strip().splitlines()[-1].startswith(
        f"pushed 5 files ({sum(len(repo.files[n]) for n in names) / 1024:.1f} KiB: README.md, dpo.parquet, "
        f"sft.parquet, stats.json, rejects.jsonl) to {hub.url}/datasets/alice/pairs (private), commit ")

    # the card's header is what the Hub reads: configs that load, one per split
    from huggingface_hub import DatasetCard

    card = DatasetCard(repo.files["README.md"].decode())
    configs = {c["config_name"]: c["data_files"] for c in card.data.to_dict()["configs"]}
    assert configs == {"dpo": [{"split": "train", "path": "dpo.parquet"}],
                       "sft": [{"split": "train", "path": "sft.parquet"}]}
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    for name, data in repo.files.items():
        (pulled / name).write_bytes(data)
    import datasets

    stats = json.loads((built / "stats.json").read_text())
    assert len(datasets.load_dataset(str(pulled), "dpo")["train"]) == stats["splits"]["dpo"]["rows"]

    # the token: in the Authorization header of API calls only; in no output and no file
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for m, p, h in hub.seen if p.startswith("/api/"))
    assert not any(TOKEN in json.dumps(h) for m, p, h in hub.seen if p.startswith("/lfs/"))
    assert TOKEN not in result.stdout + result.stderr + again.stdout + again.stderr
    written = [p for p in [*tmp_path.rglob("*"), *built.parent.rglob("*")] if p.is_file()]
    assert written and not [p for p in written if TOKEN.encode() in p.read_bytes()]
    assert not any(TOKEN.encode() in data for data in repo.files.values())


def test_push_errors_are_one_line(built, tmp_path):
    with FakeHub(TOKEN) as hub:
        stored = tmp_path / "hf" / "token"  # a stored login is not used: the token comes from HF_TOKEN only
        stored.parent.mkdir(parents=True)
        stored.write_text(TOKEN)
        no_token = hub_env(tmp_path, hub, token=None)
        cases = [(("--repo", "alice/pairs"), no_token, 2, "no Hugging Face token: set HF_TOKEN in the env"),
                 (("--repo", "pairs"), hub_env(tmp_path, hub), 2, "--repo 'pairs': give OWNER/NAME"),
                 (("--repo", "alice/pairs/x"), hub_env(tmp_path, hub), 2, "give OWNER/NAME"),
                 (("--repo", "alice/pa irs"), hub_env(tmp_path, hub), 2, "give OWNER/NAME"),
                 (("--repo", "-alice/pairs"), hub_env(tmp_path, hub), 2, "give OWNER/NAME")]
        for args, env, code, message in cases:
            result = run_cli("push", str(built), *args, env=env)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == code and len(lines) == 1, (args, result.stderr)
            assert message in lines[0], (args, lines[0])
        assert hub.seen == []  # nothing was sent
        result = run_cli("push", str(built), "--repo", "alice/pairs", env=hub_env(tmp_path, hub, "hf_wrong"))
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "the Hub refused the push (401)" in result.stderr and "hf_wrong" not in result.stderr
        assert hub.repos == {}


def test_a_card_the_hub_would_refuse_is_caught_before_upload(built, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in built.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    readme = (copy / "README.md").read_text()
    assert card_errors(readme) == []  # the fake's check passes factory's card...
    bad = readme.replace("- n<1K", "- tiny")
    assert card_errors(bad) == ["\"size_categories\" must be one of the Hub's values, not 'tiny'"]  # not this
    (copy / "README.md").write_text(bad)
    with FakeHub(TOKEN) as hub:
        result = run_cli("push", str(copy), "--repo", "alice/pairs", env=hub_env(tmp_path, hub))
    assert result.returncode == 1, result.stderr
    assert "size_categories: 'tiny' is not one of the Hub's values" in result.stderr
    assert hub.seen == []


def test_a_dataset_waiting_for_review_is_not_pushed(built, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in built.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    stats = json.loads((copy / "stats.json").read_text())
    (copy / "stats.json").write_text(json.dumps({**stats, "review": {"status": "pending"}}))
    with FakeHub(TOKEN) as hub:
        result = run_cli("push", str(copy), "--repo", "alice/pairs", env=hub_env(tmp_path, hub))
    assert result.returncode == 2 and "its human review is pending" in result.stderr, result.stderr
    assert hub.seen == []
