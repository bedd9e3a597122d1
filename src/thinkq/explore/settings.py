"""The what-if page's settings: rate, alpha, l_max and slots, read from JSON and applied.

A request names any of ``rate`` (lambda, queries per second), ``alpha``, ``max_tokens``
(l_max, tokens) and ``slots`` (B, on a profile with a step-time law); the rest keep
the profile's values. A bad value raises ``ValueError`` whose one-line message starts
with the field's name (``"rate: must be > 0, got -1"``); a load that is unstable even
at zero budgets raises :class:`~thinkq.errors.UnstableLoadError`, which the page shows
as an answer, not as an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from thinkq.batching.server import UNLIMITED_SLOTS, Server
from thinkq.errors import ProfileError, UnstableLoadError
from thinkq.profile import Profile

__all__ = [
    "FIELDS",
    "Settings",
    "apply",
    "defaults",
    "describe",
    "parse",
    "ranges",
    "saturation_rate",
    "with_slots",
]

#: The fields a request may name.
FIELDS = ("rate", "alpha", "max_tokens", "slots")


@dataclass(frozen=True, slots=True)
class Settings:
    """One operating point: ``slots`` is ``None`` on a profile without a step-time law."""

    rate: float
    alpha: float
    max_tokens: int
    slots: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "alpha": self.alpha,
            "max_tokens": self.max_tokens,
            "slots": self.slots,
        }


def defaults(profile: Profile) -> Settings:
    """The profile's own operating point."""
    slots = profile.server.slots if profile.server is not None else None
    return Settings(profile.rate, profile.alpha, profile.max_tokens, slots)


def _value(body: dict[str, Any], name: str, default: float | None, *, integer: bool) -> Any:
    value = body.get(name)
    if value is None:
        return default
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if integer:
        if not float(value).is_integer():
            raise ValueError(f"{name}: expected {kind}, got {value!r}")
        return int(value)
    return float(value)


def parse(body: Any, profile: Profile) -> Settings:
    """The settings a JSON request body asks for (missing or null: the profile's)."""
    if not isinstance(body, dict):
        raise ValueError(f"body: expected a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(FIELDS) - {"frontier"})
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: {', '.join(FIELDS)})")
    base = defaults(profile)
    slots = _value(body, "slots", base.slots, integer=True)
    if slots is not None and not 1 <= slots <= UNLIMITED_SLOTS:
        raise ValueError(f"slots: expected 1 to {UNLIMITED_SLOTS} (unlimited), got {slots}")
    if slots is not None and profile.server is None:
        raise ValueError(
            "slots: the profile has no step-time law (start thinkq explore with --tau0 and "
            "--tau1, or give the profile a [server] table)"
        )
    return Settings(
        rate=_value(body, "rate", base.rate, integer=False),
        alpha=_value(body, "alpha", base.alpha, integer=False),
        max_tokens=_value(body, "max_tokens", base.max_tokens, integer=True),
        slots=slots,
    )


def _server(law: Server, slots: int) -> Server:
    """``slots`` slots of ``law`` (measured steps beyond ``slots`` dropped, as ``thinkq
    sweep --over slots`` does)."""
    steps = tuple(point for point in law.steps if point[0] <= slots)
    return Server(slots, law.tau0, law.tau1, steps=steps, prompt=law.prompt)


def with_slots(profile: Profile, slots: int) -> Profile:
    """``profile`` served by ``slots`` slots of its own step-time law."""
    if profile.server is None:
        raise ValueError("slots: the profile has no step-time law")
    return profile.with_server(_server(profile.server, slots))


def apply(profile: Profile, settings: Settings) -> Profile:
    """``profile`` at ``settings``; ``ValueError`` naming the field when one is invalid,
    :class:`UnstableLoadError` when even zero budgets overload the server."""
    try:
        served = profile if settings.slots is None else with_slots(profile, settings.slots)
        return served.replace(
            rate=settings.rate, alpha=settings.alpha, max_tokens=settings.max_tokens
        )
    except UnstableLoadError:
        raise
    except ProfileError as exc:
        field = (exc.field or "").removeprefix("server.")
        message = str(exc).split("': ", 1)[-1] if str(exc).startswith("field '") else str(exc)
        raise ValueError(f"{field or 'profile'}: {message}") from exc


def saturation_rate(profile: Profile, slots: int | None = None) -> float:
    """The rate from which even zero budgets overload the server (eq. 4: rate E[S(0)] =
    1, or C(B) with ``slots`` = B slots of the profile's law; default: its own slots);
    ``inf`` when every t0 is 0. Does not depend on the profile's rate."""
    law = profile.server
    load = float(np.dot(profile.share, profile.t0))
    if not load > 0:
        return math.inf
    if law is None:
        return 1.0 / load
    return (law if slots is None else _server(law, slots)).rate_limit(load)


def ranges(profile: Profile) -> dict[str, dict[str, Any]]:
    """The sliders' ends for ``profile``: rate up to the saturation rate at zero budgets
    (10 times the profile's rate when nothing saturates), alpha up to 4 times the
    profile's, l_max up to twice it, slots from 1 to 64 (or twice the profile's)."""
    own = defaults(profile)
    top = saturation_rate(profile)
    rate = top if math.isfinite(top) else 10.0 * own.rate
    found = {
        "rate": {"min": rate / 1000.0, "max": rate, "step": "any", "unit": "queries/s"},
        "alpha": {"min": own.alpha / 100.0, "max": 4.0 * own.alpha, "step": "any", "unit": "1/s"},
        "max_tokens": {"min": 0, "max": max(2 * own.max_tokens, 1), "step": 1, "unit": "tokens"},
    }
    if own.slots is not None:
        found["slots"] = {"min": 1, "max": max(64, 2 * own.slots), "step": 1, "unit": "slots"}
    return found


def describe(profile: Profile) -> dict[str, Any]:
    """What the page needs before its first solve: the profile, its defaults, ranges."""
    law = profile.server
    return {
        "source": profile.source,
        "types": profile.size,
        "law": None if law is None else {"law": law.law, "tau0": law.tau0, "tau1": law.tau1},
        "defaults": defaults(profile).to_dict(),
        "ranges": ranges(profile),
    }
