"""The root of the fixed-point condition l - L e^{-b l} = K (eq. 19), in log space.

With y = log(b L) - b K, the root is l = K + W(b L e^{-b K}) / b, and
W(b L e^{-b K}) = omega(y), Wright's omega function, which does not overflow for
large y. The form l = (log(b L) - log omega(y)) / b avoids the cancellation of
K + omega / b where y > 0; where y <= 0 the latter is used (omega may underflow).

Where y itself is beyond double range (a rate so small, or a b so large, that b K
overflows), omega(y) = y - log y + ... ~ -b K, so log omega is log(-b K), which the
caller gives as a log-sum of its positive terms: l = (log(b L) - log(-b K)) / b.
"""

from __future__ import annotations

import numpy as np
from scipy.special import wrightomega

from thinkq._typing import FloatArray

__all__ = ["fixed_point_root"]


def fixed_point_root(
    log_bl: FloatArray, k: FloatArray, b: FloatArray, log_minus_bk: FloatArray
) -> FloatArray:
    """l solving l - L e^{-b l} = K, from log(b L), K (< 0), b and log(-b K). Tokens."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = log_bl - b * k
    omega = wrightomega(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = (log_bl - np.log(omega)) / b
        far = (log_bl - log_minus_bk) / b
        direct = np.where(np.isfinite(y), direct, far)
        result: FloatArray = np.where(y > 0, direct, k + omega / b)  # both may be inf there
    return result
