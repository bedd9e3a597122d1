"""What one line of a measurement file holds, and what is wrong with a malformed one.

A :class:`Record` is one line of a ``.jsonl`` file (one answered query), a
:class:`SummaryRow` one row of a ``.csv`` summary (one task at one budget); a
:class:`Problem` locates and describes one malformed line. :mod:`thinkq.records`
describes the formats and exports these types.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["Problem", "Record", "SummaryRow"]


def _named(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty name")
    return value


#: Counts and budgets above this are not exact as floats (2^53): refused as malformed.
MAX_COUNT = 2**53

#: A task name: a string with something besides white space.
TaskName = Annotated[str, Field(min_length=1), AfterValidator(_named)]


class Problem(NamedTuple):
    """One malformed line: where it is, which field, what is wrong."""

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


class Record(BaseModel):
    """One answered query, one line of a ``.jsonl`` file."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    task: TaskName
    budget: int = Field(ge=0, le=MAX_COUNT, description="enforced thinking-token budget l (tokens)")
    correct: bool
    latency_s: float = Field(ge=0, allow_inf_nan=False, description="end-to-end seconds")
    thinking_tokens: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    answer_tokens: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    item_id: str | int | None = None
    run: str | int | None = None
    model: str | None = None
    error: str | None = Field(default=None, description="why the query failed, if it did")


class SummaryRow(BaseModel):
    """One task at one budget, one row of a ``.csv`` summary (all text: parsed here)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    task: TaskName
    budget: int = Field(ge=0, le=MAX_COUNT)
    n: int = Field(ge=1, le=MAX_COUNT, description="queries measured")
    correct: int = Field(
        ge=0, le=MAX_COUNT, description="how many of the n were answered correctly"
    )
    mean_latency_s: float = Field(ge=0, allow_inf_nan=False)
    latency_variance_s2: float | None = Field(default=None, ge=0, allow_inf_nan=False)
