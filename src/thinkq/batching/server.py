"""The batched server: ``slots`` sequences decoded at once, a step time that grows with them.

The semantics every part of thinkq shares (``docs/batching.md``):

* a query of type k has the solo service time t_k = t0_k + c_k l_k of the paper (eq. 1),
  its time when it runs alone;
* a decode step with n sequences in the batch takes tau(n) = tau0 + tau1 n seconds, so
  while n queries are in service (n <= B = ``slots``) each advances at
  ``tau(1) / tau(n)`` of its solo speed, and the server as a whole does
  C(n) = n tau(1) / tau(n) solo-seconds of work per second (its *capacity*);
* a query that arrives to B queries in service waits in FIFO order;
* with a prompt stage (``prompt`` = p > 0 seconds, llama.cpp's semantics) a query that
  takes a slot first has its prompt computed alone, at full speed, one prompt at a time,
  while every decoding sequence waits; the rest of its solo time, t_k - p, decodes as
  above. p is the mean over queries (the server's prompt time with its cache, part of
  every solo time: it must be below E[S] at zero budgets). Without it (p = 0) prompts
  are batched like decode steps.

Where the step time is not linear in the batch (a measured server may bend: llama.cpp
on two cores takes twice as long a step for two sequences as for one, then less
than linear beyond), ``steps`` gives it as points (n, seconds), measured or the bent
law ``thinkq fit`` writes at every n (:mod:`thinkq.fit.law`): tau(n) is their
piecewise-linear interpolation, continued beyond the last point along the last
segment (never decreasing). tau0 and tau1 then stay as the fitted line, for reference.

``slots = 1`` is the paper's FIFO M/G/1 server. tau1 = 0 is perfect batching (C(n) = n,
the M/G/B queue); tau0 = 0 is no batching gain (C(n) = 1, processor sharing among at
most B). Only the ratio tau1 / tau0 shapes the queue; the absolute step time is what a
server reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thinkq._typing import FloatArray
from thinkq.errors import ProfileError

__all__ = ["PROMPT_SLOTS", "UNLIMITED_SLOTS", "Server"]

#: A number of slots that stands for "unlimited" in profiles and figures.
UNLIMITED_SLOTS = 1_000_000


@dataclass(frozen=True, slots=True)
class Server:
    """A server with ``slots`` decode slots and step time ``tau0 + tau1 n`` (seconds).

    ``steps``, if given, is the step time measured at batch sizes n: pairs
    (n, seconds) with n = 1 first, increasing, at most ``slots``; tau(n) is then their
    piecewise-linear interpolation (see the module). Raises
    :class:`~thinkq.errors.ProfileError` naming the field (``server.slots``,
    ``server.tau0``, ``server.tau1``, ``server.steps``) when a value is out of range.
    """

    slots: int = 1
    tau0: float = 1.0
    tau1: float = 0.0
    steps: tuple[tuple[int, float], ...] = ()
    #: Mean seconds of prompt a query's slot computes alone while the batch waits (llama.cpp's
    #: semantics; 0: prompts are batched like decode steps). Part of every solo time.
    prompt: float = 0.0
    #: C(B), computed once (the solver reads it thousands of times).
    _max_capacity: float = field(init=False, repr=False, compare=False)
    #: The hash of the fields, computed once (the delay law's caches are keyed by server).
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.slots, bool) or not isinstance(self.slots, int):
            raise ProfileError(
                f"field 'server.slots': expected an integer >= 1, got {self.slots!r}",
                field="server.slots",
            )
        if self.slots < 1:
            raise ProfileError(
                f"field 'server.slots': must be >= 1, got {self.slots}", field="server.slots"
            )
        for name in ("tau0", "tau1"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ProfileError(
                    f"field 'server.{name}': expected a number of seconds, got {value!r}",
                    field=f"server.{name}",
                )
            if not math.isfinite(value) or value < 0:
                raise ProfileError(
                    f"field 'server.{name}': must be finite and >= 0 (seconds), got {value}",
                    field=f"server.{name}",
                )
        if self.tau0 + self.tau1 <= 0:
            raise ProfileError(
                "field 'server.tau0': tau0 and tau1 cannot both be 0 (a step must take time)",
                field="server.tau0",
            )
        if not math.isfinite(self.tau0 + self.tau1 * self.slots):
            raise ProfileError(
                f"field 'server.tau1': the step time with every slot busy, tau0 + tau1 B, "
                f"overflows (tau0 = {self.tau0:g}, tau1 = {self.tau1:g}, B = {self.slots})",
                field="server.tau1",
            )
        object.__setattr__(self, "steps", _checked_steps(self.steps, self.slots))
        _check_prompt(self.prompt, self.slots)
        object.__setattr__(self, "_max_capacity", self.capacity(self.slots))
        fields = (self.slots, self.tau0, self.tau1, self.steps, self.prompt)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    def to_dict(self) -> dict[str, Any]:
        """The ``[server]`` table of a profile file."""
        table: dict[str, Any] = {"slots": self.slots, "tau0": self.tau0, "tau1": self.tau1}
        if self.steps:
            table["steps"] = [[n, t] for n, t in self.steps]
        if self.prompt:
            table["prompt"] = self.prompt
        return table

    @property
    def single(self) -> bool:
        """Whether this is the paper's one-at-a-time server (``slots == 1``)."""
        return self.slots == 1

    def step_time(self, n: float) -> float:
        """tau(n): seconds per decode step with n sequences in the batch (tau0 + tau1 n,
        or the ``steps`` interpolated)."""
        if not self.steps:
            return self.tau0 + self.tau1 * n
        return float(self.step_times(np.array([float(n)]))[0])

    def step_times(self, n: FloatArray) -> FloatArray:
        """tau(n) for an array of batch sizes (n >= 1)."""
        if not self.steps:
            return self.tau0 + self.tau1 * n
        where = np.array([p[0] for p in self.steps], dtype=np.float64)
        times = np.array([p[1] for p in self.steps], dtype=np.float64)
        a, b = self.tail_line()
        result: FloatArray = np.where(n <= where[-1], np.interp(n, where, times), a + b * n)
        return result

    def tail_line(self) -> tuple[float, float]:
        """(a, b) with tau(n) = a + b n beyond the last measured point (tau0, tau1 without
        ``steps``): the last segment, its slope at least 0."""
        if not self.steps:
            return self.tau0, self.tau1
        (n1, t1), (n2, t2) = (self.steps[-2], self.steps[-1]) if len(self.steps) > 1 else (
            (0, self.steps[-1][1]), self.steps[-1])  # fmt: skip
        slope = max((t2 - t1) / (n2 - n1), 0.0)
        return t2 - slope * n2, slope

    def step_table(self) -> FloatArray:
        """tau(n) for n = 0 .. the last measured point (entry 0 is tau(1)); empty without
        ``steps`` (the simulator's kernel reads it, and the line beyond it)."""
        if not self.steps:
            return np.empty(0)
        last = self.steps[-1][0]
        table = self.step_times(np.arange(last + 1, dtype=np.float64))
        table[0] = table[1] if last >= 1 else table[0]
        return table

    @property
    def law(self) -> str:
        """The step-time law in words, for tables: the line, or the steps."""
        prompt = f"; prompts {self.prompt:.4g} s alone" if self.prompt else ""
        if not self.steps:
            return f"{self.tau0:g} + {self.tau1:g} n{prompt}"
        points = ", ".join(f"{t:.4g} at {n}" for n, t in self.steps)
        return f"steps {points} (interpolated){prompt}"

    def speed(self, n: float) -> float:
        """tau(1) / tau(n): each sequence's speed relative to running alone (n >= 1)."""
        return self.step_time(1) / self.step_time(n)

    def capacity(self, n: float) -> float:
        """C(min(n, B)): solo-seconds of work the server does per second with n present."""
        m = min(n, self.slots)
        return m * self.speed(m) if m > 0 else 0.0

    @property
    def max_capacity(self) -> float:
        """C(B), the most work per second of decode: without a prompt stage, stability
        needs rate * E[S] < C(B) (:meth:`load_limit`)."""
        return self._max_capacity

    def utilization(self, rate: float, mean: float) -> float:
        """The saturated server's share of time the load needs: rate (p + (E[S] - p) / C(B)),
        prompts at full speed and the rest at C(B) (rate E[S] / C(B) without prompts)."""
        if not self.prompt:
            return rate * mean / self._max_capacity
        return rate * (self.prompt + (mean - self.prompt) / self._max_capacity)

    def load_limit(self, rate: float) -> float:
        """The bound on the offered load rate * E[S] for stability at arrival rate ``rate``:
        C(B) - rate p (C(B) - 1), where :meth:`utilization` reaches 1."""
        if not self.prompt:
            return self._max_capacity
        return self._max_capacity - rate * self.prompt * (self._max_capacity - 1.0)

    def rate_limit(self, mean: float) -> float:
        """The arrival rate at which :meth:`utilization` reaches 1 with mean solo time
        ``mean`` > 0: C(B) / E[S] without prompts, 1 / (p + (E[S] - p) / C(B)) with."""
        if not self.prompt:
            return self._max_capacity / mean
        return 1.0 / (self.prompt + (mean - self.prompt) / self._max_capacity)


