"""Load a recipe file; every problem is one line, ``recipe.yaml:LINE: field.path: message``
(``factory.core.yaml_files`` finds the line). The loaded recipe keeps its YAML tree so that later
checks (wiring, seeds, tasks) can point at a line too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import RecipeError
from factory.core.yaml_files import format_loc, line_of, read_yaml, validate
from factory.recipe.spec import Recipe


@dataclass
class LoadedRecipe:
    recipe: Recipe
    path: Path
    doc: Any  # the ruamel tree, kept to point later errors (wiring, seeds) at a line

    def line(self, loc: tuple[Any, ...]) -> int | None:
        return line_of(self.doc, loc)

    def error(self, loc: tuple[Any, ...], message: str) -> RecipeError:
        return RecipeError(str(self.path), self.line(loc), format_loc(loc), message)

    def resolve(self, relative: str) -> Path:
        """Paths in a recipe are relative to the recipe file."""
        return (self.path.parent / relative).resolve()


def load_recipe(path: str | Path) -> LoadedRecipe:
    path = Path(path)
    doc = read_yaml(path, "recipe file")
    if not isinstance(doc, dict):
        raise RecipeError(str(path), 1, "", "a recipe is a YAML mapping (name:, seeds:, steps:, ...)")
    # The context lets a step resolve a file it names (e.g. a principles file) next to the recipe.
    recipe = validate(path, doc, Recipe, context={"recipe_dir": str(path.parent.resolve())})
    return LoadedRecipe(recipe, path, doc)
