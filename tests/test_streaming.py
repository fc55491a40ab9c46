"""Streaming: seeds pulled lazily, a bounded window in flight, outcomes in input order, splits
written group by group with the same content as one whole-table write."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq

from factory.core.record import Record, Reject, Rejected, StepTrace
from factory.engine.executor import BoundStep, Engine
from factory.llm.backends.base import BackendSettings
from factory.llm.backends.fake import FakeBackend
from factory.llm.dispatch import Dispatcher
from factory.llm.request import SamplingParams
from factory.output import writer as writer_module
from factory.output.writer import DatasetWriter
from factory.recipe.graph import Graph
from factory.recipe.spec import SplitSpec
from factory.steps.base import StepRunner

P = SamplingParams(temperature=0.0)


class Jittery(StepRunner):
    """Sleeps 0-4 ms (by record, seeded) so records finish out of input order; counts in flight."""

    fans_out = False

    def __init__(self, name, reads, writes, fan=0):
        super().__init__(SimpleNamespace(name=name, reads=reads, writes=writes, kind="test"), P)
        self.fans_out, self.fan = fan > 0, fan
        self.in_flight = self.peak = 0

    async def run(self, fields, ctx):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(ctx.rng().random() * 0.004)
        self.in_flight -= 1
        if self.fan:
            return [{"part": f"{fields['q']}.{i}"} for i in range(self.fan)]
        if fields.get("part", "").endswith(".1"):
            return Rejected("odd_child")
        return {self.spec.writes[0]: "ok"}


def make_engine(steps, deps, window):
    dispatcher = Dispatcher(FakeBackend(BackendSettings()), None, 4)
    graph = Graph([s.spec for s in steps], deps, {})
    return Engine(graph, {s.name: BoundStep(s, dispatcher) for s in steps}, window=window, seed=1)


def test_seeds_are_pulled_lazily_within_the_window_and_come_out_in_order():
    step = Jittery("slow", ["q"], ["out"])
    engine = make_engine([step], {"slow": set()}, window=8)
    pulled = 0

    def seeds():
        nonlocal pulled
        for i in range(400):
            pulled += 1
            yield Record(f"r{i}", {"q": str(i)}, "t")

    async def consume():
        out, ahead = [], []
        async for outcome in engine.stream(seeds()):
            out.append(outcome.id)
            ahead.append(pulled - len(out))  # pulled but not yet emitted
        return out, ahead

    out, ahead = asyncio.run(consume())
    assert out == [f"r{i}" for i in range(400)]
    assert step.peak <= 8  # never more than the window in flight
    assert max(ahead) <= engine.held  # the reorder buffer is bounded: no read-ahead of all seeds
    assert engine.inputs == 400


def test_fan_out_children_stream_in_depth_first_order():
    split = Jittery("split", ["q"], ["part"], fan=2)
    echo = Jittery("echo", ["part"], ["echo"])
    engine = make_engine([split, echo], {"split": set(), "echo": {"split"}}, window=4)
    outs = asyncio.run(engine.run(Record(f"r{i}", {"q": str(i)}, "t") for i in range(60)))
    got = [(o.reason, o.record.fields["part"]) if isinstance(o, Reject) else o.fields["part"] for o in outs]
    assert got == [x for i in range(60) for x in (f"{i}.0", ("odd_child", f"{i}.1"))]
    assert engine.totals(outs, 60)["created"] == 120


def record(i: int, extra) -> Record:
    r = Record(f"id{i}", {"prompt": f"question {i}", "response": f"answer {i}", "extra": extra}, "t")
    r.trace = [StepTrace("s", "fake", "fake-1", [f"h{i}"])]
    return r


def test_split_in_many_row_groups_equals_one_whole_table(tmp_path, monkeypatch):
    """Groups typed differently (null, then text; a struct that gains a key) widen the file's
    schema; the content read back equals the single table the old writer built from every row."""
    monkeypatch.setattr(writer_module, "ROW_GROUP_BYTES", 600)  # ~2 rows a group
    spec = SplitSpec(format="sft", columns=["extra"])
    cases = {"text": [None] * 6 + [f"text {i}" for i in range(6)] + [None] * 2,
             "struct": [{"a": 1}] * 6 + [{"a": 2, "b": "x"}] * 6 + [None] * 2}
    for name, extras in cases.items():
        records = [record(i, e) for i, e in enumerate(extras)]
        w = DatasetWriter(tmp_path / name, {"sft": spec})
        for r in records:
            w.add(r)
        assert w.finish({}, "")["sft"]["rows"] == len(records)
        written = pq.ParquetFile(tmp_path / name / "sft.parquet")
        assert written.num_row_groups > 2
        whole = pa.Table.from_pylist([writer_module.split_row(r, spec) for r in records])
        assert written.read().equals(whole), name
        lines = [json.loads(x) for x in (tmp_path / name / "sft.jsonl").read_text().splitlines()]
        assert lines == [writer_module.split_row(r, spec) for r in records]


def test_single_group_is_byte_identical_to_a_whole_table_write(tmp_path):
    spec = SplitSpec(format="sft", columns=["extra"])
    records = [record(i, i) for i in range(50)]
    writer = DatasetWriter(tmp_path / "ds", {"sft": spec})
    for r in records:
        writer.add(r)
    writer.finish({}, "")
    pq.write_table(pa.Table.from_pylist([writer_module.split_row(r, spec) for r in records]),
                   tmp_path / "whole.parquet")
    assert (tmp_path / "ds" / "sft.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_rejects_stream_first_then_split_skips_and_an_empty_split_leaves_no_file(tmp_path):
    spec = SplitSpec(format="dpo")  # needs prompt/chosen/rejected: these records fill none
    writer = DatasetWriter(tmp_path / "ds", {"dpo": spec, "sft": SplitSpec(format="sft")})
    writer.add(record(0, None))
    writer.add(Reject(record(1, None), "judge", "judge_tie"))
    writer.add(record(2, None))
    counts = writer.finish({"totals": {}}, "{split_configs}\n{split_table}")
    assert counts["dpo"]["rows"] == 0 and counts["dpo"]["skipped"] == {"not_text:chosen": 2}
    assert counts["dpo"]["not_written"].startswith("0 rows: every kept record lacked a text column")
    assert counts["sft"] == {"rows": 2, "skipped": {}}
    rejects = [json.loads(x) for x in (tmp_path / "ds" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejects] == [("id1", "judge_tie"), ("id0", "not_text:chosen"),
                                                        ("id2", "not_text:chosen")]
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [  # no spill files, no empty split
        "README.md", "rejects.jsonl", "sft.jsonl", "sft.parquet", "stats.json"]
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "config_name: sft" in card and "config_name: dpo" not in card


def test_a_failed_build_leaves_no_temporary_folder(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", {"sft": SplitSpec(format="sft")})
    writer.add(record(0, None))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
