"""A :class:`~thinkq.serve.controller.Plan` as the JSON document kept in Redis, and back.

The document (``P:plan``; every number finite or ``null``)::

    {"version": 1, "fingerprint": "3f2a...", "by": "host-1234-ab12",
     "solved_at": 1767000000.0, "period": 5.0,
     "budgets": {"math": 412, "chat": 37},          # what an enforcer applies
     "rate": 3.91, "shares": {"math": 0.48, "chat": 0.52}, "arrivals": 231,
     "utilization": 0.62, "overloaded": false,
     "predicted_mean_system_time": 2.1, "predicted_mean_waiting_time": 1.3,
     "mean_service": 0.8, "mean_batch": 0.62, "step_time": null,
     "t0": [...], "c": [...], "slo": null,
     "completions": {"math": {"n": 120, "mean_service": 1.1, "mean_thinking": 405.0}},
     "replicas": null}

``fingerprint`` identifies the profile and objectives it was solved with: a member
whose own differ does not apply it (it would be another model's budgets).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from thinkq.batching.server import Server
from thinkq.profile import Profile
from thinkq.serve.controller import Plan
from thinkq.serve.slo import SloState
from thinkq.slo import Objective

__all__ = ["VERSION", "fingerprint", "from_doc", "to_doc"]

#: The document's format version.
VERSION = 1


def fingerprint(profile: Profile, objectives: Sequence[Objective] = ()) -> str:
    """A short hash of what the budgets depend on: curves, lines, alpha, l_max, objectives."""
    doc = {
        "names": list(profile.names),
        **{f: getattr(profile, f).tolist() for f in ("A", "b", "D", "t0", "c")},
        "alpha": profile.alpha,
        "max_tokens": profile.max_tokens,
        "server": None if profile.server is None else repr(profile.server),
        "objectives": [str(o) for o in objectives],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_doc(plan: Plan, names: Sequence[str], **extra: Any) -> dict[str, Any]:
    """The document of ``plan`` for the tasks ``names``, with ``extra`` fields beside."""
    slo = plan.slo
    return {
        "version": VERSION,
        **extra,
        "budgets": dict(zip(names, plan.budgets, strict=True)),
        "rate": plan.rate,
        "shares": dict(zip(names, plan.shares, strict=True)),
        "utilization": _finite(plan.utilization),
        "overloaded": plan.overloaded,
        "predicted_mean_system_time": _finite(plan.predicted_mean_system_time),
        "predicted_mean_waiting_time": _finite(plan.predicted_mean_waiting_time),
        "mean_service": plan.mean_service,
        "mean_batch": _finite(plan.mean_batch),
        "step_time": _finite(plan.step_time),
        "t0": list(plan.t0),
        "c": list(plan.c),
        "slo": None
        if slo is None
        else {
            "predicted": [_finite(p) for p in slo.predicted],
            "shadow_price": slo.shadow_price,
            "meetable": slo.meetable,
            "admitted": slo.admitted,
            "max_rate": slo.max_rate,
        },
    }


def _number(value: Any, default: float = math.inf) -> float:
    return default if value is None else float(value)


def from_doc(
    doc: Mapping[str, Any],
    names: Sequence[str],
    *,
    fingerprint: str,
    server: Server | None,
    objectives: Sequence[Objective] = (),
    current: Plan | None = None,
) -> Plan:
    """The :class:`Plan` a document describes, for the tasks ``names``.

    ``fingerprint`` is this member's (:func:`fingerprint`); ``server`` its own (the
    document names none); ``current`` the plan in force, to say whether this one
    switched budgets.

    Raises
    ------
    ValueError
        The document is of another version, lacks a field, or was solved for another
        profile or objectives.
    """
    if doc.get("version") != VERSION:
        raise ValueError(f"plan: version {doc.get('version')!r}, expected {VERSION}")
    if doc.get("fingerprint") != fingerprint:
        raise ValueError("plan: solved for another profile or other objectives")
    try:
        budgets = tuple(int(doc["budgets"][n]) for n in names)
        slo = doc["slo"]
        state = None
        if objectives and slo is not None:
            state = SloState(
                objectives=tuple(objectives),
                predicted=tuple(_number(p) for p in slo["predicted"]),
                shadow_price=slo["shadow_price"],
                meetable=bool(slo["meetable"]),
                admitted=float(slo["admitted"]),
                max_rate=slo["max_rate"],
            )
        return Plan(
            budgets=budgets,
            rate=float(doc["rate"]),
            shares=tuple(float(doc["shares"][n]) for n in names),
            utilization=_number(doc["utilization"]),
            predicted_mean_system_time=_number(doc["predicted_mean_system_time"]),
            overloaded=bool(doc["overloaded"]),
            mean_service=float(doc["mean_service"]),
            t0=tuple(float(v) for v in doc["t0"]),
            c=tuple(float(v) for v in doc["c"]),
            predicted_mean_waiting_time=_number(doc["predicted_mean_waiting_time"]),
            server=server,
            mean_batch=_number(doc["mean_batch"], 0.0),
            step_time=None if doc["step_time"] is None else float(doc["step_time"]),
            switched=current is not None and budgets != current.budgets,
            slo=state,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"plan: malformed document ({exc!r})") from None
