"""The schema every search configuration is declared in (pydantic): one place for types, ranges and choices.

A configuration class is a frozen dataclass made by :func:`settings`: each field is validated when the object is
built, strictly (no string for a number, no float for an integer, no number for a flag; a list is accepted where
a tuple is declared, as JSON has no tuples), and an unknown field is refused. Ranges are stated on the fields with
the aliases below; checks across fields stay in ``__post_init__`` as an ``LPZeroError``. The workbench turns a
``pydantic.ValidationError`` into one line naming the key, the value and what is allowed
(``workbench.config``); code that builds a config directly gets the ValidationError itself.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

SCHEMA = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Probability = Annotated[float, Field(ge=0, le=1)]


def listed(item):
    """A tuple of ``item`` that may be given as a JSON list (the items stay strict)."""
    return Annotated[tuple[item, ...], Field(strict=False)]


def settings(cls):
    """A frozen, validated settings dataclass (:data:`SCHEMA`)."""
    return dataclass(frozen=True, config=SCHEMA)(cls)
