"""Schema pieces shared by the recipe and every step kind's spec (each step module owns its spec).

Pydantic with ``extra="forbid"``: a typo is an error with a line number, never a silent default.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from factory.backends.base import SamplingParams
from factory.errors import did_you_mean

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Params(Strict):
    """Sampling parameters; on a step, only the ones given override the backend's."""

    temperature: float | None = Field(None, ge=0, le=2, description="0 = greedy")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, description="0 = off")
    max_tokens: int | None = Field(None, ge=1, le=32768)
    stop: list[str] | None = None

    def over(self, base: SamplingParams) -> SamplingParams:
        given = {k: v for k, v in self.model_dump().items() if v is not None}
        if "stop" in given:
            given["stop"] = tuple(given["stop"])
        return SamplingParams(**{**base.as_dict(), "stop": tuple(base.stop), **given})


class StepBase(Strict):
    name: str = Field(pattern=IDENTIFIER)
    reads: list[str] = Field(default_factory=list, description="columns this step reads")
    writes: list[str] = Field(description="columns this step writes")
    backend: str = Field("default", description="'default' or a key of the recipe's 'backends'")
    params: Params = Params()
    # The recipe's folder (set when the recipe is planned): files a step names are relative to it.
    _recipe_dir: Path | None = PrivateAttr(None)

    @field_validator("writes", mode="before")
    @classmethod
    def one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def require_columns(self, reads: str | None, writes: str | None) -> None:
        """For steps whose columns have fixed roles: ``reads``/``writes`` name them, e.g. "[a, b]"."""
        for field, roles in (("reads", reads), ("writes", writes)):
            if roles is not None and len(getattr(self, field)) != roles.count(",") + 1:
                raise ValueError(f"{self.kind} {field} exactly {roles}")

    def backend_refs(self) -> dict[str, str]:
        """Backend keys this step calls, by field path (a step with a separate judge adds its own)."""
        return {"backend": self.backend}

    def code_refs(self) -> dict[str, str]:
        """User code (``module:function``) this step imports, by field path: needs --trust-code."""
        return {}

    def backends_used(self) -> list[str]:
        return list(dict.fromkeys(self.backend_refs().values()))


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
