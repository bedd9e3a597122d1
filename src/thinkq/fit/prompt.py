"""The ``[server]`` table's prompt stage, from the server phase's prompt probe.

llama.cpp's ``llama-server`` computes a new prompt alone while the other slots'
decoding waits (``docs/batching.md``, "A prompt stage"); the profile's ``prompt = p``
asks for that model. The probe (:mod:`thinkq.measure.prompt_probe`) timed each probed
item's prompt new (tagged so that no cache holds it) and held (sent again). Per task
type k, new_k and held_k are the mean ``new_ms`` and ``held_ms`` of its probes, in
seconds (a type without a probe takes the means of all probes, and a warning says so).
Then:

* ``prompt`` = sum_k share_k new_k, with the fit's profile's shares: the time a query
  from a new user spends computing its prompt alone;
* each type's t0 is lifted by new_k - held_k (at least 0): its latency line was
  measured by the accuracy phase, which asks each item at every budget, so with its
  prompt mostly held; the lifted t0 is the solo time of a query with a new prompt,
  which the prompt stage's p is part of. The bootstrap replicates' t0 move with it;
* a percentile interval of ``prompt`` by resampling the probed items within each type
  (the fit's bootstrap count and level).

Neither is written (a warning says why) where the table has more than
:data:`~thinkq.batching.server.PROMPT_SLOTS` slots, where p is not below E[S(0)] =
sum_k share_k t0_k with t0 lifted, or where the profile is not valid with them (the
load unstable at zero budgets). ``thinkq fit --no-prompt-stage`` leaves both out, for
traffic whose prompts repeat (the cache holds them, as the accuracy phase's were).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from thinkq._typing import FloatArray
from thinkq.batching.server import PROMPT_SLOTS
from thinkq.errors import ProfileError
from thinkq.fit.server import ServerFit
from thinkq.fit.uncertainty import Replicates
from thinkq.profile import Profile
from thinkq.records import RecordSet

__all__ = ["PromptFit", "PromptType", "Staged", "fit_prompt_stage"]


@dataclass(frozen=True)
class PromptType:
    """One task type's probes: their count and mean new and held prompt (seconds)."""

    name: str
    probes: int
    new: float
    held: float

    @property
    def lift(self) -> float:
        """What t0 is lifted by: a new prompt over a held one (seconds, >= 0)."""
        return max(self.new - self.held, 0.0)


@dataclass(frozen=True)
class PromptFit:
    """The prompt stage: ``prompt`` p (seconds) and its interval, per type the probes,
    and whether it was written (``why`` not, where it was not)."""

    prompt: float
    interval: tuple[float, float] | None
    types: tuple[PromptType, ...]
    probes: int
    applied: bool
    why: str | None = None
    warnings: tuple[str, ...] = ()

    def lift(self, k: int) -> float:
        """Seconds the k-th type's t0 was lifted by (0 where the stage was left out)."""
        return self.types[k].lift if self.applied else 0.0

    @property
    def text(self) -> str:
        """One line for the fit's summary."""
        shown = f"p = {self.prompt * 1e3:.1f} ms"
        if self.interval is not None:
            shown += f" [{self.interval[0] * 1e3:.1f}, {self.interval[1] * 1e3:.1f}]"
        shown += f" from {self.probes} probes"
        if not self.applied:
            return f"{shown}; not written: {self.why}"
        lifts = ", ".join(f"{t.name} +{t.lift * 1e3:.1f} ms" for t in self.types)
        return f"{shown}; t0 lifted for new prompts: {lifts}"

    def to_dict(self) -> dict[str, Any]:
        """The ``prompt`` part of the fit report."""
        return {
            "prompt": self.prompt,
            "interval": list(self.interval) if self.interval is not None else None,
            "probes": self.probes,
            "written": self.applied,
            "why_not": self.why,
            "types": [self._type(k) for k in range(len(self.types))],
            "t0": "lifted by new_s - held_s: the latency lines were measured with prompts held"
            if self.applied
            else "as measured",
        }

    def _type(self, k: int) -> dict[str, Any]:
        t = self.types[k]
        return {"name": t.name, "probes": t.probes, "new_s": t.new, "held_s": t.held,
                "t0_lift": self.lift(k)}  # fmt: skip


class Staged(NamedTuple):
    """The fit's profile, server fit and replicates with the prompt stage (if any)."""

    profile: Profile
    server: ServerFit
    replicates: Replicates | None
    prompt: PromptFit | None


