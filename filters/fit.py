"""Fit filter: does the answer fit its prompt? Four checks, with the perplexity filter's model and
MiniLM embeddings.

- **ending**: the log-probability that the model ends its turn or the line right after the answer
  (its chat template's end-of-turn token, SmolLM2's ``<|im_end|>``, or any newline token), the
  prompt as the user turn. An answer cut off mid-sentence ends neither. Judged only on an answer
  that stops on a word in a line of prose (``ends_open``). It comes from the same forward pass
  that scores the answer's tokens for the perplexity filter (one scorer is shared by both filters
  of a chain).
- **conditioning gain**: the answer's mean NLL per token with an empty user turn minus with the
  prompt. A fluent answer to another request is no likelier for being asked this prompt, so its
  gain is near zero; one more forward pass, memoised like the first.
- **another prompt fits better**: the prompts of the data that the answer's embedding is nearer to
  than its own (``other_prompt_candidates``, nearest first) and those holding a near-copy of the
  answer (``filters/fit_other.py``) are put to the model: if one makes the answer likelier than its
  own prompt does, by ``other_prompt_margin`` nats per token (by any amount for a copy's prompt:
  one answer under two prompts answers at most one of them), the pair is misjoined. One forward
  pass per candidate.
- **unrelated**: the answer's embedding is nearly orthogonal to its prompt's (cosine below
  ``unrelated_cosine``) and the prompt barely helps the model (gain below ``unrelated_gain``): two
  weak signals that agree. It catches an answer to a request that is not in the data.

The last three judge answers of ``min_words`` words or more: a label fits many prompts, and a mean
over a few tokens is noise (as the perplexity filter's ``min_tokens``).

Cuts are absolute (``min_ending``, default -6; ``min_gain``, default 0: the prompt must not make
the answer less likely; ``other_prompt_margin``, default 0.1; ``unrelated_cosine`` and
``unrelated_gain``, 0.1 and 0.25) or, for the first two set to null,
learned from known-good text as the perplexity filter learns its own: ``percentile`` of the
in-house reference answers minus a margin; never a percentile of the data being filtered, so they
do not move with the share of garbage in it. An answer cut at ``max_tokens`` has no ending figure
and is judged on the others.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from factory.core.errors import FactoryError
from factory.core.record import Record
from factory.core.rows import read_rows
from factory.core.text import as_text, texts_with_prompts
from filters.base import Drop, Failed, Filter, Keep, QCContext, Verdict, percentile_cut
from filters.config import FitBlock
from filters.perplexity import BUILTIN_REFERENCE, PerplexityScorer

if TYPE_CHECKING:
    from filters.embed import Embedder
    from filters.fit_other import Embedded

# Where the model cannot tell an end from a cut: a URL, a table row, a path, code.
NOT_PROSE = re.compile(r"://|\||/|=|<-")


def ends_open(text: str) -> bool:
    """Whether the text stops on a word (a letter or digit, no full stop, bracket or quote after
    it) in prose: the only ending the ending cut judges. A real answer that ends in a URL, a table
    row or chess notation has a low ending figure too, and is no cut. What is checked for those is
    the last line's last clause: a "1/2 cup" earlier in the line does not make its end code."""
    stripped = text.rstrip()
    tail = re.split(r"[.!?,;:]\s+", stripped.split("\n")[-1])[-1]
    return bool(re.search(r"[^\W_]$", stripped)) and not NOT_PROSE.search(tail)


def mean_nll(scorer: PerplexityScorer, texts: list[str], prompts: list[str]) -> list[float]:
    """Mean NLL per token of each text after its prompt (chat framing); NaN with no tokens."""
    return [sum(n) / len(n) if n else math.nan for n in scorer.token_nlls(texts, prompts, chat=True)]


def fit_signals(scorer: PerplexityScorer, texts: list[str], prompts: list[str]) -> list[tuple[float, float]]:
    """(ending log-prob, conditioning gain in nats per token) per text; NaN where unscored."""
    ending = scorer.ending(texts, prompts)
    gains = [bare - cond for cond, bare in zip(mean_nll(scorer, texts, prompts),
                                                mean_nll(scorer, texts, [""] * len(texts)))]
    return list(zip(ending, gains))


