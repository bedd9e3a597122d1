"""What one line of a measurement file holds, and what is wrong with a malformed one.

A :class:`Record` is one line of a ``.jsonl`` file (one answered query), a
:class:`ServerRecord` one line of the server phase (``"phase": "server"``: a query
asked at a concurrency level, with the batch it saw), a :class:`PromptRecord` one
line of its prompt probe (``"phase": "prompt"``: one item's prompt, new and held), a
:class:`SummaryRow` one row
of a ``.csv`` summary (one task at one budget); a :class:`Problem` locates and
describes one malformed line. :mod:`thinkq.records`
describes the formats and exports these types.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["Problem", "PromptRecord", "Record", "ServerRecord", "SummaryRow"]


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


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ServerRecord(BaseModel):
    """One query of the server phase: asked with ``concurrency`` queries in flight.

    ``batch`` is the time-averaged number of queries the client had in service while
    this one decoded, ``batch_slots`` the mean of the server's busy slots over the
    same window (``slot_samples`` samples); ``predicted_ms`` for ``predicted_n``
    tokens (and ``predicted_per_token_ms``) are the server's own decode timings of
    the thinking request, ``think_s`` the client's wall time of it.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    phase: Literal["server"]
    task: TaskName
    budget: int = Field(ge=0, le=MAX_COUNT)
    concurrency: int = Field(ge=1, le=MAX_COUNT, description="queries kept in flight")
    slots: int = Field(ge=1, le=MAX_COUNT, description="the run's --slots")
    latency_s: Seconds
    batch: float = Field(ge=0, allow_inf_nan=False)
    thinking_tokens: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    batch_slots: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    slot_samples: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    think_s: Seconds | None = None
    predicted_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    predicted_n: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    predicted_per_token_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    item_id: str | int | None = None
    run: str | int | None = None
    model: str | None = None
    error: str | None = None

    @property
    def step_s(self) -> float | None:
        """Seconds per decode step while this query thought: the server's own figure
        (``predicted_per_token_ms``, else ``predicted_ms / predicted_n``), else the
        client's ``think_s`` over the thinking tokens; ``None`` if neither is given."""
        if self.predicted_per_token_ms:
            return self.predicted_per_token_ms / 1e3
        if self.predicted_ms is not None and self.predicted_n:
            return self.predicted_ms / self.predicted_n / 1e3
        tokens = self.thinking_tokens if self.thinking_tokens is not None else self.budget
        if self.think_s and tokens > 0:
            return self.think_s / tokens
        return None


Milliseconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class PromptRecord(BaseModel):
    """One item of the server phase's prompt probe (:mod:`thinkq.measure.prompt_probe`).

    ``new_ms`` is the server's ``timings.prompt_ms`` of the item's prompt made new by a
    unique tag (``new_n`` tokens computed), ``held_ms`` that of the same prompt sent
    again, held in the server's cache (``held_n`` tokens computed). Both are given
    unless the probe failed (``error``).
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    phase: Literal["prompt"]
    task: TaskName
    new_ms: Milliseconds | None = None
    held_ms: Milliseconds | None = None
    new_n: Tokens | None = None
    held_n: Tokens | None = None
    item_id: str | int | None = None
    model: str | None = None
    error: str | None = None
