"""Type aliases shared across thinkq: one definition, imported everywhere."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: A numpy array of float64: budgets in tokens, times in seconds, shares, ...
FloatArray = NDArray[np.float64]
#: A numpy array of int64: integer budgets, counts, indices.
IntArray = NDArray[np.int64]

__all__ = ["FloatArray", "IntArray"]
