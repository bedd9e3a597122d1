"""The fit report of one task, as ``thinkq fit --json`` and ``NAME.fit.json`` give it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinkq.fit import TaskFit

__all__ = ["task_report"]


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
