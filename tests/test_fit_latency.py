"""Service-time lines t(l) = t0 + c l: outliers set aside, constraints, variance,
summaries, and the coverage of the bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from thinkq import Profile, paper_profile
from thinkq.fit import C_MIN, FitError, fit_records
from thinkq.fit.data import resample, task_data
from thinkq.fit.latency import LatencyStats, fit_latency, fit_line, inliers
from thinkq.fit.synthetic import sample_records
from thinkq.records import Record, RecordSet, SummaryRow

BUDGETS = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def record_set(records: list[dict], summaries: list[dict] | None = None) -> RecordSet:
    rows = tuple(SummaryRow.model_validate(s) for s in summaries or [])
    return RecordSet(
        records=tuple(Record.model_construct(**r) for r in records),
        record_lines=tuple(f"mem:{i + 1}" for i in range(len(records))),
        summaries=rows,
        summary_lines=tuple(f"csv:{i + 2}" for i in range(len(rows))),
        files=("mem",),
    )


def one_task(t0: float, c: float, name: str = "task") -> Profile:
    return Profile.from_arrays(
        names=[name],
        share=[1],
        A=[0.5],
        b=[1e-3],
        D=[0.2],
        t0=[t0],
        c=[c],
        rate=0.1,
        alpha=30,
        max_tokens=4096,
    )


# --------------------------------------------------------------------------- outliers


def test_stalled_requests_are_outliers_and_the_rest_are_not():
    rng = np.random.default_rng(0)
    latency = np.concatenate([rng.normal(10, 0.1, 300), [13.0, 40.0], rng.normal(0.2, 0.01, 300)])
    group = np.array([0] * 302 + [1] * 300)
    keep = inliers(latency, group, 2)
    assert not keep[300]
    assert not keep[301]
    assert keep[:300].all()
    assert keep[302:].all()


def test_identical_latencies_keep_everything_but_a_stall():
    latency = np.array([1.0] * 50 + [9.0])
    assert inliers(latency, np.zeros(51, dtype=np.intp), 1).tolist() == [True] * 50 + [False]
    same = np.ones(20)
    assert inliers(same, np.zeros(20, dtype=np.intp), 1).all()


# --------------------------------------------------------------------------- the line


def test_a_noiseless_line_is_recovered_exactly():
    l = np.array(BUDGETS, dtype=float)
    t0, c = fit_line(l, 0.15 + 0.0123 * l, np.ones(l.size))
    assert float(t0) == pytest.approx(0.15, rel=1e-12)
    assert float(c) == pytest.approx(0.0123, rel=1e-12)


@pytest.mark.parametrize(
    ("intercept", "slope"), [(-0.5, 0.01), (2.0, -0.001), (-1.0, -0.01), (0.3, 0.002)]
)
def test_the_constrained_line_matches_a_bounded_least_squares_oracle(intercept, slope):
    l = np.array(BUDGETS, dtype=float)
    rng = np.random.default_rng(1)
    mean = intercept + slope * l + rng.normal(0, 0.05, l.size)
    weights = rng.uniform(0.5, 2.0, l.size)
    t0, c = fit_line(l, mean, weights)
    root = np.sqrt(weights)
    oracle = optimize.lsq_linear(
        np.column_stack([np.ones_like(l), l]) * root[:, None],
        mean * root,
        bounds=([0.0, C_MIN], [np.inf, np.inf]),
        tol=1e-14,
    )
    assert float(t0) == pytest.approx(oracle.x[0], abs=1e-9)
    assert float(c) == pytest.approx(oracle.x[1], rel=1e-6, abs=1e-12)


def test_the_line_is_vectorised_over_replicates():
    l = np.array(BUDGETS, dtype=float)
    rng = np.random.default_rng(2)
    means = 0.1 + 0.01 * l + rng.normal(0, 0.5, (5, l.size))
    weights = rng.uniform(0.5, 2.0, (5, l.size))
    t0, c = fit_line(l, means, weights)
    for r in range(5):
        alone = fit_line(l, means[r], weights[r])
        assert (float(t0[r]), float(c[r])) == pytest.approx((float(alone[0]), float(alone[1])))


def test_latency_that_does_not_grow_puts_c_on_its_floor_with_a_warning():
    l = np.array([0, 100, 200, 400.0])
    data = LatencyStats(np.full(4, 50.0), np.array([1.0, 0.99, 1.0, 0.98]), np.full(4, 0.5))
    fit = fit_latency(l, data)
    assert fit.c == C_MIN
    assert any("does not grow" in w for w in fit.warnings)


# --------------------------------------------------------------------------- robustness


def _fit_latency_of(profile: Profile, seed: int, **options) -> dict[str, tuple[float, float]]:
    records = sample_records(profile, BUDGETS, seed=seed, **options)
    result = fit_records(record_set(records), bootstrap=0)
    return {t.name: (t.latency.t0, t.latency.c) for t in result.tasks}


def test_t0_and_c_within_3_percent_despite_1_percent_stalls():
    profile = paper_profile()
    for seed in range(3):
        fitted = _fit_latency_of(profile, seed, stall_share=0.01)
        for k, name in enumerate(profile.names):
            t0, c = fitted[name]
            assert t0 == pytest.approx(profile.t0[k], rel=0.03), name
            assert c == pytest.approx(profile.c[k], rel=0.03), name


def test_stalls_would_tilt_an_ordinary_least_squares_line():
    """The same data by plain least squares on every request: off by far more than 3%."""
    profile = paper_profile()
    records = sample_records(profile, BUDGETS, seed=0, stall_share=0.01)
    worst = 0.0
    for k, name in enumerate(profile.names):
        l = np.array([r["budget"] for r in records if r["task"] == name], dtype=float)
        t = np.array([r["latency_s"] for r in records if r["task"] == name])
        c, t0 = np.polyfit(l, t, 1)
        worst = max(worst, abs(t0 / profile.t0[k] - 1), abs(c / profile.c[k] - 1))
    assert worst > 0.10


def test_heavy_stalls_are_counted_and_warned_about():
    profile = one_task(0.15, 0.0125)
    records = sample_records(profile, BUDGETS, seed=4, stall_share=0.08)
    (task,) = fit_records(record_set(records), bootstrap=0).tasks
    assert task.latency.t0 == pytest.approx(0.15, rel=0.03)
    assert task.latency.c == pytest.approx(0.0125, rel=0.03)
    assert 0.06 * len(records) < task.latency.outliers < 0.10 * len(records)
    assert any("outliers" in w for w in task.warnings)


def test_the_variance_is_that_of_the_answer_time():
    # answer time t0 X with X of mean 1 and cv 0.3, no token jitter: Var = (0.3 t0)^2
    profile = one_task(0.8, 0.012)
    records = sample_records(profile, BUDGETS, seed=5, token_cv=0.0, stall_share=0.01)
    (task,) = fit_records(record_set(records), bootstrap=0).tasks
    assert task.latency.variance == pytest.approx((0.3 * 0.8) ** 2, rel=0.1)
    assert task.latency.budget_variance == pytest.approx(np.full(11, 0.0576), rel=0.25)
    assert fit_records(record_set(records), bootstrap=0).profile.variance[0] == pytest.approx(
        task.latency.variance
    )


# --------------------------------------------------------------------------- summaries


def _summaries(records: list[dict], *, variance: bool = True) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["task"] for r in records):
        for budget in BUDGETS:
            group = [r for r in records if r["task"] == name and r["budget"] == budget]
            t = np.array([r["latency_s"] for r in group])
            row = {
                "task": name,
                "budget": str(budget),
                "n": str(len(group)),
                "correct": str(sum(r["correct"] for r in group)),
                "mean_latency_s": repr(float(t.mean())),
            }
            if variance:
                row["latency_variance_s2"] = repr(float(t.var(ddof=1)))
            rows.append(row)
    return rows


def test_a_summary_gives_the_same_fit_as_its_records():
    profile = one_task(0.15, 0.0125)
    records = sample_records(profile, BUDGETS, seed=6)
    from_records = fit_records(record_set(records), bootstrap=0).tasks[0]
    from_summary = fit_records(record_set([], _summaries(records)), bootstrap=0).tasks[0]
    assert from_summary.data.resampling == "summary"
    assert pytest.approx(from_records.accuracy.A, rel=1e-6) == from_summary.accuracy.A
    assert from_summary.accuracy.b == pytest.approx(from_records.accuracy.b, rel=1e-4)
    assert from_summary.latency.t0 == pytest.approx(from_records.latency.t0, rel=0.01)
    assert from_summary.latency.c == pytest.approx(from_records.latency.c, rel=0.001)
    assert from_summary.latency.variance == pytest.approx(from_records.latency.variance, rel=0.05)


def test_a_summary_without_variances_is_deterministic_with_a_warning():
    records = sample_records(one_task(0.15, 0.0125), BUDGETS, seed=7)
    result = fit_records(record_set([], _summaries(records, variance=False)), bootstrap=30)
    (task,) = result.tasks
    assert task.latency.variance == 0.0
    assert any("no latency variance" in w for w in task.warnings)
    low, high = task.intervals["c"]
    assert low <= task.latency.c <= high
    assert high > low


def test_summary_rows_of_one_budget_are_pooled():
    rows = [
        {
            "task": "t",
            "budget": "0",
            "n": "10",
            "correct": "5",
            "mean_latency_s": "1.0",
            "latency_variance_s2": "0.5",
        },
        {
            "task": "t",
            "budget": "0",
            "n": "30",
            "correct": "6",
            "mean_latency_s": "2.0",
            "latency_variance_s2": "1.0",
        },
        {
            "task": "t",
            "budget": "100",
            "n": "40",
            "correct": "30",
            "mean_latency_s": "3.0",
            "latency_variance_s2": "1.0",
        },
    ]
    (data,) = task_data(record_set([], rows))
    assert data.trials.tolist() == [40, 40]
    assert data.correct.tolist() == [11, 30]
    assert data.latency.mean[0] == pytest.approx(1.75)
    # within-row sums of squares plus the spread of the row means around 1.75
    assert data.latency.ss[0] == pytest.approx(9 * 0.5 + 29 * 1.0 + 10 * 0.75**2 + 30 * 0.25**2)


# --------------------------------------------------------------------------- one budget


def test_a_task_measured_at_one_budget_borrows_c():
    records = sample_records(one_task(0.15, 0.0125, "wide"), [0, 256, 1024], seed=8)
    records += [
        {**r, "task": "narrow"}
        for r in sample_records(one_task(0.4, 0.0125), [512], items=50, runs=1, seed=9)
    ]
    result = fit_records(record_set(records), bootstrap=10)
    wide, narrow = result.tasks
    assert narrow.latency.c_borrowed
    assert narrow.latency.c == wide.latency.c
    assert narrow.latency.t0 == pytest.approx(0.4, rel=0.1)
    assert narrow.accuracy.status == "one budget"
    assert any("one budget" in w for w in narrow.warnings)
    assert np.all(result.replicates.c[:, 1] == wide.latency.c)


def test_no_task_at_two_budgets_is_an_error():
    records = sample_records(one_task(0.15, 0.0125), [128], items=20, seed=10)
    with pytest.raises(FitError, match="two or more budgets"):
        fit_records(record_set(records), bootstrap=0)


# --------------------------------------------------------------------------- coverage


def test_intervals_of_t0_and_c_cover_the_truth_at_about_their_nominal_rate():
    hits, total, p_values = 0, 0, []
    for t0, c, stall in ((0.1459, 0.0141, 0.01), (0.0581, 0.0119, 0.0)):
        profile = one_task(t0, c)
        for seed in range(30):
            records = sample_records(profile, BUDGETS, seed=2000 + seed, stall_share=stall)
            (data,) = task_data(record_set(records))
            fit = fit_latency(data.budgets, data.latency, outliers=data.outliers)
            _, _, replicate = resample(data, 100, np.random.default_rng(seed))
            t0s, cs = fit_line(
                data.budgets, replicate.mean, np.broadcast_to(fit.weights, replicate.mean.shape)
            )
            for values, truth in ((t0s, t0), (cs, c)):
                low, high = np.quantile(values, [0.025, 0.975])
                hits += low <= truth <= high
                total += 1
            p_values.append(fit.p_value)
    assert 0.85 <= hits / total <= 0.99
    assert np.mean(np.array(p_values) < 0.05) <= 0.2


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"shares": "by-volume"}, "shares"),
        ({"bootstrap": -1}, "bootstrap"),
        ({"level": 1.5}, "level"),
    ],
)
def test_bad_fit_arguments_name_the_argument(options, name):
    records = sample_records(one_task(0.15, 0.0125), [0, 64], items=5, runs=1, seed=12)
    with pytest.raises(ValueError, match=f"^{name}: "):
        fit_records(record_set(records), **options)
