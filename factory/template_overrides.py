"""Recipe overrides of a method's prompt templates: names and placeholders checked at load time.

A method keeps its default templates in one module-level dict; a step spec's ``templates:`` mapping
replaces some of them. An unknown name, a placeholder the template may not use, or a missing
required placeholder is a recipe error (one line, with did-you-mean), never a KeyError mid-build.
"""

from __future__ import annotations

from collections.abc import Mapping

from factory.errors import did_you_mean
from factory.schema import check_template, template_fields


def check_overrides(overrides: Mapping[str, str], defaults: Mapping[str, str],
                    placeholders: Mapping[str, tuple[str, ...]]) -> None:
    """Raise ValueError on an unknown template name or a bad placeholder.

    ``placeholders[name]``: the fields template ``name`` is rendered with; each must appear in an
    override (a rewrite prompt that drops ``{instruction}`` would silently ask about nothing).
    """
    for name, text in overrides.items():
        if name not in defaults:
            raise ValueError(f"unknown template {name!r}{did_you_mean(name, defaults)}; "
                             f"known: {', '.join(defaults)}")
        allowed = placeholders.get(name, ())
        names = ", ".join("{" + a + "}" for a in allowed)
        try:
            check_template(text, allowed, what=f"template {name!r} ("
                           + (f"it may use only {names})" if allowed else "it takes no placeholders)"))
        except ValueError as exc:
            raise ValueError(f"templates.{name}: {exc}") from None
        missing = [p for p in allowed if p not in template_fields(text)]
        if missing:
            raise ValueError(f"templates.{name}: must use {', '.join('{' + m + '}' for m in missing)}")


def merged(overrides: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    return {**defaults, **overrides}