class FitFilter(Filter):
    name = "fit"

    def __init__(self, block: FitBlock, scorer: PerplexityScorer | None = None,
                 embedder: Embedder | None = None) -> None:
        super().__init__()
        self.block = block
        self.scorer = scorer or PerplexityScorer(block.model, block.batch_size, block.max_tokens)
        self.embedder = embedder  # MiniLM by default, loaded on first use (other prompt, unrelated)

    def cuts(self) -> tuple[float, float, str]:
        """(ending cut, gain cut, where they come from)."""
        b = self.block
        if b.min_ending is not None and b.min_gain is not None:
            return b.min_ending, b.min_gain, "absolute"
        path = Path(b.reference_file) if b.reference_file else BUILTIN_REFERENCE
        rows = read_rows(path)
        pairs = [(t, p) for row in rows if (t := as_text(row.get("response"))) and
                 (p := as_text(row.get("prompt"))) is not None]
        if not pairs:
            raise FactoryError(f"qc.{self.label}: reference {path}: no row has 'prompt' and 'response'")
        signals = fit_signals(self.scorer, [t for t, _ in pairs], [p for _, p in pairs])
        endings = [e for e, _ in signals if math.isfinite(e)]
        gains = [g for _, g in signals if math.isfinite(g)]
        where = ("in-house reference answers (filters/reference/answers.jsonl)" if path == BUILTIN_REFERENCE
                 else f"reference file {path}")
        learned = f"p{b.percentile:g} of {len(pairs)} texts minus"
        if b.min_ending is not None:
            end_cut, end_source = b.min_ending, "ending absolute"
        else:
            end_cut = percentile_cut(endings, b.percentile) - b.ending_margin
            end_source = f"ending {learned} {b.ending_margin:g}"
        if b.min_gain is not None:
            gain_cut, gain_source = b.min_gain, "gain absolute"
        else:
            gain_cut = percentile_cut(gains, b.percentile) - b.gain_margin
            gain_source = f"gain {learned} {b.gain_margin:g} nats"
        return end_cut, gain_cut, f"{end_source}; {gain_source}: {where}"

    def other_prompt_signals(self, texts: list[str], prompts: list[str], judged: list[int],
                             embedded: Embedded) -> dict[int, tuple[int, float, bool]]:
        """Per judged text: the candidate prompt (its record) that comes nearest to dropping it,
        how much likelier it makes the text than its own prompt (nats per token), and whether that
        record holds a near-copy of the text (then any lift above 0 drops it)."""
        b = self.block
        if b.other_prompt_margin is None or len(embedded.distinct) < 2:
            return {}
        own = [prompts[i] for i in judged]
        nearer = embedded.nearer_prompts(own, b.other_prompt_candidates)
        copies = ([[judged[c] for c in found] for found in embedded.copies(own, b.copy_similarity)]
                  if b.copy_similarity is not None else [[] for _ in judged])
        pairs = [(i, j, j in held) for i, near, held in zip(judged, nearer, copies)
                 for j in dict.fromkeys(near + held)]
        own_nll = dict(zip([i for i, _, _ in pairs], mean_nll(self.scorer, [texts[i] for i, _, _ in pairs],
                                                              [prompts[i] for i, _, _ in pairs])))
        other = mean_nll(self.scorer, [texts[i] for i, _, _ in pairs], [prompts[j] for _, j, _ in pairs])
        best: dict[int, tuple[float, int, float, bool]] = {}
        for (i, j, copy), nll in zip(pairs, other):
            lift = own_nll[i] - nll
            # how far past its cut: a copy's prompt needs only to fit better, another the margin
            excess = lift - (0.0 if copy else b.other_prompt_margin)
            if math.isfinite(lift) and (i not in best or excess > best[i][0]):
                best[i] = (excess, j, lift, copy)
        return {i: (j, lift, copy) for i, (_, j, lift, copy) in best.items()}

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, prompts, details = texts_with_prompts(records, b.column, b.prompt_column)
        ok = [i for i in range(len(records)) if texts[i] is not None and prompts[i] is not None]
        mine, asked = [texts[i] or "" for i in ok], [prompts[i] or "" for i in ok]
        signals = dict(zip(ok, fit_signals(self.scorer, mine, asked)))
        # gain, other prompt and unrelated judge answers of min_words or more (positions in `ok`)
        judged = [n for n, t in enumerate(mine) if len(t.split()) >= b.min_words]
        long = [ok[n] for n in judged]
        is_long = set(long)
        others: dict[int, tuple[int, float, bool]] = {}
        cosines: dict[int, float] = {}
        if judged and (b.other_prompt_margin is not None or b.unrelated_cosine is not None):
            from filters.fit_other import Embedded

            self.embedder = self.embedder or _embedder(b)
            embedded = Embedded.of(self.embedder, [mine[n] for n in judged], asked)
            others = {ok[n]: (ok[j], lift, copy) for n, (j, lift, copy) in
                      self.other_prompt_signals(mine, asked, judged, embedded).items()}
            if b.unrelated_cosine is not None:
                cosines = dict(zip(long, embedded.own_cosines([asked[n] for n in judged])))
        end_cut, gain_cut, source = self.cuts()
        margin = b.other_prompt_margin
        self.info = {"model": b.model, "column": b.column,
                     "cut": f"ending {end_cut:.3f}, gain {gain_cut:.3f}, other prompt {margin}, unrelated: "
                            f"cosine {b.unrelated_cosine} and gain {b.unrelated_gain}",
                     "ending_cut": round(end_cut, 4), "gain_cut": round(gain_cut, 4),
                     "other_prompt_cut": margin, "cosine_cut": b.unrelated_cosine,
                     "cut_source": f"{source}; other prompt and unrelated absolute ({b.embedding_model} "
                                   f"embeddings; gain, other prompt and unrelated on answers of "
                                   f"{b.min_words}+ words)",
                     "rule": "log-prob that the turn or line ends after an answer that stops on a word in "
                             "prose; mean NLL without the prompt minus with it; mean NLL under its own "
                             "prompt minus under the data's prompts nearest to it or holding a copy of it "
                             "(chat template framing); answer-prompt embedding cosine with the gain",
                     # the audit's histograms: each signal over the records it judges
                     "_gain": [g for i in long if math.isfinite(g := signals[i][1])],
                     "_ending": [e for i in ok if math.isfinite(e := signals[i][0])
                                 and ends_open(texts[i] or "")],
                     "_other_prompt": [lift for _, lift, _ in others.values()],
                     "_cosine": list(cosines.values())}
        if ok and not any(math.isfinite(signals[i][0]) for i in ok):
            self.info["message"] = ("ending not judged: no answer got a figure (the model has no chat "
                                    f"template, or every answer is longer than max_tokens {b.max_tokens})")
        out: list[Verdict] = []
        for i in range(len(records)):
            if i not in signals:
                out.append(Failed(details[i]))
                continue
            end, gain = signals[i]
            j, lift, copy = others.get(i, (None, math.nan, False))
            cosine = cosines.get(i, math.nan)
            if not math.isfinite(gain):
                out.append(Failed("no tokens to score", "empty_text"))
            elif math.isfinite(end) and end < end_cut and ends_open(texts[i] or ""):
                out.append(Drop("fit_ending", round(end, 4),
                                f"log-prob that the turn or line ends here {end:.2f} < {end_cut:.2f} "
                                f"({source})"))
            elif i in is_long and gain < gain_cut:
                out.append(Drop("fit_conditioning_gain", round(gain, 4),
                                f"conditioning gain {gain:.3f} < {gain_cut:.3f} nats/token ({source})"))
            elif j is not None and margin is not None and (lift > 0 if copy else lift >= margin):
                held = " (it holds a copy of this answer)" if copy else ""
                out.append(Drop("fit_other_prompt", round(lift, 4),
                                f"record {records[j].id}'s prompt{held} makes this answer likelier than its "
                                f"own by {lift:.3f} {'> 0' if copy else f'>= {margin:g}'} nats/token: an "
                                "answer to another request"))
            elif b.unrelated_cosine is not None and cosine < b.unrelated_cosine and gain < b.unrelated_gain:
                out.append(Drop("fit_unrelated", round(cosine, 4),
                                f"embedding cosine to its prompt {cosine:.3f} < {b.unrelated_cosine:g} and "
                                f"conditioning gain {gain:.3f} < {b.unrelated_gain:g} nats/token"))
            else:  # a short answer's gain is not judged, so it is not its figure either
                out.append(Keep(round(gain, 4) if i in is_long else None))
        return out


def _embedder(block: FitBlock) -> Embedder:
    from filters.embed import Embedder

    return Embedder(block.embedding_model)
