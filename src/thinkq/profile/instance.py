"""The problem instance: :class:`Task` and :class:`Profile` (section II).

A :class:`Profile` holds the curve parameters of every task type as numpy arrays
(so a million types cost a few arrays, not a million objects) together with the
arrival rate ``rate`` (lambda, queries per second), the accuracy weight ``alpha``
(per second of mean system time) and the architectural limit ``max_tokens``
(l_max). Every profile is validated when built (:mod:`thinkq.profile.checks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.server import Server
from thinkq.errors import ProfileError
from thinkq.profile.checks import COLUMNS, PARAMETERS, validate

__all__ = ["Profile", "Task"]


@dataclass(frozen=True, slots=True)
class Task:
    """One query type: its share of the traffic and its curves.

    Parameters
    ----------
    name:
        A unique label.
    share:
        pi_k before normalisation (shares are normalised to sum to 1).
    A, b, D:
        Accuracy curve p(l) = A (1 - exp(-b l)) + D (eq. 2); ``b`` per token.
    t0, c:
        Service time t(l) = t0 + c l (eq. 1); ``t0`` in seconds, ``c`` in seconds
        per thinking token.
    variance:
        Variance of the service time around t(l), seconds squared (the variable
        answer part; 0 in the paper's model). It adds to E[S^2] (eq. 3).
    """

    name: str
    share: float
    A: float
    b: float
    D: float
    t0: float
    c: float
    variance: float = 0.0


@dataclass(frozen=True, eq=False)
class Profile:
    """A validated problem instance: N task types at one operating point.

    Build one with :meth:`from_tasks`, :meth:`from_arrays`,
    :func:`~thinkq.profile.load_profile` or :func:`~thinkq.profile.paper_profile`.
    Arrays are read-only; ``share`` is normalised to sum to 1. Use :meth:`replace` to
    change the operating point (``rate``, ``alpha``, ``max_tokens``); the result is
    validated again.

    ``match`` (one tuple of regular expressions per task, or empty) and
    ``default_task`` are the gateway's routing rules (``thinkq serve``): a request
    that names no task gets the first task whose pattern matches its last user
    message, else ``default_task``. The solver ignores them.

    ``server`` describes the server (:class:`~thinkq.batching.Server`: decode slots
    and step-time law, the profile's ``[server]`` table). ``None``, or one slot, is
    the paper's FIFO M/G/1 server; more slots make every figure of the model, the
    solver and the simulator those of the batched server (``docs/batching.md``).
    """

    names: tuple[str, ...]
    share: FloatArray
    A: FloatArray
    b: FloatArray
    D: FloatArray
    t0: FloatArray
    c: FloatArray
    variance: FloatArray
    rate: float
    alpha: float
    max_tokens: int
    source: str = field(default="<memory>", repr=False)
    match: tuple[tuple[str, ...], ...] = field(default=(), repr=False)
    default_task: str | None = field(default=None, repr=False)
    server: Server | None = field(default=None, repr=False)
    #: sum_k pi_k variance_k: what service-time variability adds to E[S^2] (s^2).
    extra_second_moment: float = field(init=False, repr=False)

    @classmethod
    def from_arrays(
        cls,
        *,
        names: Sequence[str],
        share: Any,
        A: Any,
        b: Any,
        D: Any,
        t0: Any,
        c: Any,
        rate: float,
        alpha: float,
        max_tokens: int,
        variance: Any = None,
        source: str = "<memory>",
        match: Sequence[Sequence[str]] = (),
        default_task: str | None = None,
        server: Server | None = None,
    ) -> Profile:
        """Build and validate a profile from parameter arrays (one entry per task).

        ``variance`` (seconds squared, per task) defaults to zero: deterministic
        service times, as in the paper. ``match`` and ``default_task`` are the
        gateway's routing rules (see the class); ``server`` the server (default: the
        paper's one-at-a-time server).
        """
        if variance is None:
            variance = np.zeros(len(names))
        columns = {"share": share, "A": A, "b": b, "D": D, "t0": t0, "c": c, "variance": variance}
        arrays: dict[str, FloatArray] = {}
        for key, value in columns.items():
            try:
                array = np.array(value, dtype=np.float64, copy=True).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise ProfileError(f"field '{key}': not a number array", field=key) from exc
            arrays[key] = array
        total = float(np.sum(arrays["share"]))
        if np.all(np.isfinite(arrays["share"])) and np.all(arrays["share"] >= 0) and total > 0:
            arrays["share"] = arrays["share"] / total
        profile = cls(
            names=tuple(names),
            rate=rate,
            alpha=alpha,
            max_tokens=max_tokens,
            source=source,
            match=tuple(tuple(patterns) for patterns in match),
            default_task=default_task,
            server=server,
            **arrays,
        )
        for array in arrays.values():
            array.flags.writeable = False
        return profile

    @classmethod
    def from_tasks(
        cls, tasks: Sequence[Task], *, rate: float, alpha: float, max_tokens: int
    ) -> Profile:
        """Build and validate a profile from :class:`Task` objects."""
        return cls.from_arrays(
            names=[t.name for t in tasks],
            share=[t.share for t in tasks],
            A=[t.A for t in tasks],
            b=[t.b for t in tasks],
            D=[t.D for t in tasks],
            t0=[t.t0 for t in tasks],
            c=[t.c for t in tasks],
            variance=[t.variance for t in tasks],
            rate=rate,
            alpha=alpha,
            max_tokens=max_tokens,
        )

    def __post_init__(self) -> None:
        validate(self)
        object.__setattr__(self, "extra_second_moment", float(np.dot(self.share, self.variance)))

    @property
    def size(self) -> int:
        """N, the number of task types."""
        return len(self.names)

    def __len__(self) -> int:
        return self.size

    @property
    def batched(self) -> Server | None:
        """The server if it decodes more than one query at once, else ``None`` (M/G/1)."""
        server = self.server
        return server if server is not None and not server.single else None

    def with_server(self, server: Server | None) -> Profile:
        """A copy served by ``server`` (``None``: the paper's M/G/1), validated again."""
        return dataclasses.replace(self, server=server)

    @property
    def tasks(self) -> Iterator[Task]:
        """The task types, one :class:`Task` each (normalised shares)."""
        return (self.task(k) for k in range(self.size))

    def task(self, k: int) -> Task:
        """The k-th task type."""
        return Task(
            name=self.names[k],
            **{key: float(getattr(self, key)[k]) for key in COLUMNS},
        )

    def replace(
        self,
        *,
        rate: float | None = None,
        alpha: float | None = None,
        max_tokens: int | None = None,
    ) -> Profile:
        """A copy at another operating point (validated again)."""
        changes: dict[str, Any] = {}
        if rate is not None:
            changes["rate"] = rate
        if alpha is not None:
            changes["alpha"] = alpha
        if max_tokens is not None:
            changes["max_tokens"] = max_tokens
        return dataclasses.replace(self, **changes)

    def with_variance(self, variance: Any) -> Profile:
        """A copy whose service times vary by ``variance`` (s^2 per task) around t(l)."""
        return dataclasses.replace(self, variance=_readonly(variance, "variance"))

    def with_answer_times(self, answer_times: Sequence[Any]) -> Profile:
        """A copy whose t0 and variance are the means and variances of ``answer_times``.

        ``answer_times`` holds one :mod:`thinkq.simulate.distributions` object per task: the
        answer part X_k of the service time, so that S_k = c_k l_k + X_k.
        """
        if len(answer_times) != self.size:
            raise ValueError(
                f"answer_times: expected {self.size} distributions, got {len(answer_times)}"
            )
        return dataclasses.replace(
            self,
            t0=_readonly([d.mean for d in answer_times], "t0"),
            variance=_readonly([d.variance for d in answer_times], "variance"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The profile in file form (the keys of :func:`~thinkq.profile.load_profile`)."""
        keys = COLUMNS if np.any(self.variance) else ("share", *PARAMETERS)
        columns: dict[str, list[Any]] = {key: getattr(self, key).tolist() for key in keys}
        if any(self.match):
            columns["match"] = [list(patterns) for patterns in self.match]
        routing = {} if self.default_task is None else {"default_task": self.default_task}
        server = self.server
        table = {} if server is None else {"server": server.to_dict()}
        return {
            "rate": self.rate,
            "alpha": self.alpha,
            "max_tokens": self.max_tokens,
            **routing,
            **table,
            "tasks": [
                {"name": name, **{key: columns[key][k] for key in columns}}
                for k, name in enumerate(self.names)
            ],
        }


def _readonly(values: Any, name: str) -> FloatArray:
    try:
        array = np.array(values, dtype=np.float64, copy=True).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"field '{name}': not a number array", field=name) from exc
    array.flags.writeable = False
    return array
