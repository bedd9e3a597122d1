"""Accuracy curves p(l) = A (1 - exp(-b l)) + D (eq. 2) by maximum likelihood.

The data of one task are binomial counts: at budget l_j, ``correct[j]`` of
``trials[j]`` answers were right. The fit maximises the binomial likelihood over the
paper's constraint set (section II), 0 < A, 0 <= D, A + D <= 1, b > 0, with A at
least :data:`A_MIN` and b within bounds set by the measured budgets.

For a fixed b, p(l) = D e^{-b l} + (A + D)(1 - e^{-b l}) is linear in (D, A + D), so
the likelihood is concave in them and has one maximum, found by projected Newton. Only
the profile likelihood over b can have several optima. It is computed on a grid of
log b; around each of its (up to three best) local optima successively finer grids
and a parabolic step locate b, and the best optimum wins. Replicates of a bootstrap
are searched in the same batched array operations.

``b`` is bounded by the measurement: ``b_lo = 0.01 / l_max`` (below it the curve is a
straight line over the measured budgets: A and b cannot be told apart) and
``b_hi = 10 / l_min`` with l_min the smallest positive budget (above it the curve has
saturated before the first positive budget). A fit that ends on a bound says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

__all__ = ["A_MIN", "AccuracyFit", "b_bounds", "fit_accuracy", "refit_accuracy"]

FloatArray = NDArray[np.float64]

#: The smallest A a fit returns: profiles need A > 0; a flat curve gets this.
A_MIN = 1e-6
#: b * l_max at the lower bound and b * l_min at the upper bound of b.
B_SPAN = (0.01, 10.0)
#: b of a flat curve where no budget > 0 bounds it (irrelevant while A = A_MIN).
FLAT_B = 1e-3
_EPS = 1e-12
_GRID = 64  # values of b of the point estimate's profile grid
_COARSE = 24  # the same for bootstrap replicates
_FINE = 9  # values of b of each finer grid around an optimum of the profile
_LEVELS = 3  # finer grids
_MAX_STEPS = 200  # Newton steps of the inner problem


@dataclass(frozen=True)
class AccuracyFit:
    """A fitted accuracy curve with its goodness of fit.

    ``status`` is ``"ok"``, ``"flat"`` (no measurable gain: A = A_MIN, D = the mean
    accuracy), ``"one budget"``, ``"all correct"`` or ``"all wrong"``. ``deviance`` is
    the binomial G^2 against the saturated model and ``pearson`` X^2, both on ``dof``
    degrees of freedom (budgets minus fitted parameters); ``p_value`` is
    P(chi^2_dof >= deviance) (None when dof = 0). ``dispersion`` = X^2 / dof: about 1
    for binomial data, larger when answers are correlated (the same items in every run).
    """

    A: float
    b: float
    D: float
    status: str
    b_bounds: tuple[float, float] | None
    deviance: float
    pearson: float
    dof: int
    p_value: float | None
    warnings: tuple[str, ...] = ()

    @property
    def dispersion(self) -> float | None:
        return self.pearson / self.dof if self.dof > 0 else None

    def curve(self, budgets: NDArray[np.float64]) -> FloatArray:
        """p(l) at ``budgets`` (tokens)."""
        result: FloatArray = self.A * -np.expm1(-self.b * np.asarray(budgets, float)) + self.D
        return result


def b_bounds(budgets: NDArray[np.float64]) -> tuple[float, float] | None:
    """(b_lo, b_hi) per token from the measured budgets; None without a budget > 0."""
    positive = budgets[budgets > 0]
    if positive.size == 0:
        return None
    return B_SPAN[0] / float(positive.max()), B_SPAN[1] / float(positive.min())


def _profile(
    l: FloatArray, n: FloatArray, k: FloatArray, bs: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The likelihood maximised over (A, D) at a given b, row by row: (nll, D, A + D).

    Row m holds counts ``n[m]``, ``k[m]`` (shape (M, J)) and its b ``bs[m]``. With
    x_j = 1 - e^{-b l_j}, p_j = u (1 - x_j) + w x_j is linear in u = D and w = A + D,
    so the negative log-likelihood is convex in (u, w): projected Newton in the box
    [0, 1]^2, all rows at once. Where the box optimum has w - u < A_MIN (accuracy
    falling with the budget) the optimum is on the edge A = A_MIN: a flat curve.
    """
    x = -np.expm1(-bs[:, None] * l)  # (M, J)
    y = 1.0 - x
    total = n.sum(1)
    mean = k.sum(1) / total
    # start from weighted least squares of the observed accuracies on (1 - x, x)
    observed = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    syy, sxy, sxx = (n * y * y).sum(1), (n * x * y).sum(1), (n * x * x).sum(1)
    sy, sx = (n * observed * y).sum(1), (n * observed * x).sum(1)
    det = syy * sxx - sxy * sxy
    solvable = det > 1e-12 * syy * sxx
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.clip(np.where(solvable, (sxx * sy - sxy * sx) / det, mean), 0.0, 1.0)
        w = np.clip(np.where(solvable, (syy * sx - sxy * sy) / det, mean), 0.0, 1.0)

    def nll(u: FloatArray, w: FloatArray) -> FloatArray:
        p = np.clip(u[:, None] * y + w[:, None] * x, _EPS, 1 - _EPS)
        out: FloatArray = -(k * np.log(p) + (n - k) * np.log1p(-p)).sum(axis=1) / total
        return out

    value = nll(u, w)
    for _ in range(_MAX_STEPS):
        p = np.clip(u[:, None] * y + w[:, None] * x, _EPS, 1 - _EPS)
        d1 = -(k / p - (n - k) / (1 - p)) / total[:, None]
        d2 = (k / p**2 + (n - k) / (1 - p) ** 2) / total[:, None]
        gu, gw = (d1 * y).sum(1), (d1 * x).sum(1)
        huu, huw, hww = (d2 * y * y).sum(1), (d2 * y * x).sum(1), (d2 * x * x).sum(1)
        huu, hww = huu + 1e-12, hww + 1e-12
        free_u = ~(((u <= 0) & (gu > 0)) | ((u >= 1) & (gu < 0)))
        free_w = ~(((w <= 0) & (gw > 0)) | ((w >= 1) & (gw < 0)))
        both = free_u & free_w
        det = huu * hww - huw * huw
        with np.errstate(divide="ignore", invalid="ignore"):
            su = np.where(both, -(hww * gu - huw * gw) / det, -gu / huu)
            sw = np.where(both, -(huu * gw - huw * gu) / det, -gw / hww)
        su = np.where(free_u & np.isfinite(su), su, 0.0)
        sw = np.where(free_w & np.isfinite(sw), sw, 0.0)
        t = np.ones(bs.size)
        new_u, new_w, new_value = u, w, value
        pending = np.ones(bs.size, dtype=bool)
        for _ in range(40):  # backtracking, row by row
            cand_u = np.clip(u + t * su, 0.0, 1.0)
            cand_w = np.clip(w + t * sw, 0.0, 1.0)
            cand = nll(cand_u, cand_w)
            ok = pending & (cand <= value + 1e-4 * (gu * (cand_u - u) + gw * (cand_w - w)))
            new_u = np.where(ok, cand_u, new_u)
            new_w = np.where(ok, cand_w, new_w)
            new_value = np.where(ok, cand, new_value)
            pending &= ~ok
            if not pending.any():
                break
            t = np.where(pending, t / 2, t)
        # converged when no row's log-likelihood (not per trial) gains 1e-10
        gain = float(np.max((value - new_value) * total))
        u, w, value = new_u, new_w, new_value
        if gain < 1e-10:
            break
    falling = w - u < A_MIN
    if falling.any():
        flat = np.clip(mean - A_MIN * (x * n).sum(1) / total, 0.0, 1.0 - A_MIN)
        u = np.where(falling, flat, u)
        w = np.where(falling, flat + A_MIN, w)
        value = nll(u, w)
    return value, u, w


