"""Profiles: the query types, their curves and the operating point (section II).

A :class:`Profile` holds the curve parameters of every task type as numpy arrays
(so a million types cost a few arrays, not a million objects) together with the
arrival rate ``rate`` (lambda, queries per second), the accuracy weight ``alpha``
(per second of mean system time) and the architectural limit ``max_tokens``
(l_max). Profiles are read from TOML or JSON files with the same keys
(:func:`load_profile`); the paper's Table I ships with the package
(:func:`paper_profile`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thinkq.errors import ProfileError, ProfileFileError, UnstableLoadError

__all__ = ["PARAMETERS", "Profile", "Task", "load_profile", "paper_profile"]

FloatArray = NDArray[np.float64]

#: The curve parameters of a task, as the paper writes them: accuracy (2) and latency (1).
PARAMETERS: tuple[str, ...] = ("A", "b", "D", "t0", "c")
_COLUMNS = ("share", *PARAMETERS, "variance")
_TASK_KEYS = ("name", "share", *PARAMETERS)
_OPTIONAL_TASK_KEYS = ("variance",)
_TOP_KEYS = ("rate", "alpha", "max_tokens", "tasks")
# A + D <= 1 is checked with this slack so that 0.7230 + 0.277 passes in binary floats.
_SUM_SLACK = 1e-9


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

    Build one with :meth:`from_tasks`, :meth:`from_arrays`, :func:`load_profile` or
    :func:`paper_profile`. Arrays are read-only; ``share`` is normalised to sum to 1.
    Use :meth:`replace` to change the operating point (``rate``, ``alpha``,
    ``max_tokens``); the result is validated again.
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
    ) -> Profile:
        """Build and validate a profile from parameter arrays (one entry per task).

        ``variance`` (seconds squared, per task) defaults to zero: deterministic
        service times, as in the paper.
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
        _validate(self)
        object.__setattr__(self, "extra_second_moment", float(np.dot(self.share, self.variance)))

    @property
    def size(self) -> int:
        """N, the number of task types."""
        return len(self.names)

    def __len__(self) -> int:
        return self.size

    @property
    def tasks(self) -> Iterator[Task]:
        """The task types, one :class:`Task` each (normalised shares)."""
        return (self.task(k) for k in range(self.size))

    def task(self, k: int) -> Task:
        """The k-th task type."""
        return Task(
            name=self.names[k],
            **{key: float(getattr(self, key)[k]) for key in _COLUMNS},
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

        ``answer_times`` holds one :mod:`thinkq.distributions` object per task: the
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
        """The profile in file form (the keys of :func:`load_profile`)."""
        keys = _COLUMNS if np.any(self.variance) else ("share", *PARAMETERS)
        columns = {key: getattr(self, key).tolist() for key in keys}
        return {
            "rate": self.rate,
            "alpha": self.alpha,
            "max_tokens": self.max_tokens,
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


# --------------------------------------------------------------------------- validation


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(name: str, value: Any, *, positive: bool) -> None:
    if not _is_number(value):
        raise ProfileError(f"field '{name}': expected a number, got {value!r}", field=name)
    if not math.isfinite(value):
        raise ProfileError(f"field '{name}': must be finite, got {value!r}", field=name)
    if positive and value <= 0:
        raise ProfileError(f"field '{name}': must be > 0, got {value!r}", field=name)


def _task_label(profile: Profile, k: int) -> str:
    name = profile.names[k] if k < len(profile.names) else ""
    return f"task '{name}'" if name else f"task #{k + 1}"


# (field, predicate that is True where the value is bad, what the value must be)
_RULES: tuple[tuple[str, Any, str], ...] = (
    ("share", lambda p: p.share < 0, "must be >= 0"),
    ("A", lambda p: (p.A <= 0) | (p.A > 1), "must be in (0, 1]"),
    ("b", lambda p: p.b <= 0, "must be > 0 (per token)"),
    ("D", lambda p: (p.D < 0) | (p.D > 1), "must be in [0, 1]"),
    ("D", lambda p: p.A + p.D > 1 + _SUM_SLACK, "A + D must be <= 1"),
    ("t0", lambda p: p.t0 < 0, "must be >= 0 (seconds)"),
    ("c", lambda p: p.c <= 0, "must be > 0 (seconds per token)"),
    ("variance", lambda p: p.variance < 0, "must be >= 0 (seconds squared)"),
)


def _validate(profile: Profile) -> None:
    _check_scalar("rate", profile.rate, positive=True)
    _check_scalar("alpha", profile.alpha, positive=True)
    mt = profile.max_tokens
    if not isinstance(mt, int | np.integer) or isinstance(mt, bool):
        raise ProfileError(
            f"field 'max_tokens': expected an integer, got {mt!r}", field="max_tokens"
        )
    if mt < 0:
        raise ProfileError(f"field 'max_tokens': must be >= 0, got {mt}", field="max_tokens")
    n = len(profile.names)
    if n == 0:
        raise ProfileError("field 'tasks': at least one task is required", field="tasks")
    seen: set[str] = set()
    for k, name in enumerate(profile.names):
        if not isinstance(name, str) or not name.strip():
            raise ProfileError(
                f"task #{k + 1}: field 'name': expected a non-empty string",
                field="name",
                task=f"#{k + 1}",
            )
        if name in seen:
            raise ProfileError(
                f"task '{name}': field 'name': duplicate task name", field="name", task=name
            )
        seen.add(name)
    for key in _COLUMNS:
        array = getattr(profile, key)
        if array.shape != (n,):
            raise ProfileError(
                f"field '{key}': expected {n} values (one per task), got {array.size}", field=key
            )
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            k = int(bad[0])
            raise ProfileError(
                f"{_task_label(profile, k)}: field '{key}': must be finite, got {array[k]}",
                field=key,
                task=profile.names[k],
            )
    for key, is_bad, rule in _RULES:
        bad = np.flatnonzero(is_bad(profile))
        if bad.size:
            k = int(bad[0])
            value = getattr(profile, key)[k]
            raise ProfileError(
                f"{_task_label(profile, k)}: field '{key}': {rule}, got {value:g}",
                field=key,
                task=profile.names[k],
            )
    if not float(np.sum(profile.share)) > 0:
        raise ProfileError("field 'share': the shares must have a positive sum", field="share")
    load = profile.rate * float(np.dot(profile.share, profile.t0))
    if not load < 1:
        raise UnstableLoadError(
            f"field 'rate': the queue is unstable even at zero budgets: "
            f"rate * E[S(0)] = {load:.6g} >= 1",
            field="rate",
        )


# --------------------------------------------------------------------------- files


def _parse(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise ProfileFileError(f"{path}: no such profile file") from exc
    except OSError as exc:
        raise ProfileFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise ProfileFileError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileFileError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileFileError(f"{path}: not UTF-8 text") from exc
    raise ProfileFileError(f"{path}: unknown profile format '{suffix}' (use .toml or .json)")


def _columns(tasks: Sequence[Any]) -> dict[str, list[Any]]:
    """Check each task table's keys and types and turn them into columns."""
    columns: dict[str, list[Any]] = {key: [] for key in _TASK_KEYS}
    for k, entry in enumerate(tasks):
        # the task as messages and ProfileError.task name it: by name, else by position
        label, task = f"task #{k + 1}", f"#{k + 1}"
        if not isinstance(entry, Mapping):
            raise ProfileError(
                f"{label}: field 'tasks': expected a table of fields", field="tasks", task=task
            )
        name = entry.get("name")
        if isinstance(name, str) and name.strip():
            label, task = f"task '{name}'", name
        unknown = [key for key in entry if key not in _TASK_KEYS + _OPTIONAL_TASK_KEYS]
        if unknown:
            raise ProfileError(
                f"{label}: field '{unknown[0]}': unknown field "
                f"(expected {', '.join(_TASK_KEYS + _OPTIONAL_TASK_KEYS)})",
                field=str(unknown[0]),
                task=task,
            )
        for key in _TASK_KEYS:
            if key not in entry:
                raise ProfileError(f"{label}: field '{key}': missing", field=key, task=task)
            value = entry[key]
            if key == "name":
                if not isinstance(value, str):
                    raise ProfileError(
                        f"{label}: field 'name': expected a string, got {value!r}",
                        field="name",
                        task=task,
                    )
            elif not _is_number(value):
                raise ProfileError(
                    f"{label}: field '{key}': expected a number, got {value!r}",
                    field=key,
                    task=task,
                )
            columns[key].append(value)
        for key in _OPTIONAL_TASK_KEYS:
            value = entry.get(key, 0.0)
            if not _is_number(value):
                raise ProfileError(
                    f"{label}: field '{key}': expected a number, got {value!r}",
                    field=key,
                    task=task,
                )
            columns.setdefault(key, []).append(value)
    return columns


def profile_from_dict(data: Any, *, source: str = "<memory>") -> Profile:
    """Validate a decoded profile document (the TOML/JSON structure) into a Profile."""
    if not isinstance(data, Mapping):
        raise ProfileError("the profile must be a table with rate, alpha, max_tokens and tasks")
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise ProfileError(
            f"field '{unknown[0]}': unknown field (expected {', '.join(_TOP_KEYS)})",
            field=str(unknown[0]),
        )
    for key in _TOP_KEYS:
        if key not in data:
            raise ProfileError(f"field '{key}': missing", field=key)
    tasks = data["tasks"]
    if not isinstance(tasks, list):
        raise ProfileError("field 'tasks': expected a list of task tables", field="tasks")
    columns = _columns(tasks)
    return Profile.from_arrays(
        names=columns["name"],
        **{key: columns[key] for key in _COLUMNS if key in columns},
        rate=data["rate"],
        alpha=data["alpha"],
        max_tokens=data["max_tokens"],
        source=source,
    )


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile from a ``.toml`` or ``.json`` file.

    Raises
    ------
    ProfileFileError
        The file is missing, unreadable, or does not parse.
    ProfileError
        A field is missing, unknown, of the wrong type, or out of range; the message
        names the task and the field. :class:`UnstableLoadError` if
        ``rate * E[S(0)] >= 1``.
    """
    path = Path(path)
    data = _parse(path)
    try:
        return profile_from_dict(data, source=str(path))
    except ProfileError as exc:
        raise type(exc)(f"{path}: {exc}", field=exc.field, task=exc.task) from exc


def paper_profile() -> Profile:
    """The paper's Table I (section IV): six datasets, rate 0.1, alpha 30, l_max 32768."""
    text = resources.files("thinkq").joinpath("data/paper.toml").read_text("utf-8")
    return profile_from_dict(tomllib.loads(text), source="paper (Table I)")
