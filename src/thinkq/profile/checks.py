"""Validation of a profile's values (the rules of README's "Profile files").

Vectorised over the task types; the first offending task is named in a one-line
:class:`~thinkq.errors.ProfileError`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.server import Server
from thinkq.errors import ProfileError, UnstableLoadError

__all__ = [
    "COLUMNS",
    "OPTIONAL_TASK_KEYS",
    "OPTIONAL_TOP_KEYS",
    "PARAMETERS",
    "ROUTING_TASK_KEYS",
    "SERVER_KEYS",
    "TASK_KEYS",
    "TOP_KEYS",
    "Fields",
    "is_number",
    "validate",
]

#: The curve parameters of a task, as the paper writes them: accuracy (2) and latency (1).
PARAMETERS: tuple[str, ...] = ("A", "b", "D", "t0", "c")
COLUMNS = ("share", *PARAMETERS, "variance")
TASK_KEYS = ("name", "share", *PARAMETERS)
OPTIONAL_TASK_KEYS = ("variance",)
#: Optional task keys for the gateway's routing (``thinkq serve``): regular expressions
#: matched against a request's last user message.
ROUTING_TASK_KEYS = ("match",)
TOP_KEYS = ("rate", "alpha", "max_tokens", "tasks")
#: Optional top-level keys: the task of a request that names none and matches no rule,
#: and the server's table.
OPTIONAL_TOP_KEYS = ("default_task", "server")
#: The keys of the optional ``[server]`` table (:class:`~thinkq.batching.Server`).
SERVER_KEYS = ("slots", "tau0", "tau1", "steps", "prompt")
# A + D <= 1 is checked with this slack, so that values computed in floating point (a fit
# that puts A + D on its bound 1) are not refused for a rounding error.
SUM_SLACK = 1e-9


class Fields(Protocol):
    """What the checks read of a profile: :class:`~thinkq.profile.Profile` has it all.

    The rules see the fields, not the class, so that the class can run them when it
    is built without this module importing it back.
    """

    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def share(self) -> FloatArray: ...
    @property
    def A(self) -> FloatArray: ...
    @property
    def b(self) -> FloatArray: ...
    @property
    def D(self) -> FloatArray: ...
    @property
    def t0(self) -> FloatArray: ...
    @property
    def c(self) -> FloatArray: ...
    @property
    def variance(self) -> FloatArray: ...
    @property
    def rate(self) -> float: ...
    @property
    def alpha(self) -> float: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def match(self) -> tuple[tuple[str, ...], ...]: ...
    @property
    def default_task(self) -> str | None: ...
    @property
    def server(self) -> Server | None: ...


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(name: str, value: Any, *, positive: bool) -> None:
    if not is_number(value):
        raise ProfileError(f"field '{name}': expected a number, got {value!r}", field=name)
    if not math.isfinite(value):
        raise ProfileError(f"field '{name}': must be finite, got {value!r}", field=name)
    if positive and value <= 0:
        raise ProfileError(f"field '{name}': must be > 0, got {value!r}", field=name)


def _task_label(profile: Fields, k: int) -> str:
    name = profile.names[k] if k < len(profile.names) else ""
    return f"task '{name}'" if name else f"task #{k + 1}"


# (field, predicate that is True where the value is bad, what the value must be)
_RULES: tuple[tuple[str, Any, str], ...] = (
    ("share", lambda p: p.share < 0, "must be >= 0"),
    ("A", lambda p: (p.A <= 0) | (p.A > 1), "must be in (0, 1]"),
    ("b", lambda p: p.b <= 0, "must be > 0 (per token)"),
    ("D", lambda p: (p.D < 0) | (p.D > 1), "must be in [0, 1]"),
    ("D", lambda p: p.A + p.D > 1 + SUM_SLACK, "A + D must be <= 1"),
    ("t0", lambda p: p.t0 < 0, "must be >= 0 (seconds)"),
    ("c", lambda p: p.c <= 0, "must be > 0 (seconds per token)"),
    ("variance", lambda p: p.variance < 0, "must be >= 0 (seconds squared)"),
)


def validate(profile: Fields) -> None:
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
    for key in COLUMNS:
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
    _validate_routing(profile)
    if not float(np.sum(profile.share)) > 0:
        raise ProfileError("field 'share': the shares must have a positive sum", field="share")
    _validate_load(profile)


def _validate_load(profile: Fields) -> None:
    """Stability at zero budgets: rate * E[S(0)] below the server's capacity (eq. 4)."""
    server = profile.server
    if server is not None and not isinstance(server, Server):
        raise ProfileError(
            f"field 'server': expected a thinkq.batching.Server, got {server!r}", field="server"
        )
    load = profile.rate * float(np.dot(profile.share, profile.t0))
    if server is None or server.single:
        if not load < 1:
            raise UnstableLoadError(
                f"field 'rate': the queue is unstable even at zero budgets: "
                f"rate * E[S(0)] = {load:.6g} >= 1",
                field="rate",
            )
    elif not server.prompt < load / profile.rate:
        raise ProfileError(
            f"field 'server.prompt': the mean prompt ({server.prompt:g} s) must be below the "
            f"mean solo time at zero budgets, E[S(0)] = {load / profile.rate:.6g} s",
            field="server.prompt",
        )
    elif not load < server.load_limit(profile.rate):
        limit = server.load_limit(profile.rate)
        why = f"C(B) = {limit:.6g}" if not server.prompt else f"{limit:.6g} (C(B) less the prompts)"
        raise UnstableLoadError(
            f"field 'rate': the queue is unstable even at zero budgets: rate * E[S(0)] = "
            f"{load:.6g} >= {why}, the most work the server's {server.slots} slots do per second",
            field="rate",
        )


def _validate_routing(profile: Fields) -> None:
    """The gateway's routing fields: ``match`` patterns compile, ``default_task`` exists."""
    if profile.match and len(profile.match) != len(profile.names):
        raise ProfileError(
            f"field 'match': expected {len(profile.names)} pattern lists (one per task), "
            f"got {len(profile.match)}",
            field="match",
        )
    for name, patterns in zip(profile.names, profile.match, strict=False):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ProfileError(
                    f"task '{name}': field 'match': invalid regular expression {pattern!r}: {exc}",
                    field="match",
                    task=name,
                ) from exc
    default = profile.default_task
    if default is not None and default not in profile.names:
        raise ProfileError(
            f"field 'default_task': no task is named {default!r}", field="default_task"
        )
