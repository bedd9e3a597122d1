"""The result of a fit and its report, as ``thinkq fit --json`` and ``NAME.fit.json`` give it.

:class:`FitResult` holds the fitted profile, one :class:`TaskFit` per task and the
bootstrap replicates; :meth:`FitResult.to_dict` is the report, one
:func:`task_report` per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thinkq.fit.accuracy import AccuracyFit
from thinkq.fit.data import TaskData
from thinkq.fit.latency import LatencyFit
from thinkq.fit.prompt import PromptFit
from thinkq.fit.server import ServerFit
from thinkq.fit.uncertainty import Replicates
from thinkq.profile import Profile

__all__ = ["FitResult", "TaskFit", "task_report"]


@dataclass(frozen=True)
class TaskFit:
    """One task's fits; ``intervals`` maps each of A, b, D, t0, c, variance to its
    bootstrap percentile interval (empty without a bootstrap)."""

    name: str
    share: float
    data: TaskData
    accuracy: AccuracyFit
    latency: LatencyFit
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.accuracy.warnings + self.latency.warnings


@dataclass(frozen=True)
class FitResult:
    """A fitted profile, the fit of every task and the bootstrap replicates."""

    profile: Profile
    tasks: tuple[TaskFit, ...]
    replicates: Replicates | None
    level: float
    seed: int | None
    model: str | None
    files: tuple[str, ...]
    measured_max: int
    notes: tuple[str, ...] = ()  # the profile's warnings (a budget too thin for l_max)
    checks: tuple[str, ...] = ()  # what check_records left out or found repeated
    server: ServerFit | None = None  # the step-time law, from the server phase's records
    prompt: PromptFit | None = None  # the prompt stage, from the server phase's prompt probe

    @property
    def warnings(self) -> tuple[str, ...]:
        """The records' warnings, every task's (prefixed by the task), the server's, then
        the profile's."""
        notes = [*self.checks, *(f"{t.name}: {w}" for t in self.tasks for w in t.warnings)]
        notes += self.server.warnings if self.server is not None else ()
        notes += self.prompt.warnings if self.prompt is not None else ()
        if self.profile.max_tokens > self.measured_max:
            notes.append(
                f"max_tokens {self.profile.max_tokens} is above the largest measured budget "
                f"{self.measured_max}: budgets beyond it rest on extrapolated curves"
            )
        return (*notes, *self.notes)

    def to_dict(self, *, replicates: bool = False) -> dict[str, Any]:
        """The fit report (the ``--json`` output; with ``replicates`` the sidecar file)."""
        data: dict[str, Any] = {
            "format": "thinkq-fit/1",
            "files": list(self.files),
            "model": self.model,
            "level": self.level,
            "bootstrap": self.replicates.count if self.replicates else 0,
            "seed": self.seed,
            "profile": self.profile.to_dict(),
            "tasks": [task_report(t) for t in self.tasks],
            "warnings": list(self.warnings),
        }
        if self.server is not None:
            data["server"] = self.server.to_dict()
        if self.prompt is not None:
            data["prompt"] = self.prompt.to_dict()
            for k, task in enumerate(data["tasks"]):  # the profile's t0, and why it differs
                lift = self.prompt.lift(k)
                task["latency"] |= {
                    "t0_prompt_lift": lift,
                    "t0_profile": task["latency"]["t0"] + lift,
                }
        if replicates and self.replicates is not None:
            data["replicates"] = self.replicates.to_dict()
        return data


def task_report(t: TaskFit) -> dict[str, Any]:
    """One task of the fit report: parameters, intervals, goodness of fit, and per
    budget the counts, the measured and fitted accuracy and latency."""
    a, s, d = t.accuracy, t.latency, t.data
    intervals = {key: list(value) for key, value in t.intervals.items()}
    fitted_p, fitted_t = a.curve(d.budgets), s.line(d.budgets)
    return {
        "name": t.name,
        "share": t.share,
        "queries": d.queries,
        "resampling": d.resampling,
        "accuracy": {
            "A": a.A,
            "b": a.b,
            "D": a.D,
            "status": a.status,
            "intervals": {k: v for k, v in intervals.items() if k in ("A", "b", "D")},
            "deviance": a.deviance,
            "pearson": a.pearson,
            "dof": a.dof,
            "p_value": a.p_value,
            "dispersion": a.dispersion,
            "b_bounds": list(a.b_bounds) if a.b_bounds else None,
        },
        "latency": {
            "t0": s.t0,
            "c": s.c,
            "variance": s.variance,
            "intervals": {k: v for k, v in intervals.items() if k in ("t0", "c", "variance")},
            "r_squared": s.r_squared,
            "r_squared_means": s.r_squared_means,
            "chi2": s.chi2,
            "dof": s.dof,
            "p_value": s.p_value,
            "outliers": s.outliers,
            "requests": s.requests,
            "c_borrowed": s.c_borrowed,
        },
        "budgets": [
            {
                "budget": int(d.budgets[j]),
                "trials": int(d.trials[j]),
                "correct": int(d.correct[j]),
                "accuracy": float(d.correct[j] / d.trials[j]),
                "fitted_accuracy": float(fitted_p[j]),
                "latency_n": int(d.latency.n[j]),
                "mean_latency_s": float(d.latency.mean[j]),
                "latency_variance_s2": float(s.budget_variance[j]) if d.variance_known else None,
                "fitted_latency_s": float(fitted_t[j]),
            }
            for j in range(d.budgets.size)
        ],
        "warnings": list(t.warnings),
    }
