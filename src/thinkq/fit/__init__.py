"""Fit a profile to measurements: accuracy and latency curves with their uncertainty.

:func:`fit_records` reads measurement files (:mod:`thinkq.records`), fits per task

* the accuracy curve p(l) = A (1 - e^{-b l}) + D (eq. 2) by binomial maximum
  likelihood (:mod:`.accuracy`),
* the service-time line t(l) = t0 + c l (eq. 1), robust to stalled requests, and the
  variance around it (:mod:`.latency`),

and, where the files hold the server phase of ``thinkq profile --slots`` (lines with
``"phase": "server"``), the server's step time tau(n) = tau0 + tau1 n (:mod:`.server`),
written as the profile's ``[server]`` table, with the prompt stage of its prompt probe
(``"phase": "prompt"``: :mod:`.prompt`);

bootstraps both (:mod:`.bootstrap`) for percentile intervals, and returns a
:class:`FitResult` (:mod:`.result`): a validated :class:`~thinkq.Profile` at the chosen operating
point, a report per task (parameters, intervals, goodness of fit, warnings) and the
bootstrap :class:`Replicates`, which :func:`propagate` turns into intervals on the
optimal budgets and J.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from thinkq.errors import FitError
from thinkq.fit._likelihood import A_MIN
from thinkq.fit.accuracy import AccuracyFit, fit_accuracy
from thinkq.fit.bootstrap import bootstrap as bootstrap_fits
from thinkq.fit.data import TaskData, supported_max, task_data
from thinkq.fit.latency import C_MIN, LatencyFit, fit_latency
from thinkq.fit.prompt import PromptFit, fit_prompt_stage
from thinkq.fit.result import FitResult, TaskFit
from thinkq.fit.server import ServerFit, fit_server, with_solo
from thinkq.fit.steps import step_data
from thinkq.fit.uncertainty import Propagation, Replicates, propagate
from thinkq.profile import Profile
from thinkq.records import RecordSet, check_records, read_records

__all__ = [
    "A_MIN",
    "C_MIN",
    "DEFAULT_ALPHA",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_RATE",
    "SHARES",
    "AccuracyFit",
    "FitError",
    "FitResult",
    "LatencyFit",
    "PromptFit",
    "Propagation",
    "Replicates",
    "ServerFit",
    "TaskFit",
    "fit_records",
    "propagate",
]

#: The paper's operating point (section IV), the default of a fitted profile.
DEFAULT_RATE = 0.1
DEFAULT_ALPHA = 30.0
DEFAULT_BOOTSTRAP = 200
SHARES = ("empirical", "uniform")


def _latency_fits(tasks: tuple[TaskData, ...]) -> list[LatencyFit]:
    fits: dict[int, LatencyFit] = {}
    for i, t in enumerate(tasks):
        if t.budgets.size >= 2:
            fits[i] = fit_latency(
                t.budgets, t.latency, outliers=t.outliers, variance_known=t.variance_known
            )
    single = [i for i, t in enumerate(tasks) if t.budgets.size < 2]
    if single:
        slopes = [f.c for f in fits.values() if f.c > C_MIN] or [f.c for f in fits.values()]
        if not slopes:
            raise FitError(
                "no task was measured at two or more budgets, so the time per thinking token "
                "c cannot be estimated: measure at least one task at two budgets"
            )
        borrowed = float(np.median(slopes))
        for i in single:
            t = tasks[i]
            fits[i] = fit_latency(
                t.budgets,
                t.latency,
                outliers=t.outliers,
                c_fixed=borrowed,
                variance_known=t.variance_known,
            )
    return [fits[i] for i in range(len(tasks))]


def _check_options(*, shares: str, bootstrap: int, level: float) -> None:
    if shares not in SHARES:
        raise ValueError(f"shares: expected one of {', '.join(SHARES)}, got {shares!r}")
    if not (isinstance(bootstrap, int) and bootstrap >= 0):
        raise ValueError(f"bootstrap: expected an integer >= 0, got {bootstrap!r}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")


# long: the public entry point, whose numpy-style docstring is half of it; the body is
# the pipeline read, fit, bootstrap, report in about thirty lines
def fit_records(
    records: RecordSet | Iterable[str | Path],
    *,
    rate: float = DEFAULT_RATE,
    alpha: float = DEFAULT_ALPHA,
    max_tokens: int | None = None,
    shares: str = "empirical",
    bootstrap: int = DEFAULT_BOOTSTRAP,
    level: float = 0.95,
    seed: int | None = 0,
    progress: Callable[[int, int], None] | None = None,
    drop_off_budget: bool = False,
    prompt_stage: bool = True,
) -> FitResult:
    """Fit a profile to measurement files (or a :class:`~thinkq.records.RecordSet`).

    Parameters
    ----------
    rate, alpha:
        The operating point written to the profile (default: the paper's, 0.1/s, 30).
    max_tokens:
        l_max of the profile; default the largest measured budget (beyond it the
        curves are extrapolations), passing over budgets measured less than half as
        often as the median budget (a warning says so).
    shares:
        ``"empirical"``: each task's share of the queries in the measurements;
        ``"uniform"``: equal shares.
    bootstrap:
        Replicates for the intervals and for :func:`propagate` (0: none).
    level:
        Coverage of the percentile intervals.
    seed:
        Seed of the bootstrap (the same seed gives the same intervals).
    progress:
        Called as ``progress(done, total)`` while bootstrapping.
    drop_off_budget:
        Leave out records whose thinking tokens differ from their budget (counted in
        a warning) instead of raising; see :func:`thinkq.records.check_records`,
        whose warnings (failed queries, repeated records) the result carries.
    prompt_stage:
        With the server phase's prompt probe in the records, write the ``[server]``
        table's ``prompt`` and lift each t0 for new prompts (:mod:`.prompt`); false
        leaves both out (traffic whose prompts repeat).

    Raises
    ------
    RecordError
        Malformed measurement files (every bad line is listed), or records whose
        thinking tokens differ from their budget.
    FitError
        Measurements that cannot give c (no task measured at two budgets).
    ProfileError
        The fitted profile is invalid at the operating point (e.g. unstable ``rate``).
    ValueError
        A bad ``shares``, ``bootstrap`` or ``level``.
    """
    _check_options(shares=shares, bootstrap=bootstrap, level=level)
    record_set = records if isinstance(records, RecordSet) else read_records(records)
    record_set, checks = check_records(record_set, drop_off_budget=drop_off_budget)
    tasks = task_data(record_set)
    accuracy = [fit_accuracy(t.budgets, t.trials, t.correct) for t in tasks]
    latency = _latency_fits(tasks)
    measured_max = int(max(float(t.budgets.max()) for t in tasks))
    supported, thin = supported_max(tasks)
    weights = [float(t.queries) if shares == "empirical" else 1.0 for t in tasks]
    profile = Profile.from_arrays(
        names=[t.name for t in tasks],
        share=weights,
        A=[a.A for a in accuracy],
        b=[a.b for a in accuracy],
        D=[a.D for a in accuracy],
        t0=[s.t0 for s in latency],
        c=[s.c for s in latency],
        variance=[s.variance for s in latency],
        rate=rate,
        alpha=alpha,
        max_tokens=supported if max_tokens is None else max_tokens,
        source=", ".join(record_set.files),
    )
    replicates, intervals = None, [dict[str, tuple[float, float]]() for _ in tasks]
    if bootstrap:
        replicates, intervals = bootstrap_fits(
            tasks, accuracy, latency, bootstrap, level=level, seed=seed, progress=progress
        )
    server = _server_fit(record_set, profile, bootstrap=bootstrap, level=level, seed=seed)
    prompt = None
    if server is not None:
        profile, server, replicates, prompt = fit_prompt_stage(
            record_set, profile.with_server(server.server), server, replicates,
            bootstrap=bootstrap, level=level, seed=seed, enabled=prompt_stage,
        )  # fmt: skip
    return FitResult(
        profile=profile,
        tasks=tuple(
            TaskFit(t.name, float(profile.share[i]), t, accuracy[i], latency[i], intervals[i])
            for i, t in enumerate(tasks)
        ),
        replicates=replicates,
        level=level,
        seed=seed,
        model=record_set.model,
        files=record_set.files,
        measured_max=measured_max,
        notes=(thin,) if thin and max_tokens is None else (),
        checks=checks,
        server=server,
        prompt=prompt,
    )


def _server_fit(
    records: RecordSet, profile: Profile, *, bootstrap: int, level: float, seed: int | None
) -> ServerFit | None:
    """The step-time law from the server phase's records (None without any).

    t0 and c describe the server running alone: a warning says when the accuracy
    records were measured with more than one query in flight.
    """
    if not records.server:
        return None
    stream = np.random.SeedSequence(seed).spawn(profile.size + 1)[-1]
    fit = fit_server(
        step_data(records), bootstrap=bootstrap, level=level, rng=np.random.default_rng(stream)
    )
    fit = with_solo(fit, profile.names, profile.c)
    given = [(r.model_extra or {}).get("concurrency") for r in records.records]
    loaded = max((n for n in given if isinstance(n, int) and not isinstance(n, bool)), default=1)
    if loaded > 1:
        note = (
            f"server: the accuracy records were measured with up to {loaded} queries in "
            "flight (--concurrency): t0 and c should describe the server running alone"
        )
        fit = dataclasses.replace(fit, warnings=(*fit.warnings, note))
    return fit
