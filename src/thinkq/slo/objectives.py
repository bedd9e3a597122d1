"""Latency objectives as operators write them: ``'p95<=8s'``, ``'gsm8k:mean<=2s'``.

Grammar (spaces are ignored, the statistic and unit are case-insensitive)::

    [TASK:]STATISTIC<=TARGET UNIT
    STATISTIC  mean | pQ        Q a percentile strictly between 0 and 100 (p95, p99.9)
    TARGET     a positive, finite number
    UNIT       s | ms | min     seconds, milliseconds, minutes (a bare 'm' is refused:
                                it reads as either)

The task prefix names one task type of the profile (exactly, or case-insensitively
when that is unambiguous); without it the objective is about every query. Every
problem is a ``ValueError`` whose one-line message starts ``slo: 'TEXT':``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["UNITS", "Objective", "parse_objective", "parse_objectives", "resolve_task"]

#: Seconds per unit of a target.
UNITS = {"s": 1.0, "ms": 1e-3, "min": 60.0}
_NUMBER = r"[-+]?(?:nan|inf(?:inity)?|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?)"
_FORM = re.compile(rf"^(?P<stat>mean|p(?P<q>{_NUMBER}))<=(?P<value>{_NUMBER})?(?P<unit>[a-z]*)$")
#: How many task names an unknown-task error lists.
_NAMES_SHOWN = 12


@dataclass(frozen=True)
class Objective:
    """One latency objective: a statistic of the system time at most ``target`` seconds.

    Attributes
    ----------
    percentile:
        The percentile q in (0, 100), or ``None`` for the mean.
    target:
        The bound, seconds (positive, finite).
    task:
        The task type's name, or ``None`` for every query.
    text:
        The objective as written.
    """

    percentile: float | None
    target: float
    task: str | None = None
    text: str = ""

    @property
    def statistic(self) -> str:
        """``"mean"`` or ``"p95"`` (``"p99.9"``)."""
        return "mean" if self.percentile is None else f"p{self.percentile:g}"

    @property
    def exact(self) -> bool:
        """Whether the search along alpha is exact: the overall mean (a Lagrangian)."""
        return self.percentile is None and self.task is None

    def __str__(self) -> str:
        prefix = "" if self.task is None else f"{self.task}:"
        return f"{prefix}{self.statistic}<={self.target:g}s"


def _problem(text: str, problem: str) -> ValueError:
    return ValueError(f"slo: {text!r}: {problem}")


def _target(text: str, value: str | None, unit: str) -> float:
    if not value:
        raise _problem(text, "no target after '<='; write e.g. 'p95<=8s'")
    if unit == "m":
        raise _problem(text, "unit 'm' is ambiguous; write ms (milliseconds) or min (minutes)")
    if not unit:
        raise _problem(text, "the target has no unit; write s, ms or min (e.g. 'p95<=8s')")
    if unit not in UNITS:
        raise _problem(text, f"unknown unit {unit!r}; write s, ms or min")
    try:
        number = float(value)
    except ValueError:
        raise _problem(text, f"the target {value!r} is not a number") from None
    seconds = number * UNITS[unit]
    if not math.isfinite(seconds) or number <= 0 or seconds <= 0:
        raise _problem(text, f"the target must be a positive, finite time, got {value}{unit}")
    return seconds


def parse_objective(text: str) -> Objective:
    """One objective from its text (see the module docstring for the grammar).

    Raises
    ------
    ValueError
        One line, ``slo: 'TEXT': problem``: a malformed string, a percentile outside
        (0, 100), a target that is not a positive, finite time, a missing unit.
    """
    task, colon, rest = str(text).rpartition(":")
    task, body = task.strip(), "".join(rest.split())
    if colon and not task:
        raise _problem(text, "the task name before ':' is empty")
    match = _FORM.match(body.lower())
    if match is None:
        raise _problem(text, "expected [TASK:]mean<=T or [TASK:]pQ<=T with a unit (e.g. 'p95<=8s')")
    q = match.group("q")
    percentile = None if q is None else float(q)
    if percentile is not None and not 0.0 < percentile < 100.0:
        raise _problem(text, f"the percentile must lie strictly between 0 and 100, got {q}")
    target = _target(text, match.group("value"), match.group("unit"))
    return Objective(percentile, target, task or None, str(text))


def parse_objectives(texts: Iterable[str | Objective]) -> tuple[Objective, ...]:
    """Several objectives (all must hold); :class:`Objective` values pass through."""
    parsed = tuple(t if isinstance(t, Objective) else parse_objective(t) for t in texts)
    if not parsed:
        raise ValueError("slo: give at least one objective (e.g. 'p95<=8s')")
    return parsed


def resolve_task(objective: Objective, names: Sequence[str]) -> int | None:
    """The index of ``objective.task`` among ``names`` (``None`` for every query).

    An exact match wins; else a unique case-insensitive one. Raises ``ValueError``
    naming the known tasks otherwise.
    """
    if objective.task is None:
        return None
    if objective.task in names:
        return names.index(objective.task)
    folded = [k for k, name in enumerate(names) if name.lower() == objective.task.lower()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = f", ... ({len(names)} in all)" if len(names) > _NAMES_SHOWN else ""
    problem = "is ambiguous" if folded else "is not a task of the profile"
    raise _problem(objective.text, f"task {objective.task!r} {problem} (tasks: {shown}{more})")
