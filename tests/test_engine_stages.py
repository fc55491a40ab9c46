"""Engine mechanics for multi-call, fan-out and set-level steps (the methods build on these)."""

import asyncio
from types import SimpleNamespace

from factory.core.record import Record, Reject, Rejected
from factory.engine.executor import BoundStep, Engine
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.dispatch import Dispatcher
from factory.llm.request import Request, SamplingParams
from factory.recipe.graph import Graph
from factory.steps.base import SetOutcome, SetRunner, StepRunner

P = SamplingParams(temperature=0.0)


def spec(name, reads, writes, kind="test"):
    return SimpleNamespace(name=name, reads=reads, writes=writes, kind=kind)


class TwoTurns(StepRunner):
    """Asks, then asks again with the first answer: a critique->revise shape."""

    async def run(self, fields, ctx):
        (first,) = await ctx.ask([Request.chat([{"role": "user", "content": f"draft {fields['q']}"}], P)])
        (second,) = await ctx.ask([Request.chat([{"role": "user", "content": f"revise {first.text}"}], P)])
        ctx.count("turns", 2)
        return {"out": second.text}


class Split(StepRunner):
    fans_out = True

    async def run(self, fields, ctx):
        if fields["q"] == "none":
            return Rejected("nothing_to_split")
        return [{"part": f"{fields['q']}-{i}"} for i in range(ctx.rng().randint(2, 2))]


class Echo(StepRunner):
    async def run(self, fields, ctx):
        (c,) = await ctx.ask([Request.chat([{"role": "user", "content": f"echo {fields['part']}"}], P)])
        if "-1" in fields["part"]:
            return Rejected("odd_child")
        return {"echo": c.text}


class Pool(SetRunner):
    """Uses the inputs as examples and makes two new records from them."""

    async def run_set(self, records, ctx):
        joined = "+".join(r.fields["q"] for r in records)
        texts = await ctx.ask([Request.chat([{"role": "user", "content": f"new {i} {joined}"}], P)
                               for i in range(3)])
        made = [Record(f"n{i}", {"q": c.text}, "t", [r.id for r in records]) for i, c in enumerate(texts)]
        return SetOutcome(made[:2], [(made[2], Rejected("too_similar", "rouge 0.9"))], list(records))


def engine(steps, deps, backend):
    dispatcher = Dispatcher(backend, None, 4)
    graph = Graph([s.spec for s in steps], deps, {})
    return Engine(graph, {s.name: BoundStep(s, dispatcher) for s in steps}, seed=3)


def records(*qs):
    return [Record(f"r{i}", {"q": q}, "t") for i, q in enumerate(qs)]


def test_multi_turn_step_sees_its_first_answer_and_reports_figures():
    fake = FakeBackend(BackendSettings(options={"rules": [{"match": "^draft", "reply": "D1"}],
                                                "default": "final"}))
    two = TwoTurns(spec("two", ["q"], ["out"]), P)
    eng = engine([two], {"two": set()}, fake)
    (out,) = asyncio.run(eng.run(records("x")))
    assert out.fields["out"] == "final" and fake.calls == 2
    assert len(out.trace[0].prompt_hashes) == 2
    assert eng.stats["two"].as_dict()["figures"] == {"turns": 2}


def test_fan_out_children_walk_the_rest_and_keep_lineage():
    fake = FakeBackend(BackendSettings(options={"rules": [], "default": "ok"}))
    split = Split(spec("split", ["q"], ["part"]), P)
    echo = Echo(spec("echo", ["part"], ["echo"]), P)
    eng = engine([split, echo], {"split": set(), "echo": {"split"}}, fake)
    outs = asyncio.run(eng.run(records("a", "none", "b")))
    kinds = [(o.reason, o.record.fields.get("part")) if isinstance(o, Reject) else o.fields["part"]
             for o in outs]
    assert kinds == ["a-0", ("odd_child", "a-1"), ("nothing_to_split", None), "b-0", ("odd_child", "b-1")]
    child = outs[0]
    assert child.parent_ids == ["r0"] and [t.step for t in child.trace] == ["split", "echo"]
    totals = eng.totals(outs, 3)
    assert totals == {"input": 3, "created": 4, "consumed": 2, "kept": 2, "rejected": 3, "failed": 0,
                      "dropped_by_step": {"echo": {"odd_child": 2}, "split": {"nothing_to_split": 1}}}


def test_set_step_is_a_barrier_and_accounts_for_consumed_inputs():
    fake = FakeBackend(BackendSettings(options={"rules": [], "default": "made"}))
    pool = Pool(spec("pool", ["q"], ["q2"]), P)
    eng = engine([pool], {"pool": set()}, fake)
    outs = asyncio.run(eng.run(records("a", "b")))
    assert [o.id if isinstance(o, Record) else o.reason for o in outs] == ["n0", "n1", "too_similar"]
    assert eng.totals(outs, 2)["consumed"] == 2 and eng.totals(outs, 2)["created"] == 3


def test_backend_error_in_a_multi_turn_step_fails_the_record():
    fake = FakeBackend(BackendSettings(options={"rules": [], "fail_match": "revise"}))
    eng = engine([TwoTurns(spec("two", ["q"], ["out"]), P)], {"two": set()}, fake)
    (out,) = asyncio.run(eng.run(records("x")))
    assert isinstance(out, Reject) and out.failed and out.reason == "backend_error"
