"""The benchmark instances of ``benchmarks/instances.py``, for the tests that time or
compare on them.

Loaded from its file under a name of its own: ``tests/instances.py`` is another module
named ``instances``, and whichever of the two is imported first would shadow the other.
"""

from __future__ import annotations

import bench_scripts
from thinkq import Profile

__all__ = ["benchmark_profile"]


def benchmark_profile(n: int, *, stress: bool = False) -> Profile:
    """``benchmarks/instances.py``'s benchmark profile of size ``n``."""
    profile: Profile = bench_scripts.load("instances").benchmark_profile(n, stress=stress)
    return profile
