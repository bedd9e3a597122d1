"""The binomial likelihood of p(l) = A (1 - exp(-b l)) + D (eq. 2) and its maximum.

For a fixed b, p(l) = D e^{-b l} + (A + D)(1 - e^{-b l}) is linear in (D, A + D), so
the likelihood is concave in them and has one maximum, found by projected Newton
(:func:`_profile`). Only the profile likelihood over b can have several optima:
:func:`search` computes it on a grid of log b, refines around each of its (up to
three best) local optima with successively finer grids and a parabolic step, and
keeps the best. Many sets of counts (bootstrap replicates) are searched in the same
batched array operations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from thinkq._typing import FloatArray

__all__ = ["A_MIN", "EPS", "search"]

#: The smallest A a fit returns: profiles need A > 0; a flat curve gets this.
A_MIN = 1e-6
#: Probabilities are clipped to [EPS, 1 - EPS] before their logarithms are taken.
EPS = 1e-12
_FINE = 9  # values of b of each finer grid around an optimum of the profile
_LEVELS = 3  # finer grids
_MAX_STEPS = 200  # Newton steps of the inner problem

#: Two arrays, one value per row each: (u, w), a gradient or a step in them.
Pair = tuple[FloatArray, FloatArray]


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
    u, w = _least_squares(n, k, x, y, mean)

    def nll(u: FloatArray, w: FloatArray) -> FloatArray:
        p = np.clip(u[:, None] * y + w[:, None] * x, EPS, 1 - EPS)
        out: FloatArray = -(k * np.log(p) + (n - k) * np.log1p(-p)).sum(axis=1) / total
        return out

    value = nll(u, w)
    for _ in range(_MAX_STEPS):
        gradient, step = _newton_step(u, w, x, y, n, k, total)
        new_u, new_w, new_value = _backtrack(nll, u, w, value, gradient, step)
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


def _least_squares(
    n: FloatArray, k: FloatArray, x: FloatArray, y: FloatArray, mean: FloatArray
) -> Pair:
    """The start (u, w): weighted least squares of the observed accuracies on (1 - x, x)
    (the mean accuracy where that is singular), clipped to [0, 1]^2."""
    observed = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    syy, sxy, sxx = (n * y * y).sum(1), (n * x * y).sum(1), (n * x * x).sum(1)
    sy, sx = (n * observed * y).sum(1), (n * observed * x).sum(1)
    det = syy * sxx - sxy * sxy
    solvable = det > 1e-12 * syy * sxx
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.clip(np.where(solvable, (sxx * sy - sxy * sx) / det, mean), 0.0, 1.0)
        w = np.clip(np.where(solvable, (syy * sx - sxy * sy) / det, mean), 0.0, 1.0)
    return u, w


def _newton_step(
    u: FloatArray,
    w: FloatArray,
    x: FloatArray,
    y: FloatArray,
    n: FloatArray,
    k: FloatArray,
    total: FloatArray,
) -> tuple[Pair, Pair]:
    """The gradient (gu, gw) of the mean negative log-likelihood at (u, w) and the
    projected Newton step (su, sw): zero along a coordinate held at a bound of [0, 1]
    that the gradient pushes outwards, a Newton step in the free coordinates."""
    p = np.clip(u[:, None] * y + w[:, None] * x, EPS, 1 - EPS)
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
    return (gu, gw), (su, sw)


def _backtrack(
    nll: Callable[[FloatArray, FloatArray], FloatArray],
    u: FloatArray,
    w: FloatArray,
    value: FloatArray,
    gradient: Pair,
    step: Pair,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Armijo backtracking along the projected step, row by row: (u, w, nll) after it
    (a row that finds no decrease in 40 halvings stays where it was)."""
    (gu, gw), (su, sw) = gradient, step
    t = np.ones(u.size)
    new_u, new_w, new_value = u, w, value
    pending = np.ones(u.size, dtype=bool)
    for _ in range(40):
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
    return new_u, new_w, new_value


def search(
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
