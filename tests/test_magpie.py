"""Magpie: the instruction request holds only the chat template's pre-query prefix, as a raw prompt,
on every backend that takes one; a chat-only API is a recipe error before any call."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import read_jsonl, run_cli
from factory.build import run_build
from factory.engine.plan import BuildOptions, plan_build
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.backends.fake_api import FakeServer
from factory.llm.request import Request, SamplingParams, request_key

CHATML_JINJA = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

RECIPE = """name: magpie
samplers:
  count: 6
  columns:
    - {{name: topic, type: category, values: [gardening, tax forms, chess]}}
backend:
  name: {backend}
  model: served
  params: {{max_tokens: 30}}
  options: {options}
steps:
  - name: draw
    kind: magpie
    reads: [topic]
    writes: [instruction, response]
    system: "You help people with {{topic}}."
    params: {{temperature: 1.0}}
outputs:
  splits:
    sft: {{format: sft, prompt: instruction, completion: response}}
"""


def prefix(system: str) -> str:
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"


class Recording(FakeBackend):
    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.seen: list[Request] = []

    async def generate(self, requests: list[Request]) -> list:
        self.seen.extend(requests)
        return await super().generate(requests)


def test_the_instruction_request_is_only_the_prefix(tmp_path, write_recipe):
    options = {"rules": [{"match": r"<\|im_start\|>user\n$", "reply": "How do I start {hash}?"}]}
    recipe = write_recipe(RECIPE.format(backend="fake", options=json.dumps(options)))
    fake = Recording(BackendSettings("served", 8, options))
    opts = BuildOptions(output=tmp_path / "out", cache_path=tmp_path / "c.sqlite")
    plan = plan_build(recipe, opts)
    topics = [r.fields["topic"] for r in plan.seed_records()]
    asyncio.run(run_build(plan, opts, backends={"default": fake}))
    raw = [r for r in fake.seen if r.raw is not None]
    chats = [r for r in fake.seen if r.raw is None]
    assert len(raw) == len(chats) == 6
    assert all(r.messages == () for r in raw)
    assert sorted(r.raw for r in raw) == sorted(prefix(f"You help people with {t}.") for t in topics)
    assert len({r.sample_index for r in raw}) == 6  # one draw per record, even for the same prefix
    rows = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert len(rows) == 6
    instructions = {row["messages"][0]["content"] for row in rows}
    assert all(i.startswith("How do I start ") for i in instructions) and len(instructions) == 6
    # the answer is an ordinary chat: the same system turn, the drawn instruction as the user turn
    assert {(c.messages[1][1]) for c in chats} == instructions
    assert sorted(prefix(c.messages[0][1]) for c in chats) == sorted(r.raw for r in raw)
    assert all(c.messages[0][0] == "system" and len(c.messages) == 2 for c in chats)


def test_magpie_on_a_completions_server(tmp_path, cache_env):
    with FakeServer() as server:
        options = {"base_url": server.base_url + "/v1", "chat_template": CHATML_JINJA, "timeout": 5}
        recipe = tmp_path / "r.yaml"
        recipe.write_text(RECIPE.format(backend="openai_compatible", options=json.dumps(options)))
        done = run_cli("build", str(recipe), "--output", str(tmp_path / "a"), env=cache_env)
        assert done.returncode == 0, done.stdout + done.stderr
        bodies = list(server.received)
        assert len(bodies) == 6 and all("messages" not in b for b in bodies)
        assert {b["prompt"] for b in bodies} <= {prefix(f"You help people with {t}.")
                                                for t in ("gardening", "tax forms", "chess")}
        rows = read_jsonl(tmp_path / "a" / "sft.jsonl")
        assert len(rows) == 6 and all(r["messages"][0]["content"].startswith("completion of:") for r in rows)
        again = run_cli("build", str(recipe), "--output", str(tmp_path / "b"), env=cache_env)
        assert again.returncode == 0 and len(server.received) == 6  # the rebuild called nothing
        assert (tmp_path / "a" / "sft.parquet").read_bytes() == (tmp_path / "b" / "sft.parquet").read_bytes()


def test_chat_only_api_is_a_recipe_error(tmp_path, cache_env):
    recipe = tmp_path / "r.yaml"
    text = RECIPE.format(backend="anthropic", options="{}")
    recipe.write_text(text)
    done = run_cli("validate", str(recipe), env=cache_env)
    said = (done.stdout + done.stderr).strip()
    line = [i for i, x in enumerate(text.splitlines(), 1) if "kind: magpie" in x][0]
    assert done.returncode == 2 and len(said.splitlines()) == 1, said
    assert said.startswith(f"error: {recipe}:{line}: steps[0].kind: magpie sends a raw prompt")
    assert "the anthropic backend takes chat messages only" in said


def test_a_server_without_a_template_is_refused_before_any_call(tmp_path, cache_env):
    with FakeServer() as server:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(RECIPE.format(backend="openai_compatible",
                                        options=json.dumps({"base_url": server.base_url + "/v1"})))
        done = run_cli("build", str(recipe), env=cache_env)
        said = (done.stdout + done.stderr).strip()
        assert done.returncode == 2, said
        assert "set options.chat_template; give the step a 'pre_query'" in said
        assert server.counts["requests"] == 0


def test_llama_cpp_prefix_comes_from_the_gguf_template_without_loading_weights():
    from factory.llm.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(BackendSettings("embedded", 1, {"n_threads": 1}))
    assert backend.pre_query_prefix("Be brief.") == prefix("Be brief.")
    default = backend.pre_query_prefix(None)  # SmolLM2's template writes its own system turn
    assert default.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert default.endswith("<|im_end|>\n<|im_start|>user\n") and backend._model is None


def test_transformers_sends_a_raw_prompt_as_is(tmp_path):
    pytest.importorskip("transformers")
    from factory.llm.backends.transformers_backend import TransformersBackend
    from tiny_model import build_tiny_llama

    folder = build_tiny_llama(tmp_path / "tiny")
    backend = TransformersBackend(BackendSettings(str(folder), 2, {}))
    text = backend.pre_query_prefix("Be brief.")
    assert text == prefix("Be brief.") and backend._model is None
    params = SamplingParams(temperature=0.0, max_tokens=3)

    async def both() -> list:
        try:
            return await backend.generate([Request.text(text, params),
                                           Request.chat([{"role": "user", "content": "hi"}], params)])
        finally:
            await backend.close()

    raw, chat = asyncio.run(both())
    assert raw.error is None and chat.error is None
    assert raw.prompt_tokens == len(backend.tokenizer(text, add_special_tokens=False).input_ids)
    assert chat.prompt_tokens == len(backend._prompt_ids([{"role": "user", "content": "hi"}]))


def test_raw_requests_have_their_own_cache_keys_and_chat_keys_did_not_move():
    params = SamplingParams()
    chat = Request.chat([{"role": "user", "content": "hi"}], params)
    before = json.dumps([params.canonical, chat.messages, 0, False, None])  # the key before raw prompts
    assert chat.canonical == before
    raw = Request.text("hi", params)
    assert request_key("b", "m", raw) != request_key("b", "m", chat)
    assert request_key("b", "m", raw) != request_key("b", "m", Request.text("hi ", params))
    assert raw.prompt_hash() != chat.prompt_hash()


@pytest.mark.slow
def test_magpie_on_the_embedded_model(tmp_path, cache_env):
    """Accounting only: what a 135M model writes differs across machines."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(backend="llama_cpp", options=json.dumps({"n_threads": 2}))
                      .replace("model: served", "model: embedded").replace("count: 6", "count: 3"))
    done = run_cli("build", str(recipe), "--output", str(tmp_path / "o"), env=cache_env)
    assert done.returncode == 0, done.stdout + done.stderr
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    t = stats["totals"]
    assert t["input"] == 3 and t["kept"] + t["rejected"] + t["failed"] == 3 and t["failed"] == 0
    calls = json.loads((tmp_path / "o" / "run.json").read_text())["calls"]["default"]
    assert calls["made"] == 3 + t["kept"] + sum(
        n for r, n in stats["steps"]["draw"]["rejected"].items() if r.endswith("_response"))
    assert Path(tmp_path / "o" / "README.md").exists()