def _search(
    l: FloatArray, n: FloatArray, k: FloatArray, bounds: tuple[float, float], points: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The global maximum for each row of counts ``n``, ``k`` (shape (R, J)): (A, b, D).

    The profile over ``points`` values of log b spanning ``bounds``; around each of its
    (up to three best) local optima two finer grids, each spanning the neighbours of
    the previous best point, and a parabolic step; the best optimum of each row wins.
    Every row and candidate is computed in the same batched calls.
    """
    rows = n.shape[0]
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    grid = np.linspace(lo, hi, points)
    coarse = _profile(
        l, np.repeat(n, points, 0), np.repeat(k, points, 0), np.tile(np.exp(grid), rows)
    )[0]
    coarse = coarse.reshape(rows, points)
    padded = np.pad(coarse, ((0, 0), (1, 1)), constant_values=np.inf)
    is_min = (coarse <= padded[:, :-2]) & (coarse <= padded[:, 2:])
    owners, centres = [], []
    for r in range(rows):
        minima = np.flatnonzero(is_min[r])
        for i in minima[np.argsort(coarse[r, minima], kind="stable")][:3]:
            owners.append(r)
            centres.append(grid[i])
    owner = np.array(owners)
    centre = np.array(centres)
    half = np.full(centre.size, grid[1] - grid[0])
    offsets = np.linspace(-1.0, 1.0, _FINE)
    for _ in range(_LEVELS):
        trial = np.clip(centre[:, None] + half[:, None] * offsets, lo, hi)  # (C, F)
        value = _profile(
            l, n[owner].repeat(_FINE, 0), k[owner].repeat(_FINE, 0), np.exp(trial.ravel())
        )[0]
        value = value.reshape(trial.shape)
        j = value.argmin(axis=1)
        # a parabola through the best point and its neighbours (where both exist)
        inner = np.clip(j, 1, _FINE - 2)
        rows_c = np.arange(centre.size)
        f0, f1, f2 = value[rows_c, inner - 1], value[rows_c, inner], value[rows_c, inner + 1]
        curvature = f0 - 2 * f1 + f2
        step = np.where(
            curvature > 0, 0.5 * (f0 - f2) / np.where(curvature > 0, curvature, 1.0), 0.0
        )
        spacing = trial[rows_c, inner] - trial[rows_c, inner - 1]
        interior = (j == inner) & (np.abs(step) <= 1)
        centre = np.where(interior, trial[rows_c, inner] + step * spacing, trial[rows_c, j])
        half = 2 * half / (_FINE - 1)
    beta = np.clip(centre, lo, hi)
    value, u, w = _profile(l, n[owner], k[owner], np.exp(beta))
    best = np.full(rows, -1)
    for c, r in enumerate(owner):
        if best[r] < 0 or value[c] < value[best[r]]:
            best[r] = c
    A = np.maximum(w[best] - u[best], A_MIN)
    return A, np.exp(beta[best]), np.minimum(u[best], 1.0 - A)


def _goodness(
    l: FloatArray, n: FloatArray, k: FloatArray, p: FloatArray, parameters: int
) -> tuple[float, float, int, float | None]:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    observed = k / n
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(k > 0, k * np.log(observed / p), 0.0) + np.where(
            k < n, (n - k) * np.log((1 - observed) / (1 - p)), 0.0
        )
    deviance = float(max(2.0 * term.sum(), 0.0))
    pearson = float(np.sum((k - n * p) ** 2 / (n * p * (1 - p))))
    dof = max(int(l.size - parameters), 0)
    p_value = float(stats.chi2.sf(deviance, dof)) if dof > 0 else None
    return deviance, pearson, dof, p_value


def _flat(
    l: FloatArray, n: FloatArray, k: FloatArray, bounds: tuple[float, float] | None, status: str
) -> AccuracyFit:
    D = min(float(k.sum() / n.sum()), 1.0 - A_MIN)
    b = float(np.sqrt(bounds[0] * bounds[1])) if bounds else FLAT_B
    p = A_MIN * -np.expm1(-b * l) + D
    deviance, pearson, dof, p_value = _goodness(l, n, k, p, 1)
    return AccuracyFit(A_MIN, b, D, status, bounds, deviance, pearson, dof, p_value)


def _warnings(fit: AccuracyFit, l: FloatArray, n: FloatArray, k: FloatArray) -> tuple[str, ...]:
    notes = []
    top = float(l.max())
    if fit.status == "one budget":
        notes.append(
            f"only budget {top:g} was measured: the curve is taken as flat at the measured "
            f"accuracy {fit.D:.3f} (A and b are not identified; this task gets no thinking)"
        )
    elif fit.status in ("all correct", "all wrong"):
        notes.append(
            f"{fit.status}: accuracy is {fit.D:.0f} at every measured budget; the curve is "
            f"flat (A = {A_MIN:g}) and this task gets no thinking tokens"
        )
    elif fit.status == "flat":
        notes.append(
            f"no measurable gain from thinking: the fitted curve is flat at accuracy "
            f"{fit.D:.3f} (A = {A_MIN:g}); this task gets no thinking tokens"
        )
    elif l.size < 3:
        notes.append(
            f"only {l.size} budgets were measured: the curve's three parameters are not "
            "identified (measure at least 3 budgets, better 5 or more)"
        )
    elif fit.b_bounds is not None:
        lo, hi = fit.b_bounds
        positive = float(l[l > 0].min())
        if fit.b >= hi * (1 - 1e-6):
            notes.append(
                f"b is at its upper bound {hi:.3g} (= 10 / {positive:g}): accuracy saturates "
                f"before the smallest positive budget, so b is not identified; measure "
                "smaller budgets"
            )
        elif fit.b <= lo * (1 + 1e-6):
            notes.append(
                f"b is at its lower bound {lo:.3g} (= 0.01 / {top:g}): accuracy rises in a "
                "straight line over the measured budgets, so A and b are not told apart and "
                f"budgets above {top:g} are extrapolation"
            )
        elif fit.b * top < 1.0:
            reached = -np.expm1(-fit.b * top)
            notes.append(
                f"accuracy is still rising at the largest budget {top:g} ({reached:.0%} of "
                f"its fitted rise A): A, b and budgets above {top:g} rest on extrapolation"
            )
    if fit.p_value is not None and fit.p_value < 1e-3:
        gap = float(np.max(np.abs(k / n - fit.curve(l))))
        if gap > 0.02:
            notes.append(
                f"the curve does not describe the data (deviance {fit.deviance:.1f} on "
                f"{fit.dof} dof, p = {fit.p_value:.1e}; largest gap {gap:.3f})"
            )
    return tuple(notes)


def fit_accuracy(budgets: FloatArray, trials: FloatArray, correct: FloatArray) -> AccuracyFit:
    """Maximum-likelihood p(l) = A (1 - e^{-b l}) + D from binomial counts.

    Parameters
    ----------
    budgets:
        The distinct measured budgets l_j (tokens).
    trials, correct:
        Answers and correct answers at each budget.

    Degenerate data never fail: one budget, all correct, all wrong or no measurable
    gain give a flat curve (A = A_MIN, D = the accuracy) with ``status`` and a warning.
    """
    l, n, k = (np.asarray(a, dtype=np.float64) for a in (budgets, trials, correct))
    bounds = b_bounds(l)
    if l.size < 2 or bounds is None:
        fit = _flat(l, n, k, bounds, "one budget")
    elif np.all(k == n) or np.all(k == 0):
        fit = _flat(l, n, k, bounds, "all correct" if np.all(k == n) else "all wrong")
    else:
        found = _search(l, n[None, :], k[None, :], bounds, _GRID)
        A, b, D = (float(a[0]) for a in found)
        if A * -np.expm1(-b * float(l.max())) < 1e-3:
            fit = _flat(l, n, k, bounds, "flat")
        else:
            p = A * -np.expm1(-b * l) + D
            deviance, pearson, dof, p_value = _goodness(l, n, k, p, 3)
            fit = AccuracyFit(A, b, D, "ok", bounds, deviance, pearson, dof, p_value)
    return _with_warnings(fit, l, n, k)


def _with_warnings(fit: AccuracyFit, l: FloatArray, n: FloatArray, k: FloatArray) -> AccuracyFit:
    return AccuracyFit(**{**fit.__dict__, "warnings": _warnings(fit, l, n, k)})


def refit_accuracy(
    budgets: FloatArray, trials: FloatArray, correct: FloatArray, point: AccuracyFit
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(A, b, D) for R resampled sets of counts (bootstrap replicates, shape (R, J)).

    Flat point fits stay flat (D = the replicate's accuracy); otherwise each row gets
    the same search as the point estimate, on a coarser grid of b.
    """
    l = np.asarray(budgets, dtype=np.float64)
    n = np.atleast_2d(np.asarray(trials, dtype=np.float64))
    k = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    flat_D = np.minimum(k.sum(1) / np.maximum(n.sum(1), 1.0), 1.0 - A_MIN)
    A, b, D = np.full(n.shape[0], A_MIN), np.full(n.shape[0], point.b), flat_D
    fitted = np.count_nonzero(n > 0, axis=1) >= 2
    if point.status != "ok" or point.b_bounds is None or not fitted.any():
        return A, b, D
    A[fitted], b[fitted], D[fitted] = _search(l, n[fitted], k[fitted], point.b_bounds, _COARSE)
    return A, b, D
