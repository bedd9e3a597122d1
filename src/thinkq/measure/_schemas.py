"""Schemas of the benchmark rows, and their validation into :class:`DatasetError`.

One pydantic model per benchmark gives the fields its builder (:mod:`._loaders`)
reads, in the layout of the local copies (``shared/data/benchmarks``); hub rows are
adapted to that layout first. :func:`validate` names the file, row and field of a
malformed row, never its content: GPQA's authors ask that its items not be reposted
in plain text.
"""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from thinkq.errors import DatasetError
from thinkq.measure._sources import Row

__all__ = ["AIMERow", "ARCRow", "BBHRow", "CRUXRow", "GPQARow", "GSM8KRow", "validate"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class GSM8KRow(_Row):
    question: str
    answer: str

    @field_validator("answer")
    @classmethod
    def _final_answer(cls, value: str) -> str:
        if "####" not in value:
            raise ValueError("has no final answer after '####'")
        return value.rsplit("####", 1)[1].strip().replace(",", "")


class AIMERow(_Row):
    id: str
    problem: str
    answer: str
    url: str | None = None

    @field_validator("answer")
    @classmethod
    def _integer(cls, value: str) -> str:
        if not re.fullmatch(r"\d{1,3}", value.strip()):
            raise ValueError("is not an integer from 0 to 999")
        return value.strip()


class GPQARow(_Row):
    question: str
    correct: str
    incorrect: tuple[str, str, str]
    record_id: str


class CRUXRow(_Row):
    id: str
    code: str
    input: str
    output: str


class BBHRow(_Row):
    input: str
    target: str


class _ARCChoice(_Row):
    text: str
    label: str


class _ARCQuestion(_Row):
    stem: str
    choices: list[_ARCChoice]


class ARCRow(_Row):
    id: str
    question: _ARCQuestion
    answerKey: str


_M = TypeVar("_M", bound=BaseModel)


def validate(model: type[_M], row: Row, where: str, number: int) -> _M:
    """Row ``number`` (1-based) of ``where`` as a ``model``, or a :class:`DatasetError`."""
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "row"
        # name the field and the problem, never the value; "from None" keeps pydantic's
        # message, which quotes the row, out of tracebacks (GPQA is private)
        message = f"{where} row {number}: field '{field}' {error['msg'].lower()}"
    raise DatasetError(message, field=field) from None
