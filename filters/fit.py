"""Fit filter: does the answer fit its prompt? Two signals of the perplexity filter's model.

- **end of turn**: the log-probability that the model ends its turn right after the answer (its
  chat template's end-of-turn token, SmolLM2's ``<|im_end|>``), the prompt as the user turn. An
  answer cut off mid-sentence rarely ends where the model would stop. Judged only on an answer
  that stops on a word in a line of prose (``ends_open``). It comes from the same
  forward pass that scores the answer's tokens for the perplexity filter (one scorer is shared
  by both filters of a chain).
- **conditioning gain**: the answer's mean NLL per token with an empty user turn minus with the
  prompt. A fluent answer to another request is no likelier for being asked this prompt, so its
  gain is near zero; one more forward pass, memoised like the first.

Cuts are absolute (``min_end_of_turn``, default -16; ``min_gain``, default 0: the prompt must not
make the answer less likely) or, set to null, learned from known-good text as the perplexity
filter learns its own: ``percentile`` of the in-house reference answers minus a margin; never a
percentile of the data being filtered, so they do not move with the share of garbage in it. An
answer cut at ``max_tokens`` has no end-of-turn figure and is judged on its gain only.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.rows import read_rows
from factory.core.text import as_text, texts_with_prompts
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict, percentile_cut
from filters.config import FitBlock
from filters.perplexity import BUILTIN_REFERENCE, PerplexityScorer

# Where the model cannot tell an end from a cut: a URL, a table row, a path, code.
NOT_PROSE = re.compile(r"://|\||/|=|<-")


def ends_open(text: str) -> bool:
    """Whether the text stops on a word (a letter or digit, no full stop, bracket or quote after
    it) in a last line of prose: the only ending the end-of-turn cut judges. A real answer that
    ends in a URL, a table row or chess notation has a low end-of-turn figure too, and is no cut."""
    stripped = text.rstrip()
    last = stripped.split("\n")[-1]
    return bool(re.search(r"[^\W_]$", stripped)) and not NOT_PROSE.search(last)


def fit_signals(scorer: PerplexityScorer, texts: list[str], prompts: list[str]) -> list[tuple[float, float]]:
    """(end-of-turn log-prob, conditioning gain in nats per token) per text; NaN where unscored."""
    eot = scorer.end_of_turn(texts, prompts)
    with_prompt = scorer.token_nlls(texts, prompts, chat=True)
    without = scorer.token_nlls(texts, [""] * len(texts), chat=True)
    out = []
    for e, cond, bare in zip(eot, with_prompt, without):
        gain = sum(bare) / len(bare) - sum(cond) / len(cond) if cond and bare else math.nan
        out.append((e, gain))
    return out


class FitFilter(Filter):
    name = "fit"

    def __init__(self, block: FitBlock, scorer: PerplexityScorer | None = None) -> None:
        super().__init__()
        self.block = block
        self.scorer = scorer or PerplexityScorer(block.model, block.batch_size, block.max_tokens)

    def cuts(self) -> tuple[float, float, str]:
        """(end-of-turn cut, gain cut, where they come from)."""
        b = self.block
        if b.min_end_of_turn is not None and b.min_gain is not None:
            return b.min_end_of_turn, b.min_gain, "absolute"
        path = Path(b.reference_file) if b.reference_file else BUILTIN_REFERENCE
        rows = read_rows(path)
        pairs = [(t, p) for row in rows if (t := as_text(row.get("response"))) and
                 (p := as_text(row.get("prompt"))) is not None]
        if not pairs:
            raise FactoryError(f"qc.{self.label}: reference {path}: no row has 'prompt' and 'response'")
        signals = fit_signals(self.scorer, [t for t, _ in pairs], [p for _, p in pairs])
        eots = [e for e, _ in signals if math.isfinite(e)]
        gains = [g for _, g in signals if math.isfinite(g)]
        where = ("in-house reference answers (filters/reference/answers.jsonl)" if path == BUILTIN_REFERENCE
                 else f"reference file {path}")
        learned = f"p{b.percentile:g} of {len(pairs)} texts minus"
        if b.min_end_of_turn is not None:
            eot_cut, eot_source = b.min_end_of_turn, "end of turn absolute"
        else:
            eot_cut = percentile_cut(eots, b.percentile) - b.end_of_turn_margin
            eot_source = f"end of turn {learned} {b.end_of_turn_margin:g}"
        if b.min_gain is not None:
            gain_cut, gain_source = b.min_gain, "gain absolute"
        else:
            gain_cut = percentile_cut(gains, b.percentile) - b.gain_margin
            gain_source = f"gain {learned} {b.gain_margin:g} nats"
        return eot_cut, gain_cut, f"{eot_source}; {gain_source}: {where}"

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, prompts, details = texts_with_prompts(records, b.column, b.prompt_column)
        ok = [i for i in range(len(records)) if texts[i] is not None and prompts[i] is not None]
        signals = dict(zip(ok, fit_signals(self.scorer, [texts[i] or "" for i in ok],
                                           [prompts[i] or "" for i in ok])))
        eot_cut, gain_cut, source = self.cuts()
        self.info = {"model": b.model, "column": b.column,
                     "cut": f"end of turn {eot_cut:.3f}, gain {gain_cut:.3f}",
                     "end_of_turn_cut": round(eot_cut, 4), "gain_cut": round(gain_cut, 4),
                     "cut_source": source,
                     "rule": "end-of-turn log-prob after an answer that stops on a word in prose, and "
                             "mean NLL without the prompt minus with it (chat template framing)",
                     # the audit's histograms: each signal over the records it judges
                     "_gain": [g for i in ok if math.isfinite(g := signals[i][1])],
                     "_end_of_turn": [e for i in ok if math.isfinite(e := signals[i][0])
                                      and ends_open(texts[i] or "")]}
        if ok and not any(math.isfinite(signals[i][0]) for i in ok):
            self.info["message"] = ("end of turn not judged: no answer got a figure (the model has no chat "
                                    f"template, or every answer is longer than max_tokens {b.max_tokens})")
        out: list[Verdict] = []
        for i in range(len(records)):
            if i not in signals:
                out.append(Failed(details[i]))
                continue
            eot, gain = signals[i]
            if not math.isfinite(gain):
                out.append(Failed("no tokens to score", "empty_text"))
            elif math.isfinite(eot) and eot < eot_cut and ends_open(texts[i] or ""):
                out.append(Drop("fit_end_of_turn", round(eot, 4),
                                f"end-of-turn log-prob {eot:.2f} < {eot_cut:.2f} ({source})"))
            elif gain < gain_cut:
                out.append(Drop("fit_conditioning_gain", round(gain, 4),
                                f"conditioning gain {gain:.3f} < {gain_cut:.3f} nats/token ({source})"))
            else:
                out.append(Keep(round(gain, 4)))
        return out
