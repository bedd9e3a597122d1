"""The benchmark instances of ``benchmarks/instances.py``, for the tests that time or
compare on them.

Loaded from its file under a name of its own: ``tests/instances.py`` is another module
named ``instances``, and whichever of the two is imported first would shadow the other.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from thinkq import Profile

__all__ = ["benchmark_profile"]

_NAME = "thinkq_benchmark_instances"
_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "instances.py"


def _load() -> object:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


def benchmark_profile(n: int, *, stress: bool = False) -> Profile:
    """``benchmarks/instances.py``'s benchmark profile of size ``n``."""
    profile: Profile = _load().benchmark_profile(n, stress=stress)
    return profile
