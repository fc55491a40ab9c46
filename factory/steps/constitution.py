"""A constitution: principles, each with a critique request, a revision request and (for AI-feedback
labeling) a multiple-choice question. Read from a YAML file named by a step (``principles:``,
relative to the recipe) or given inline; a bad file is a one-line recipe error naming the entry.

File shape::

    principles:
      - name: harmless
        critique: Identify specific ways in which the assistant's last response is harmful ...
        revision: Rewrite the assistant's response to remove everything harmful ...
        choice: Which of these assistant responses is less harmful? ...   # optional
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from factory.core.schema import Strict


class Principle(Strict):
    name: str = Field(min_length=1, description="short label, kept with every critique")
    critique: str = Field(min_length=1, description="critique request: what to look for")
    revision: str = Field(min_length=1, description="revision request: how to rewrite")
    choice: str | None = Field(None, min_length=1, description="RL-CAI multiple-choice question: "
                               "'Which of these responses ...?'")


def principles_before(value: Any, info: ValidationInfo) -> Any:
    """A ``principles:`` value: a path (read now, relative to the recipe) or an inline list."""
    if not isinstance(value, str):
        return value
    base = Path((info.context or {}).get("recipe_dir", "."))
    return load_principles(base / value)


def load_principles(path: Path) -> list[Principle]:
    """Principles from a YAML file; ValueError naming the file (and entry) when it is wrong."""
    if not path.is_file():
        raise ValueError(f"principles file not found: {path}")
    try:
        doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
    entries = doc.get("principles") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty list under 'principles:'")
    out, names = [], set()
    for i, entry in enumerate(entries):
        label = f"principles[{i}]" + (f" ({entry['name']!r})" if isinstance(entry, dict)
                                      and isinstance(entry.get("name"), str) else "")
        try:
            principle = Principle.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            problem = "missing" if err["type"] == "missing" else err["msg"]
            raise ValueError(f"{path}: {label}: {where + ': ' if where else ''}{problem}") from None
        if principle.name in names:
            raise ValueError(f"{path}: {label}: duplicate principle name")
        names.add(principle.name)
        out.append(principle)
    return out
