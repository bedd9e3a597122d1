"""The batched server: ``slots`` sequences decoded at once, a step time that grows with them.

The semantics every part of thinkq shares (``docs/batching.md``):

* a query of type k has the solo service time t_k = t0_k + c_k l_k of the paper (eq. 1),
  its time when it runs alone;
* a decode step with n sequences in the batch takes tau(n) = tau0 + tau1 n seconds, so
  while n queries are in service (n <= B = ``slots``) each advances at
  ``tau(1) / tau(n)`` of its solo speed, and the server as a whole does
  C(n) = n tau(1) / tau(n) solo-seconds of work per second (its *capacity*);
* a query that arrives to B queries in service waits in FIFO order.

``slots = 1`` is the paper's FIFO M/G/1 server. tau1 = 0 is perfect batching (C(n) = n,
the M/G/B queue); tau0 = 0 is no batching gain (C(n) = 1, processor sharing among at
most B). Only the ratio tau1 / tau0 shapes the queue; the absolute step time is what a
server reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from thinkq.errors import ProfileError

__all__ = ["UNLIMITED_SLOTS", "Server"]

#: A number of slots that stands for "unlimited" in profiles and figures.
UNLIMITED_SLOTS = 1_000_000


@dataclass(frozen=True, slots=True)
class Server:
    """A server with ``slots`` decode slots and step time ``tau0 + tau1 n`` (seconds).

    Raises :class:`~thinkq.errors.ProfileError` naming the field (``server.slots``,
    ``server.tau0``, ``server.tau1``) when a value is out of range.
    """

    slots: int = 1
    tau0: float = 1.0
    tau1: float = 0.0
    #: C(B), computed once (the solver reads it thousands of times).
    _max_capacity: float = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "_max_capacity", self.capacity(self.slots))

    def to_dict(self) -> dict[str, float | int]:
        """The ``[server]`` table of a profile file."""
        return {"slots": self.slots, "tau0": self.tau0, "tau1": self.tau1}

    @property
    def single(self) -> bool:
        """Whether this is the paper's one-at-a-time server (``slots == 1``)."""
        return self.slots == 1

    def step_time(self, n: float) -> float:
        """tau(n) = tau0 + tau1 n: seconds per decode step with n sequences in the batch."""
        return self.tau0 + self.tau1 * n

    def speed(self, n: float) -> float:
        """tau(1) / tau(n): each sequence's speed relative to running alone (n >= 1)."""
        return (self.tau0 + self.tau1) / (self.tau0 + self.tau1 * n)

    def capacity(self, n: float) -> float:
        """C(min(n, B)): solo-seconds of work the server does per second with n present."""
        m = min(n, self.slots)
        return m * self.speed(m) if m > 0 else 0.0

    @property
    def max_capacity(self) -> float:
        """C(B), the most work per second: stability needs rate * E[S] < C(B)."""
        return self._max_capacity
