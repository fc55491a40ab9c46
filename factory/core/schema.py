"""Pydantic base for every recipe and config schema: ``extra="forbid"``, so a typo is an error with
a line number, never a silent default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
