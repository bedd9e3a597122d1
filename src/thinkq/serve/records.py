"""What the gateway keeps of finished requests: a :class:`Record` each, for a window.

Every request leaves a :class:`Record`: arrival, wait, service time, type, budget,
thinking tokens, outcome and mean batch. :class:`Records` keeps those of the last
``window`` seconds for the measured mean system time and mean batch.

The two means are read at every re-solve, every ``/metrics`` scrape and every poll of
the live page, while the window holds every request of the last minute (12,000 at
200 requests/s): :class:`Records` keeps the sums they need as records come and go,
so a read costs the records that left the window since the last one, not a pass over
the window (which stopped the event loop for about a millisecond at that size). The
sums are of the same floats as before; added and taken away in another order they
may differ from a fresh sum in the last bits, and they start again from zero
whenever the window is empty.

:meth:`Records.add` only holds the record (a list's append, on the request's path);
the records held are kept at the next read, at :meth:`Records.settle` (which the
gateway runs when no request is in progress, :mod:`thinkq.serve.collector`), or once
:data:`HOLD` are held, so every read sees every record added before it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from thinkq.serve.estimator import Clock

__all__ = ["HOLD", "Held", "Record", "Records"]

#: Records held at most before they are kept (:meth:`Records.add`).
HOLD = 256


@dataclass(frozen=True, slots=True)
class Record:
    """One request as the gateway saw it (times in seconds, by the gateway's clock).

    ``outcome`` is ``"ok"``, ``"upstream_error"`` or ``"disconnected"``; ``wait`` is
    the time in the queue and ``service`` the time in a slot (both 0 if never served);
    ``batch`` the mean number of requests in service (itself included) while it was.
    """

    arrival: float
    wait: float
    service: float
    task: str
    budget: int
    thinking_tokens: int
    outcome: str
    batch: float = 1.0

    @property
    def system_time(self) -> float:
        """Wait plus service: the sojourn time of eq. (6), seconds."""
        return self.wait + self.service


class Held:
    """Records held off the requests' path, each handed to ``keep`` at :meth:`settle`,
    or at once when :data:`HOLD` are held."""

    __slots__ = ("keep", "records")

    def __init__(self, keep: Callable[[Record], None]) -> None:
        self.keep = keep
        self.records: list[Record] = []

    def add(self, record: Record) -> None:
        """Hold ``record``."""
        records = self.records
        records.append(record)
        if len(records) >= HOLD:
            self.settle()

    def settle(self) -> None:
        """Hand the records held to ``keep``, in the order they came."""
        records, self.records = self.records, []
        for record in records:
            self.keep(record)


#: Record's fields, in order: the columns :class:`Records` keeps.
_FIELDS = tuple(f.name for f in fields(Record))


class Records:
    """The records of the last ``window`` seconds, and totals since start.

    Parameters
    ----------
    window:
        Seconds of history kept for :meth:`mean_system_time`.
    clock:
        The gateway's monotonic clock, seconds.
    """

    def __init__(self, *, window: float, clock: Clock) -> None:
        self.window = window
        self.clock = clock
        # the window's records, a deque per field, in Record's order (module docstring)
        self._columns: tuple[deque[Any], ...] = tuple(deque() for _ in _FIELDS)
        self._start = clock()
        # the served records in the window: how many, and their system and service time
        self._served = 0
        self._system = self._service = 0.0
        self._held = Held(self._keep)  # added, not yet kept

    def add(self, record: Record) -> None:
        """Hold ``record``, written when its request ended (so they come in end order),
        to be kept at the next read or :meth:`settle`."""
        self._held.add(record)

    def settle(self) -> None:
        """Keep the records held: in the window's columns and its sums."""
        self._held.settle()

    def _keep(self, record: Record) -> None:
        for column, name in zip(self._columns, _FIELDS, strict=True):
            column.append(getattr(record, name))
        if record.outcome == "ok":
            self._served += 1
            self._system += record.system_time
            self._service += record.service

    def _expire(self) -> None:
        self.settle()
        horizon = self.clock() - self.window
        arrivals = self._columns[0]
        while arrivals and arrivals[0] < horizon:
            record = Record(*(column.popleft() for column in self._columns))
            if record.outcome == "ok":
                self._served -= 1
                self._system -= record.system_time
                self._service -= record.service
        if not self._served:  # none left: no rounding carried on
            self._system = self._service = 0.0

    def _records(self, reverse: bool = False) -> Iterator[Record]:
        """The window's records (newest first with ``reverse``), made again from their fields."""
        self.settle()
        columns = (reversed(c) for c in self._columns) if reverse else self._columns
        return (Record(*fields) for fields in zip(*columns, strict=True))

    def __len__(self) -> int:
        """Records in the window, of every outcome (the expired ones go at the next read)."""
        self.settle()
        return len(self._columns[0])

    def __iter__(self) -> Iterator[Record]:
        """The records of :meth:`__len__`, oldest first."""
        return self._records()

    def recent(self) -> list[Record]:
        """The served requests (outcome ``"ok"``) that arrived in the window."""
        self._expire()
        return [r for r in self._records() if r.outcome == "ok"]

    def ended_since(self, after: float) -> list[Record]:
        """Those of :meth:`recent` that ended after ``after`` (gateway clock, seconds),
        and perhaps some that ended up to a millisecond before: O(their number), read
        from the newest back, since records are added in the order their requests end
        (a reporter filters exactly)."""
        self._expire()
        found = []
        for r in self._records(reverse=True):
            if r.arrival + r.wait + r.service < after - 1e-3:
                break
            if r.outcome == "ok":
                found.append(r)
        found.reverse()
        return found

    def mean_system_time(self) -> float | None:
        """Measured mean wait plus service of the window's served requests, seconds."""
        self._expire()
        if not self._served:
            return None
        return self._system / self._served

    def mean_batch(self) -> float | None:
        """Measured mean number in service over the window (Little's law on the slots).

        The service seconds of the window's served requests over the window's length
        (or the time since start, if shorter); ``None`` before the first.
        """
        self._expire()
        span = min(self.window, self.clock() - self._start)
        if not self._served or span <= 0:
            return None
        return self._service / span