def _types(records: RecordSet, names: tuple[str, ...]) -> tuple[list[FloatArray], list[str]]:
    """Per type, its probes' new and held seconds as rows of a (2, n) array."""
    notes = []
    rows = [
        np.array([[r.new_ms or 0.0, r.held_ms or 0.0] for r in records.prompts if r.task == name])
        .reshape(-1, 2)
        .T
        / 1e3
        for name in names
    ]
    others = sorted({r.task for r in records.prompts} - set(names))
    if others:
        notes.append(f"server: prompt: probes of {', '.join(others)} (no fitted task) left out")
    return rows, notes


def _interval(
    rows: list[FloatArray], share: FloatArray, bootstrap: int, level: float, seed: int | None
) -> tuple[float, float] | None:
    """Percentile interval of p, the probed items resampled within each type."""
    if not bootstrap:
        return None
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(share.size + 2)[-1])
    means = [
        row[0][rng.integers(0, row.shape[1], (bootstrap, row.shape[1]))].mean(axis=1)
        if row.shape[1]
        else None
        for row in rows
    ]
    counts = [row.shape[1] for row in rows]
    pooled = sum(m * n for m, n in zip(means, counts, strict=True) if m is not None) / sum(counts)
    draws = sum(s * (pooled if m is None else m) for s, m in zip(share, means, strict=True))
    tail = (1 - level) / 2
    low, high = np.quantile(np.asarray(draws, dtype=np.float64), [tail, 1 - tail])
    return float(low), float(high)


def _why_not(profile: Profile, slots: int, prompt: float, lifts: FloatArray) -> str | None:
    if slots > PROMPT_SLOTS:
        return f"the prompt stage is modelled for at most {PROMPT_SLOTS} slots, not {slots}"
    solo = float(np.dot(profile.share, profile.t0 + lifts))
    if not prompt < solo:
        return (
            f"a new prompt ({prompt:.4g} s) is not below the mean solo time at zero "
            f"budgets with t0 lifted, E[S(0)] = {solo:.4g} s"
        )
    return None


# long: the stage from the records to the profile, in order: the means per type, p and
# its interval, the checks, then the lifted profile, server fit and replicates
def fit_prompt_stage(
    records: RecordSet,
    profile: Profile,
    server: ServerFit,
    replicates: Replicates | None,
    *,
    bootstrap: int,
    level: float,
    seed: int | None,
    enabled: bool = True,
) -> Staged:
    """``profile`` (served by ``server.server``) with the prompt stage of the module;
    unchanged without prompt-probe records (and with ``enabled`` false)."""
    unchanged = Staged(profile, server, replicates, None)
    rows, notes = _types(records, profile.names)
    probes = sum(row.shape[1] for row in rows)
    if not probes:
        return unchanged
    every = np.concatenate(rows, axis=1)
    types = []
    for name, row in zip(profile.names, rows, strict=True):
        borrowed = row if row.shape[1] else every
        if not row.shape[1]:
            notes.append(f"server: prompt: no probe of {name}: it takes the mean of all probes")
        types.append(PromptType(name, row.shape[1], *map(float, borrowed.mean(axis=1))))
    prompt = float(sum(s * t.new for s, t in zip(profile.share, types, strict=True)))
    interval = _interval(rows, profile.share, bootstrap, level, seed)
    lifts = np.array([t.lift for t in types])
    why = "thinkq fit --no-prompt-stage" if not enabled else None
    why = why or _why_not(profile, server.server.slots, prompt, lifts)
    fit = PromptFit(prompt, interval, tuple(types), probes, why is None, why, tuple(notes))
    if why is not None:
        return unchanged._replace(prompt=fit if not enabled else _warned(fit))
    staged = dataclasses.replace(server.server, prompt=prompt)
    try:
        lifted = Profile.from_arrays(
            names=profile.names, share=profile.share, A=profile.A, b=profile.b, D=profile.D,
            t0=profile.t0 + lifts, c=profile.c, variance=profile.variance, rate=profile.rate,
            alpha=profile.alpha, max_tokens=profile.max_tokens, source=profile.source,
            server=staged,
        )  # fmt: skip
    except ProfileError as exc:
        fit = dataclasses.replace(fit, applied=False, why=str(exc))
        return unchanged._replace(prompt=_warned(fit))
    if replicates is not None:
        replicates = dataclasses.replace(replicates, t0=replicates.t0 + lifts)
    return Staged(lifted, dataclasses.replace(server, server=staged), replicates, fit)


def _warned(fit: PromptFit) -> PromptFit:
    note = f"server: prompt: not written, and t0 left as measured: {fit.why}"
    return dataclasses.replace(fit, warnings=(*fit.warnings, note))
