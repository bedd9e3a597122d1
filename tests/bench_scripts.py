"""The benchmark scripts (``benchmarks/*.py``) as modules, for the tests that use their
functions as references or instances (``benchmarks`` is not a package: loaded by path,
under names of their own, since ``tests/instances.py`` and ``benchmarks/instances.py``
would shadow each other; a script puts its own folder on the path if it imports a
sibling)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, loaded once, as the module ``thinkq_benchmark_<name>``."""
    key = f"thinkq_benchmark_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module
