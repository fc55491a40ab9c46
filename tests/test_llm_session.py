"""The LLM session: one backend per backend block, counts per user, and `factory eval`'s answers
cached by model weights and adapters (never served to another model in a folder of the same name)."""

from __future__ import annotations

import asyncio

import pytest

from factory.llm.request import Request, SamplingParams
from factory.llm.session import LLMSession
from factory.llm.spec import BackendBlock

ASK = Request.chat([{"role": "user", "content": "Name a colour."}], SamplingParams(max_tokens=8))


def test_one_backend_per_block_one_cache_and_counts_per_user(tmp_path):
    step = BackendBlock(name="fake", params={"temperature": 0.2})
    judge = BackendBlock(name="fake", params={"temperature": 0.0})  # other params: same model
    wider = BackendBlock(name="fake", concurrency=64)  # other backend settings: its own instance

    async def run() -> dict:
        async with LLMSession.open(tmp_path / "c.sqlite") as llm:
            assert llm.backend(step) is llm.backend(judge) is not llm.backend(wider)
            first = llm.dispatcher_for(step, "default")
            second = llm.dispatcher_for(judge, "qc.reward")
            assert first.slots is second.slots  # one dispatcher per backend, a view per user
            await first.complete(ASK)
            await second.complete(ASK)  # the same call by another user: served from the cache
            await llm.dispatcher_for(wider, "eval").complete(ASK)  # same model id: same cache row
            return llm.calls()

    calls = asyncio.run(run())
    assert [(u, c["made"], c["cached"]) for u, c in calls.items()] == [
        ("default", 1, 0), ("qc.reward", 0, 1), ("eval", 0, 1)]


def test_close_backends_keeps_what_a_later_phase_needs(tmp_path):
    judge, other = BackendBlock(name="fake"), BackendBlock(name="fake", model="other")

    async def run() -> None:
        async with LLMSession.open(tmp_path / "c.sqlite") as llm:
            kept, closed = llm.backend(judge), llm.backend(other)
            await llm.close_backends(keep=[judge])  # a build's steps are done; QC judges on `judge`
            assert llm.backend(judge) is kept and llm.backend(other) is not closed

    asyncio.run(run())


def test_no_cache_session_never_creates_a_cache_file(tmp_path):
    async def run() -> int:
        async with LLMSession.open(tmp_path / "c.sqlite", use_cache=False) as llm:
            d = llm.dispatcher_for(BackendBlock(name="fake"), "init")
            await d.complete(ASK)
            await d.complete(ASK)
            return d.stats.made

    assert asyncio.run(run()) == 2 and not (tmp_path / "c.sqlite").exists()


def test_eval_answers_are_cached_by_weights_and_adapters(tmp_path):
    pytest.importorskip("transformers")
    from factory.recipe.tasks import generate_split
    from factory.teach.evaluate import accuracy, decoder
    from tiny_model import build_tiny_llama

    problems = generate_split("sort_numbers", 0, 4, 0)[1]
    one = build_tiny_llama(tmp_path / "a" / "tiny")
    other = build_tiny_llama(tmp_path / "b" / "tiny")  # other random weights, same folder name

    def evaluate(model, use_cache: bool = True) -> dict:
        async def run() -> dict:
            async with LLMSession.open(tmp_path / "c.sqlite", use_cache) as llm:
                return await accuracy(llm.dispatcher_for(decoder(str(model), [], 4, 1), "eval"),
                                      problems, max_tokens=4)
        return asyncio.run(run())

    first = evaluate(one)
    assert (first["calls"]["made"], first["calls"]["cached"]) == (4, 0)
    again = evaluate(one)
    assert (again["calls"]["made"], again["calls"]["cached"]) == (0, 4)
    assert [r["output"] for r in again["rows"]] == [r["output"] for r in first["rows"]]
    assert evaluate(one, use_cache=False)["calls"]["made"] == 4
    # Same folder name, so the same model id in lineage, but other weights: nothing from the cache.
    elsewhere = evaluate(other)
    assert elsewhere["model"] == first["model"] == "hf:tiny"
    assert (elsewhere["calls"]["made"], elsewhere["calls"]["cached"]) == (4, 0)


def test_a_changed_fake_script_is_not_answered_from_the_old_cache(tmp_path):
    """The fake backend's replies follow its rules: the cache keys them, so editing a rule (a test
    script, a dry run) gets the new reply instead of the cached old one."""
    old = BackendBlock(name="fake", options={"rules": [{"match": "colour", "reply": "red"}]})
    new = BackendBlock(name="fake", options={"rules": [{"match": "colour", "reply": "blue"}]})

    async def ask(block: BackendBlock) -> tuple[str, dict]:
        async with LLMSession.open(tmp_path / "c.sqlite") as llm:
            reply = await llm.dispatcher_for(block, "default").complete(ASK)
            return reply.text, llm.calls()["default"]

    assert asyncio.run(ask(old))[0] == "red"
    text, calls = asyncio.run(ask(new))
    assert (text, calls["made"], calls["cached"]) == ("blue", 1, 0)
    text, calls = asyncio.run(ask(old))
    assert (text, calls["made"], calls["cached"]) == ("red", 0, 1)  # the same script: cached
