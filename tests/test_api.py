"""The public surface: one API, exported from the package, sorted and complete."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import thinkq


def test_all_is_sorted_and_exported():
    assert thinkq.__all__ == sorted(thinkq.__all__)
    for name in thinkq.__all__:
        assert hasattr(thinkq, name), name


def test_every_public_name_is_in_all():
    public = {
        name
        for name, value in vars(thinkq).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public <= set(thinkq.__all__)


def test_the_exceptions_form_one_tree():
    assert issubclass(thinkq.ProfileError, thinkq.ThinkqError)
    assert issubclass(thinkq.ProfileError, ValueError)
    assert issubclass(thinkq.UnstableLoadError, thinkq.ProfileError)
    assert issubclass(thinkq.ProfileFileError, thinkq.ProfileError)


def test_the_documented_workflow_runs():
    profile = thinkq.paper_profile()
    result = thinkq.solve(profile)
    run = thinkq.simulate(profile, result.budgets, queries=2000, seed=0)
    assert run.analytic_mean_system_time == thinkq.model.system_time(profile, result.budgets)
    swept = thinkq.sweep(profile, over="alpha", start=10, stop=30, points=2, queries=None)
    assert swept.points[-1].budgets == tuple(result.budgets.tolist())


def test_the_measure_package_exports_its_api():
    import thinkq.measure as measure

    assert measure.__all__ == sorted(measure.__all__, key=lambda n: (not n.isupper(), n))
    for name in measure.__all__:
        assert hasattr(measure, name), name
    public = {
        name
        for name, value in vars(measure).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public <= set(measure.__all__)


@pytest.mark.parametrize(
    "package",
    [
        "thinkq.fit",
        "thinkq.paper",
        "thinkq.profile",
        "thinkq.records",
        "thinkq.simulate",
        "thinkq.solve",
    ],
)
def test_each_concept_package_exports_its_api(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
    for name in module.__all__:
        assert hasattr(module, name), name


def _resolve(dotted: str) -> object:
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ModuleNotFoundError(dotted)


def _documented_paths() -> list[str]:
    root = Path(__file__).resolve().parents[1]
    texts = [(root / "README.md").read_text("utf-8")]
    texts += [path.read_text("utf-8") for path in sorted((root / "docs").glob("*.md"))]
    paths: set[str] = set()
    for text in texts:
        # a name after a slash is a file in a path (deploy/grafana/thinkq.json), not Python
        paths.update(re.findall(r"(?<![/\w])thinkq(?:\.[A-Za-z_]\w*)+", text))
        for module, names in re.findall(r"from (thinkq[\w.]*) import ([\w, ]+)", text):
            paths.update(f"{module}.{name.strip()}" for name in names.split(",") if name.strip())
    return sorted(paths)


def test_the_documentation_finds_what_it_names():
    paths = _documented_paths()
    assert "thinkq.records.read_records" in paths  # the scan sees the README
    for dotted in paths:
        assert _resolve(dotted) is not None, dotted
