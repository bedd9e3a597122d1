"""JSON has no inf or nan: the helpers that turn non-finite numbers into ``null``."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite", "finite_number"]


def finite_number(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None`` (JSON null)."""
    return value if value is not None and math.isfinite(value) else None


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, in dicts, lists and
    tuples too (tuples become lists)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
