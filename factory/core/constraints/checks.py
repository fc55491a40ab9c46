"""Hand-written checkers, only where lm-eval has no sound one.

- ``change_case:lowercase`` / ``uppercase``: IFEval's ``english_lowercase`` / ``english_capital``
  also require langdetect to say English, and langdetect misreads short answers (measured here:
  "a compiler translates source code into machine code." -> French), so a compliant answer
  would be scored as missing the constraint. These check the case alone; bench/ifeval_agreement.py
  compares them with lm-eval's on IFEval's prompts.
- ``startend:start_phrase``: IFEval has no registered start check (its unregistered
  ``ConstrainedStartChecker`` accepts the phrase at the start of any line).
- ``detectable_format:numbered_list``: IFEval counts only ``*`` / ``-`` bullets.

Each checker is ``(response, kwargs) -> bool``; an empty response follows nothing (as in IFEval's
strict scorer).
"""

from __future__ import annotations

import re
from typing import Any

_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.MULTILINE)


def lowercase(response: str, kwargs: dict[str, Any]) -> bool:
    """Some letters, none of them capitals."""
    return response.islower()


def uppercase(response: str, kwargs: dict[str, Any]) -> bool:
    """Some letters, all of them capitals."""
    return response.isupper()


def start_phrase(response: str, kwargs: dict[str, Any]) -> bool:
    """The answer's first words are the phrase (case-insensitive, leading whitespace ignored)."""
    return response.strip().lower().startswith(kwargs["start_phrase"].strip().lower())


def numbered_list(response: str, kwargs: dict[str, Any]) -> bool:
    """Exactly ``num_items`` lines that start with a number and '.' or ')' ("1. ...", "2) ...")."""
    return len(_NUMBERED.findall(response)) == kwargs["num_items"]
