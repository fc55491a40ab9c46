"""The recipe's ``samplers:`` block: seed columns drawn from declared axes instead of (or beside) a
seed file, so variety is built in before anything is generated.

Shape and per-entry rules live here (pydantic, one line per problem); rules that span entries
(a subcategory's parent, column name clashes, the seed file's columns) are checked in
``factory.recipe.samplers`` with the recipe's line numbers.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from factory.core.schema import IDENTIFIER, Strict
from factory.llm.spec import Params

Scalar = Union[str, int, float, bool]
# A plain list (equal weights) or a mapping value -> weight.
Values = Union[list[Scalar], dict[str, float]]


def check_weights(values: Values, what: str = "values") -> Values:
    """Weights must be >= 0 and sum to more than 0; a list needs at least one value."""
    if isinstance(values, dict):
        if not values:
            raise ValueError(f"{what} is empty")
        bad = {k: w for k, w in values.items() if w < 0}
        if bad:
            raise ValueError(f"{what}: negative weight(s) {bad}")
        if sum(values.values()) <= 0:
            raise ValueError(f"{what}: weights must sum to more than 0 (got {sum(values.values()):g})")
    elif not values:
        raise ValueError(f"{what} is empty")
    elif len(set(map(repr, values))) != len(values):
        raise ValueError(f"{what}: a value is listed twice")
    return values


def choices(values: Values) -> tuple[list[Scalar], list[float]]:
    """(values, weights) of a list or a mapping."""
    if isinstance(values, dict):
        return list(values), list(values.values())
    return list(values), [1.0] * len(values)


class SamplerBase(Strict):
    name: str = Field(pattern=IDENTIFIER, description="the column this sampler writes")

    def columns(self) -> list[str]:
        return [self.name]


class CategorySampler(SamplerBase):
    """One of a list of values, equally likely, or weighted by a mapping ``value: weight``."""

    type: Literal["category"]
    values: Values

    @field_validator("values")
    @classmethod
    def weights(cls, value: Values) -> Values:
        return check_weights(value)


class SubcategorySampler(SamplerBase):
    """A value drawn from the list that belongs to the row's value of category column ``of``."""

    type: Literal["subcategory"]
    of: str = Field(description="an earlier category or subcategory column")
    values: dict[str, Values] = Field(description="parent value -> its subcategories (list or weights)")

    @field_validator("values")
    @classmethod
    def weights(cls, value: dict[str, Values]) -> dict[str, Values]:
        for parent, sub in value.items():
            check_weights(sub, f"values.{parent}")
        return value


class NumericSampler(SamplerBase):
    """A number: ``uniform`` in [low, high], ``integer`` in low..high, or ``normal`` (mean, std),
    clipped to [low, high] when given."""

    type: Literal["numeric"]
    distribution: Literal["uniform", "integer", "normal"] = "uniform"
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: float | None = Field(None, gt=0)
    decimals: int = Field(2, ge=0, le=10, description="uniform and normal values are rounded to this")

    @model_validator(mode="after")
    def bounds(self) -> "NumericSampler":
        if self.distribution == "normal":
            if self.mean is None or self.std is None:
                raise ValueError("a normal distribution needs 'mean' and 'std'")
        elif self.low is None or self.high is None:
            raise ValueError(f"a {self.distribution} distribution needs 'low' and 'high'")
        if self.distribution == "integer" and not (float(self.low).is_integer()
                                                   and float(self.high).is_integer()):
            raise ValueError("integer bounds must be whole numbers")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        return self


class GridSampler(SamplerBase):
    """Attribute grid: one column per axis. ``all`` walks every combination in turn (row i takes
    combination i modulo their number), ``sample`` draws a combination per row."""

    type: Literal["grid"]
    axes: dict[str, list[Scalar]] = Field(min_length=1, description="column -> its values")
    mode: Literal["all", "sample"] = "all"

    @field_validator("axes")
    @classmethod
    def axis_values(cls, value: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        for axis, values in value.items():
            if not isinstance(axis, str) or not axis.isidentifier():
                raise ValueError(f"axis name {axis!r} is not an identifier")
            check_weights(values, f"axes.{axis}")
        return value

    def columns(self) -> list[str]:
        return list(self.axes)


class DraftedSampler(SamplerBase):
    """A sampler whose values the build asks a backend for once (cached like any call)."""

    backend: str = Field("default", description="'default' or a key of the recipe's 'backends'")
    params: Params = Params()


class PersonaSampler(DraftedSampler):
    """A persona per row: from the user's file (one per line of .txt, or a column of a data file),
    or ``draft`` personas the build asks the backend for once and caches."""

    type: Literal["persona"]
    path: str | None = Field(None, description=".txt (one persona per line) or a data file, "
                                               "relative to the recipe")
    field: str = Field("persona", description="the column holding the persona in a data file")
    draft: int | None = Field(None, ge=1, le=1000, description="personas to draft with the backend")
    describe: str | None = Field(None, description="who the drafted personas are (e.g. 'users of a "
                                                   "cooking app')")

    @model_validator(mode="after")
    def one_source(self) -> "PersonaSampler":
        if (self.path is None) == (self.draft is None):
            raise ValueError("give exactly one of 'path' (your personas) or 'draft' (how many to draft)")
        if self.draft is not None and not (self.describe or "").strip():
            raise ValueError("'draft' needs 'describe': who the personas are")
        return self


class TopicTreeSampler(DraftedSampler):
    """A leaf of a topic tree the backend grows from ``root``, level by level (each node's
    expansion is one cached call); ``path_column`` also writes the path from the root."""

    type: Literal["topic_tree"]
    root: str = Field(min_length=1)
    depth: int = Field(2, ge=1, le=4, description="levels below the root")
    branching: int = Field(4, ge=2, le=12, description="subtopics asked for per node")
    path_column: str | None = Field(None, pattern=IDENTIFIER)

    def columns(self) -> list[str]:
        return [self.name] + ([self.path_column] if self.path_column else [])


Sampler = Annotated[Union[CategorySampler, SubcategorySampler, NumericSampler, GridSampler,
                          PersonaSampler, TopicTreeSampler], Field(discriminator="type")]


class SamplersBlock(Strict):
    count: int | None = Field(None, ge=1, le=100_000_000, description="rows to make (without a seed "
                                                                      "file; with one, its rows count)")
    columns: list[Sampler] = Field(default_factory=list)

    def sampled_columns(self) -> list[str]:
        return [c for s in self.columns for c in s.columns()]
