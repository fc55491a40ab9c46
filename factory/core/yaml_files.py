"""YAML files validated by a pydantic model, with every problem as one line:
``file.yaml:LINE: field.path: message (did you mean ...?)``.

YAML is read with ruamel's round-trip loader because it remembers the line of every key and list
item; pydantic error locations are walked through that tree to find the line to blame. Recipes,
QC chain files and trainer presets all load through here.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from factory.core.errors import RecipeError, did_you_mean


def read_yaml(path: Path, what: str = "file") -> Any:
    """The round-trip YAML tree of ``path``; a missing file or bad syntax is a RecipeError."""
    if not path.is_file():
        raise RecipeError(str(path), None, "", f"{what} not found")
    try:
        return YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise RecipeError(str(path), line, "", f"YAML syntax: {exc.problem or exc.context}") from None
    except UnicodeDecodeError:
        raise RecipeError(str(path), None, "", "not UTF-8 text") from None


def validate(path: Path, doc: Any, model: type[BaseModel], context: dict[str, Any] | None = None) -> Any:
    """``model`` validated from the YAML tree; the first problem is a RecipeError at its line."""
    try:
        return model.model_validate(plain(doc if doc is not None else {}), context=context)
    except ValidationError as exc:
        raise first_error(path, doc, exc, model) from None


def load_model_file(path: str | Path, model: type[BaseModel], context: dict[str, Any] | None = None) -> Any:
    """Any YAML file validated against ``model`` with the same one-line errors (QC chain files)."""
    path = Path(path)
    return validate(path, read_yaml(path), model, context)


def plain(node: Any) -> Any:
    """ruamel containers -> dict/list, so pydantic sees ordinary Python data."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def first_error(path: Path, doc: Any, exc: ValidationError, model: type[BaseModel]) -> RecipeError:
    err = exc.errors(include_url=False)[0]
    loc = _drop_union_tags(doc, tuple(err["loc"]))
    if loc and loc[-1] == "[key]":  # a bad mapping key: point at the key itself
        loc = loc[:-1]
    kind, msg = err["type"], err["msg"]
    tag_key = str(err.get("ctx", {}).get("discriminator", "kind")).strip("'")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1], doc)
        msg = f"unknown key {loc[-1]!r}{did_you_mean(str(loc[-1]), allowed)}"
    elif kind == "missing":
        msg = f"required key {loc[-1]!r} is missing"
    elif kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "")
        expected = err.get("ctx", {}).get("expected_tags", "")
        what = "QC filter" if tag_key == "filter" else "scorer kind" if "scorer" in loc else \
            "sampler type" if loc[:1] == ("samplers",) else "step kind"
        msg = f"unknown {what} {tag!r}{did_you_mean(tag, _tags(expected))}; known: {expected}"
        loc = loc + (tag_key,)
    elif kind == "union_tag_not_found" and tag_key == "filter":
        msg = "a QC block needs 'filter' (perplexity, dedup, reward, pairs, drift, decontaminate)"
    elif kind == "union_tag_not_found" and loc[:1] == ("samplers",):
        msg = "a sampler needs 'type' (category, subcategory, numeric, grid, persona, topic_tree)"
    elif kind == "union_tag_not_found":
        msg = "a step needs 'kind' (e.g. generate, judge_pairwise)"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif "input" in err and kind not in ("missing",):
        msg = f"{msg} (got {err['input']!r})"
    return RecipeError(str(path), line_of(doc, loc), format_loc(loc), msg)


def _tags(expected: str) -> list[str]:
    return [t.strip(" '") for t in expected.split(",")]


UNION_TAGS = ("kind", "type", "filter")  # discriminator keys of the recipe's tagged unions


def _drop_union_tags(doc: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the discriminator value ('generate') into the location; YAML has no such key."""
    out: list[Any] = []
    node, tagged = doc, None
    for part in loc:
        # Unions are tagged by 'kind' (steps), 'type' (a scorer) or 'filter' (a QC block); once, first.
        # (A tag value may also be a key, e.g. {type: verifier, verifier: numeric}: "first" decides.)
        if isinstance(node, dict) and node is not tagged and any(node.get(t) == part for t in UNION_TAGS):
            tagged = node
            continue
        out.append(part)
        node = _child(node, part)
    return tuple(out)


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def line_of(doc: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node of ``loc`` that exists in the YAML tree."""
    node, line = doc, 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
        else:
            break
        node = node[part]
    return line


def format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...], doc: Any) -> list[str]:
    """Field names of the model found at ``loc`` (for did-you-mean on unknown keys)."""
    annotation: Any = model
    node = doc
    for part in loc:
        annotation = _unwrap(annotation, node)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else Any
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field else Any
        else:  # dict[str, X]
            args = typing.get_args(annotation)
            annotation = args[-1] if args else Any
        node = _child(node, part)
    annotation = _unwrap(annotation, node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any, node: Any) -> Any:
    """Strip Annotated/Optional; pick the union member whose ``kind`` matches the YAML node."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            kind = next((node[t] for t in UNION_TAGS if t in node), None) if isinstance(node, dict) else None
            chosen = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)
                      and kind in _literal_kinds(m)]
            annotation = chosen[0] if chosen else members[0]
        else:
            return annotation


def _literal_kinds(model: type[BaseModel]) -> tuple[Any, ...]:
    field = next((model.model_fields[t] for t in UNION_TAGS if t in model.model_fields), None)
    return typing.get_args(field.annotation) if field else ()
