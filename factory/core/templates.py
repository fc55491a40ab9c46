"""Recipe overrides of a method's prompt templates: names and placeholders checked at load time.

A method keeps its default templates in one module-level dict; a step spec's ``templates:`` mapping
replaces some of them. An unknown name, a placeholder the template may not use, or a missing
required placeholder is a recipe error (one line, with did-you-mean), never a KeyError mid-build.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping

from factory.core.errors import did_you_mean


def template_fields(template: str) -> list[str]:
    """The ``{column}`` names a prompt template uses."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def check_template(template: str | None, allowed: list[str] | set[str], what: str = "'reads'") -> None:
    """Raise ValueError when a template is malformed or uses a name not in ``allowed``."""
    try:
        used = template_fields(template or "")
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from None
    for name in used:
        if name not in allowed:
            raise ValueError(f"template uses {{{name}}} but {what} does not list it"
                             f"{did_you_mean(name, list(allowed))}")


def check_overrides(overrides: Mapping[str, str], defaults: Mapping[str, str],
                    placeholders: Mapping[str, Iterable[str]],
                    optional: Iterable[str] = ()) -> dict[str, str]:
    """The one check of a recipe's ``templates:`` overrides; returns them unchanged, raises
    ValueError on an unknown template name or a bad placeholder.

    ``placeholders[name]``: the fields template ``name`` is rendered with. An override may use only
    those, and must use each one that is not ``optional`` (a rewrite prompt that drops
    ``{instruction}`` would silently ask about nothing).
    """
    skippable = set(optional)
    for name, text in overrides.items():
        if name not in defaults:
            raise ValueError(f"unknown template {name!r}{did_you_mean(name, defaults)}; "
                             f"known: {', '.join(defaults)}")
        allowed = list(placeholders.get(name, ()))
        names = ", ".join("{" + a + "}" for a in allowed)
        try:
            check_template(text, allowed, what=f"template {name!r} ("
                           + (f"it may use only {names})" if allowed else "it takes no placeholders)"))
        except ValueError as exc:
            raise ValueError(f"templates.{name}: {exc}") from None
        missing = [p for p in allowed if p not in skippable and p not in template_fields(text)]
        if missing:
            raise ValueError(f"templates.{name}: must use {', '.join('{' + m + '}' for m in missing)}")
    return dict(overrides)


def merged(overrides: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    return {**defaults, **overrides}