#: The most slots the prompt stage's chain is solved for (its states grow with B).
PROMPT_SLOTS = 32


def _check_prompt(prompt: Any, slots: int) -> None:
    """``prompt`` is finite seconds >= 0, with at most ``PROMPT_SLOTS`` slots when > 0."""
    if isinstance(prompt, bool) or not isinstance(prompt, int | float):
        raise ProfileError(
            f"field 'server.prompt': expected a number of seconds, got {prompt!r}",
            field="server.prompt",
        )
    if not (math.isfinite(prompt) and prompt >= 0):
        raise ProfileError(
            f"field 'server.prompt': must be finite and >= 0 (seconds), got {prompt}",
            field="server.prompt",
        )
    if prompt > 0 and slots > PROMPT_SLOTS:
        raise ProfileError(
            f"field 'server.prompt': the prompt stage is modelled for at most {PROMPT_SLOTS} "
            f"slots, got slots = {slots}",
            field="server.prompt",
        )


def _checked_steps(steps: Any, slots: int) -> tuple[tuple[int, float], ...]:
    """``steps`` as a tuple of (n, seconds), or a one-line error naming ``server.steps``."""

    def bad(why: str) -> ProfileError:
        return ProfileError(f"field 'server.steps': {why}", field="server.steps")

    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise bad(f"expected a list of [n, seconds] pairs, got {steps!r}")
    points: list[tuple[int, float]] = []
    for item in steps:
        if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 2:
            raise bad(f"expected [n, seconds] pairs, got {item!r}")
        n, t = item
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= slots:
            raise bad(f"n must be an integer in [1, slots = {slots}], got {n!r}")
        if isinstance(t, bool) or not isinstance(t, int | float) or not (0 < t < math.inf):
            raise bad(f"seconds per step must be finite and > 0, got {t!r} at n = {n}")
        if points and n <= points[-1][0]:
            raise bad(f"n must increase, got {n} after {points[-1][0]}")
        points.append((n, float(t)))
    if points and points[0][0] != 1:
        raise bad(f"the first point must be n = 1 (running alone), got n = {points[0][0]}")
    return tuple(points)
