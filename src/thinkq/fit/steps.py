"""The server phase's records as data for the step-time fit: one row per request.

:func:`step_data` reads the :class:`~thinkq.records.ServerRecord` lines of a
:class:`~thinkq.records.RecordSet`: per request the concurrency level it was asked at,
the batch it saw (the client's time-averaged count of queries in service while it
decoded, and the server's ``/slots`` count where it has one) and its seconds per decode
step (the server's own ``predicted_ms`` timing, else the client's time of the thinking
request over its tokens). A request further than
:data:`~thinkq.fit.latency.OUTLIER_CUTOFF` robust standard deviations from the median
step of its level (a request that stalled) is set aside, as in the latency fit.
Records of different ``slots`` are an error naming the line, and so are fewer than two
concurrency levels: the slope tau1 needs two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from thinkq._typing import FloatArray
from thinkq.errors import FitError, RecordError
from thinkq.fit.latency import fit_line, inliers
from thinkq.records import Problem, RecordSet

__all__ = ["STEADY", "StepData", "step_data"]

#: A request whose time-averaged batch is more than this below its concurrency level
#: saw the batch shrink while it decoded (the last ones of a level, after the queue ran
#: dry): its batch is averaged over time, while its step time is averaged over its
#: tokens, which weigh the small batches more; the fit leaves it out.
STEADY = 0.25


@dataclass(frozen=True)
class StepData:
    """Requests of the server phase, the outliers left out (arrays of one row each).

    ``level`` indexes ``levels`` (the concurrency levels, ascending); ``batch`` is
    the client's batch, ``slot_batch`` the server's (NaN where it has none);
    ``step`` is seconds per decode step, ``latency`` the whole query's seconds;
    ``timing`` says where the steps come from (``"server"``: the server's timings on
    every request, else ``"client"``).
    ``outliers`` and ``tail`` count the requests left out as stalled and as the
    shrinking tail of a level; ``requests`` counts them all.
    """

    slots: int
    levels: NDArray[np.int64]
    level: NDArray[np.intp]
    batch: FloatArray
    slot_batch: FloatArray
    step: FloatArray
    latency: FloatArray
    outliers: int
    requests: int
    timing: str
    tail: int = 0

    @property
    def size(self) -> int:
        return int(self.step.size)

    def means(self, values: FloatArray) -> FloatArray:
        """Per-level means of ``values`` (one per request), NaN-aware."""
        out = np.full(self.levels.size, np.nan)
        for g in range(self.levels.size):
            chosen = values[self.level == g]
            chosen = chosen[np.isfinite(chosen)]
            if chosen.size:
                out[g] = float(chosen.mean())
        return out


def _steady(
    batch: FloatArray, concurrency: NDArray[np.int64], level: NDArray[np.intp], levels: int
) -> NDArray[np.bool_]:
    """True for the requests that saw their level's batch (within :data:`STEADY`) all
    along; a level with fewer than two of them keeps all its requests."""
    steady = batch >= concurrency - STEADY
    for g in range(levels):
        members = level == g
        if int((steady & members).sum()) < 2:
            steady |= members
    return steady


def _where(line: str) -> tuple[str, int | None]:
    path, _, number = line.rpartition(":")
    return (path, int(number)) if number.isdigit() else (line, None)


def step_data(records: RecordSet) -> StepData:
    """The server phase of ``records`` as :class:`StepData`.

    Raises
    ------
    RecordError
        Records of different ``slots`` (the first that differs is named).
    FitError
        No server records, or fewer than two concurrency levels.
    """
    rows = records.server
    if not rows:
        raise FitError("no server-phase records (thinkq profile --slots writes NAME.server.jsonl)")
    slots = rows[0].slots
    for record, line in zip(rows, records.server_lines, strict=True):
        if record.slots != slots:
            path, number = _where(line)
            raise RecordError(
                [Problem(path, number, "slots", f"{record.slots} here, {slots} in the first "
                         "server record: fit one --slots run at a time")]
            )  # fmt: skip
    concurrency = np.array([r.concurrency for r in rows], dtype=np.int64)
    levels, level = np.unique(concurrency, return_inverse=True)
    if levels.size < 2:
        raise FitError(
            f"server-phase records: one concurrency level ({int(levels[0])}) only; the step "
            "time's slope tau1 needs two or more (thinkq profile --slots 2 or more)"
        )
    step = np.array([r.step_s for r in rows], dtype=np.float64)
    batch = np.array([r.batch for r in rows], dtype=np.float64)
    steady = _steady(batch, concurrency, level, levels.size)
    tau0, tau1 = fit_line(batch[steady], step[steady], np.ones(int(steady.sum())))
    keep = inliers(step - (tau0 + tau1 * batch), level, levels.size) & steady
    seen = [np.nan if r.batch_slots is None else r.batch_slots for r in rows]
    timed = all(r.predicted_per_token_ms or (r.predicted_ms and r.predicted_n) for r in rows)
    return StepData(
        slots=slots,
        levels=levels,
        level=level[keep],
        batch=batch[keep],
        slot_batch=np.array(seen, dtype=np.float64)[keep],
        step=step[keep],
        latency=np.array([r.latency_s for r in rows], dtype=np.float64)[keep],
        outliers=int(steady.sum() - keep.sum()),
        requests=int(keep.size),
        tail=int(steady.size - steady.sum()),
        timing="server" if timed else "client",
    )
