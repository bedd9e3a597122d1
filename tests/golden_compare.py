"""Outputs against the files under ``tests/golden/``: the same text, numbers to the last
digits that the platform's floating point keeps.

The goldens pin the output of profiles without a server table. numpy, scipy and the
CPU's vector units may round the last bit of a sum differently (a new numpy wheel, or
AVX-512 where the goldens were written with AVX2), which moves a printed double in its
16th digit or a residual of 1e-13 to another 1e-13; every other character, and every
number beyond ``REL`` (or ``ABS`` near zero), must be the same.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["same_data", "same_text"]

REL = 1e-9
ABS = 1e-9
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=REL, abs_tol=ABS)


def same_text(actual: str, expected: str) -> bool:
    """The same text with each number (as printed) within ``REL``/``ABS``."""
    if NUMBER.split(actual) != NUMBER.split(expected):
        return False
    found, wanted = NUMBER.findall(actual), NUMBER.findall(expected)
    return len(found) == len(wanted) and all(
        _close(float(a), float(b)) for a, b in zip(found, wanted, strict=True)
    )


def same_data(actual: Any, expected: Any) -> bool:
    """Parsed JSON alike: the same keys, types and strings, floats within ``REL``/``ABS``."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(same_data(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same_data(a, b) for a, b in zip(actual, expected, strict=True))
        )
    if isinstance(expected, float) and isinstance(actual, float | int):
        return _close(float(actual), expected)
    return type(actual) is type(expected) and actual == expected
