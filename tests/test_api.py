"""The public surface: one API, exported from the package, sorted and complete."""

from __future__ import annotations

import inspect

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
