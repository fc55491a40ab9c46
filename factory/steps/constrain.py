"""``kind: constrain`` — attach verifiable instruction-following constraints to each prompt.

No model call: 1-3 compatible constraints (``factory.core.constraints``) are drawn per record from
the build's seeded RNG (same seed, same record -> same constraints on every run and machine), their
sentences appended to the prompt (on its line, the next line or after a blank line, drawn too).
Writes ``[prompt_with_constraints, constraints]``; the second column is the list
``[{id, kwargs, text}]`` the ``constraints`` verifier checks answers against.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from factory.core.constraints import CATALOG, Constraint, ConstraintError
from factory.core.constraints.sampling import (
    SEPARATORS,
    conflict,
    default_weights,
    sample_constraints,
    sentence,
    types_conflict,
    with_constraints,
)
from factory.core.constraints.spec import validate_kwargs
from factory.core.errors import did_you_mean
from factory.core.record import Rejected
from factory.core.schema import Strict
from factory.steps.base import StepBase, StepContext, StepRunner


def known_constraint(value: str) -> str:
    if value not in CATALOG:
        raise ValueError(f"unknown constraint {value!r}{did_you_mean(value, CATALOG)}; see the "
                         "catalogue in the README (Constraints)")
    return value


ConstraintId = Annotated[str, AfterValidator(known_constraint)]


class FixedConstraint(Strict):
    """A constraint every record gets, with its parameters."""

    id: ConstraintId
    kwargs: dict[str, Any] = Field(default_factory=dict)
    text: str | None = Field(None, description="the sentence for the prompt (default: a phrasing "
                                               "from the catalogue)")

    @field_validator("kwargs")
    @classmethod
    def valid_kwargs(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        ctype = CATALOG.get(info.data.get("id", ""))
        if ctype is None:
            return value
        try:
            return validate_kwargs(ctype, value)
        except ConstraintError as exc:
            raise ValueError(str(exc)) from None


class ConstrainStep(StepBase):
    """Reads [prompt]; writes [prompt_with_constraints, constraints]."""

    kind: Literal["constrain"]
    count: tuple[int, int] = Field((1, 3), description="[min, max] sampled constraints per record")
    types: dict[ConstraintId, float] | None = Field(None, description="constraint id -> weight (the "
                                                    "mix to sample from); default: the catalogue's")
    always: list[FixedConstraint] = Field(default_factory=list, description="constraints every "
                                          "record gets, before the sampled ones")

    @field_validator("count")
    @classmethod
    def ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] <= value[1] <= 5:
            raise ValueError("count is [min, max] with 0 <= min <= max <= 5")
        return value

    @field_validator("types")
    @classmethod
    def some_weight(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and (any(w < 0 for w in value.values()) or not any(value.values())):
            raise ValueError("weights are >= 0 and at least one is > 0")
        return value

    @model_validator(mode="after")
    def shape(self) -> "ConstrainStep":
        self.require_columns("[prompt]", "[prompt_with_constraints, constraints]")
        fixed = [Constraint(c.id, c.kwargs) for c in self.always]
        why = conflict(fixed)
        if why:
            raise ValueError(f"'always' constraints contradict each other: {why}")
        return self


class Constrain(StepRunner):
    spec: ConstrainStep
    local = True  # calls no model: the dry run samples it too

    def __init__(self, spec: ConstrainStep, params: Any) -> None:
        super().__init__(spec, params)
        weights = spec.types if spec.types is not None else default_weights()
        fixed_ids = [c.id for c in spec.always]
        # Types that can never join the fixed ones are left out of the mix up front.
        self.weights = {t: w for t, w in weights.items()
                        if w > 0 and not any(types_conflict(t, f) for f in fixed_ids)}

    async def run(self, fields: dict[str, Any], ctx: StepContext) -> dict[str, Any] | Rejected:
        prompt = fields[self.spec.reads[0]]
        if not isinstance(prompt, str) or not prompt.strip():
            return Rejected("empty_prompt", f"column {self.spec.reads[0]!r} holds no text")
        rng = ctx.rng("constraints")
        fixed = [Constraint(c.id, c.kwargs, c.text or sentence(CATALOG[c.id].phrase(c.kwargs, rng)))
                 for c in self.spec.always]
        low, high = self.spec.count
        drawn = sample_constraints(rng, prompt, self.weights, low, high, fixed=fixed) if high else []
        chosen = fixed + drawn
        if len(drawn) < low or not chosen:
            return Rejected("no_compatible_constraints", f"drew {len(drawn)} of at least {low} "
                            "from the mix for this prompt")
        ctx.count(f"records_with_{len(chosen)}_constraints")
        for c in chosen:
            ctx.count(f"type:{c.id}")
        out_prompt, out_constraints = self.spec.writes
        return {out_prompt: with_constraints(prompt, chosen, rng.choice(SEPARATORS)),
                out_constraints: [c.as_dict() for c in chosen]}

    def card_section(self, figures: Counter) -> str:
        per_type = sorted(((k[5:], n) for k, n in figures.items() if k.startswith("type:")),
                          key=lambda kv: (-kv[1], kv[0]))
        if not per_type:
            return ""
        sizes = ", ".join(f"{k.split('_')[2]}: {n}" for k, n in sorted(figures.items())
                          if k.startswith("records_with_"))
        rows = "\n".join(f"| `{t}` | {CATALOG[t].about} | {CATALOG[t].checker_name} | {n} |"
                         for t, n in per_type)
        return (f"## Constraints (step `{self.name}`)\n\nEach prompt carries its constraints in the "
                f"`{self.spec.writes[1]}` column (`id`, `kwargs`, the sentence `text`); records by number "
                f"of constraints: {sizes}.\n\n| constraint | what | checker | records |\n|---|---|---|---|\n"
                f"{rows}\n")
