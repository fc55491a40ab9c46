"""Build totals counted as outcomes go by: input + created = kept + rejected + failed + consumed."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from factory.core.record import Record, Reject


class Tally:
    """Kept, rejected and failed outcomes with their (step, reason), without keeping the outcomes."""

    def __init__(self) -> None:
        self.kept = self.rejected = self.failed = 0
        self.by_reason: dict[str, Counter] = defaultdict(Counter)

    def add(self, outcome: Record | Reject) -> None:
        if isinstance(outcome, Reject):
            self.by_reason[outcome.step][outcome.reason] += 1
            self.failed += outcome.failed
            self.rejected += not outcome.failed
        else:
            self.kept += 1

    def totals(self, input_count: int, created: int = 0, consumed: int = 0) -> dict[str, Any]:
        """The accounting, checked: a record that went missing is an error, never a quiet gap."""
        kept, rejected, failed = self.kept, self.rejected, self.failed
        if input_count + created != kept + rejected + failed + consumed:
            raise AssertionError(f"records lost: {input_count} in + {created} created != {kept} kept + "
                                 f"{rejected} rejected + {failed} failed + {consumed} consumed")
        out = {"input": input_count, "kept": kept, "rejected": rejected, "failed": failed,
               "dropped_by_step": {s: dict(sorted(c.items())) for s, c in sorted(self.by_reason.items())}}
        if created or consumed:
            out.update(created=created, consumed=consumed)
        return out


def summarize(outcomes: Iterable[Record | Reject], input_count: int | None = None, created: int = 0,
              consumed: int = 0) -> dict[str, Any]:
    """input + created = kept + rejected + failed + consumed, with counts per (step, reason)."""
    tally = Tally()
    for outcome in outcomes:
        tally.add(outcome)
    if input_count is None:
        input_count = tally.kept + tally.rejected + tally.failed - created + consumed
    return tally.totals(input_count, created, consumed)
