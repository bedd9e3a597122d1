"""Profiles: loading TOML and JSON, normalisation, the paper's Table I, and validation."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import BAD_PROFILES, GSM8K, BadProfile, Document
from thinkq import (
    Profile,
    ProfileError,
    ProfileFileError,
    Task,
    ThinkqError,
    UnstableLoadError,
    load_profile,
    paper_profile,
)
from thinkq.profile import PARAMETERS

# Table I of the paper: name, A, b, D, t0, c (section IV)
TABLE_I = (
    ("AIME", 0.6808, 1.59e-4, 0.0, 0.1380, 0.0120),
    ("GSM8K", 0.7230, 3.20e-3, 0.277, 0.1459, 0.0141),
    ("GPQA", 0.3552, 4.41e-4, 0.276, 0.1674, 0.0126),
    ("CRUXEval", 0.4379, 5.63e-4, 0.0, 0.0176, 0.0124),
    ("BBH", 0.7146, 1.75e-3, 0.148, 0.2073, 0.0127),
    ("ARC-Challenge", 0.3933, 1.66e-1, 0.490, 0.0581, 0.0119),
)

WriteProfile = Callable[..., Path]


def assert_same_profile(left: Profile, right: Profile, *, rtol: float = 0.0) -> None:
    assert left.names == right.names
    for key in ("share", *PARAMETERS):
        np.testing.assert_allclose(getattr(left, key), getattr(right, key), rtol=rtol, err_msg=key)
    assert (left.rate, left.alpha, left.max_tokens) == (right.rate, right.alpha, right.max_tokens)


# --------------------------------------------------------------------------- loading


def test_toml_and_json_with_the_same_keys_give_the_same_profile(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    from_toml = load_profile(write_profile(paper_doc, "p.toml"))
    from_json = load_profile(write_profile(paper_doc, "p.json"))
    assert_same_profile(from_toml, from_json)
    assert_same_profile(from_toml, paper_profile())
    assert from_toml.source.endswith("p.toml")
    assert from_json.source.endswith("p.json")


def test_load_accepts_str_paths_and_upper_case_suffix(tmp_path: Path, paper_doc: Document) -> None:
    path = tmp_path / "PROFILE.JSON"
    path.write_text(json.dumps(paper_doc), encoding="utf-8")
    assert_same_profile(load_profile(str(path)), paper_profile())


def test_to_dict_round_trips_through_a_file(write_profile: WriteProfile) -> None:
    profile = paper_profile().replace(rate=0.2, alpha=12.5, max_tokens=1000)
    again = load_profile(write_profile(profile.to_dict(), "round.json"))
    # normalising the already normalised shares again may move them by an ulp
    assert_same_profile(again, profile, rtol=1e-15)


def test_integers_are_accepted_for_real_fields(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    paper_doc["alpha"] = 30
    paper_doc["tasks"][0].update(share=2, D=0, A=1, b=1)
    profile = load_profile(write_profile(paper_doc))
    assert profile.alpha == 30
    assert profile.A[0] == 1.0
    assert profile.b.dtype == np.float64


def test_variance_is_optional_and_zero_by_default(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    assert np.all(load_profile(write_profile(paper_doc)).variance == 0.0)
    paper_doc["tasks"][GSM8K]["variance"] = 2.5
    profile = load_profile(write_profile(paper_doc, "var.json"))
    np.testing.assert_array_equal(profile.variance, [0, 2.5, 0, 0, 0, 0])
    assert profile.extra_second_moment == pytest.approx(2.5 / 6)


# --------------------------------------------------------------------------- shares


def test_shares_are_normalised_to_sum_to_one(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    for task, share in zip(paper_doc["tasks"], (1, 1, 2, 0, 4, 0), strict=True):
        task["share"] = share
    profile = load_profile(write_profile(paper_doc))
    np.testing.assert_allclose(profile.share, [0.125, 0.125, 0.25, 0.0, 0.5, 0.0])
    assert math.isclose(float(profile.share.sum()), 1.0)


def test_scaling_all_shares_changes_nothing(
    write_profile: WriteProfile, paper_doc: Document
) -> None:
    for task in paper_doc["tasks"]:
        task["share"] = 7.5
    assert_same_profile(load_profile(write_profile(paper_doc)), paper_profile())


def test_profile_arrays_are_read_only() -> None:
    profile = paper_profile()
    with pytest.raises(ValueError, match="read-only"):
        profile.share[0] = 1.0


# --------------------------------------------------------------------------- the paper


def test_paper_profile_is_table_one() -> None:
    profile = paper_profile()
    assert profile.names == tuple(row[0] for row in TABLE_I)
    assert (profile.rate, profile.alpha, profile.max_tokens) == (0.1, 30.0, 32768)
    np.testing.assert_array_equal(profile.share, np.full(6, 1 / 6))
    for column, key in enumerate(PARAMETERS, start=1):
        expected = [row[column] for row in TABLE_I]
        np.testing.assert_array_equal(getattr(profile, key), expected, err_msg=key)


def test_paper_profile_tasks() -> None:
    tasks = list(paper_profile().tasks)
    assert tasks[GSM8K] == Task("GSM8K", 1 / 6, 0.7230, 3.20e-3, 0.277, 0.1459, 0.0141)
    assert len(paper_profile()) == 6


@pytest.mark.parametrize(("A", "D"), [(0.7230, 0.277), (0.1, 0.9), (0.7, 0.3), (0.6, 0.4)])
def test_a_plus_d_equal_to_one_passes_in_binary_floats(
    write_profile: WriteProfile, paper_doc: Document, A: float, D: float
) -> None:
    # decimal pairs that sum to exactly 1 must pass whatever binary rounding does
    paper_doc["tasks"][GSM8K].update(A=A, D=D)
    profile = load_profile(write_profile(paper_doc))
    assert (profile.A[GSM8K], profile.D[GSM8K]) == (A, D)


def test_a_plus_d_just_above_one_fails(write_profile: WriteProfile, paper_doc: Document) -> None:
    paper_doc["tasks"][GSM8K].update(A=0.7230, D=0.2771)
    with pytest.raises(ProfileError, match=r"task 'GSM8K': field 'D': A \+ D must be <= 1"):
        load_profile(write_profile(paper_doc))


# --------------------------------------------------------------------------- boundaries


@pytest.mark.parametrize(
    ("k", "values"),
    [
        (0, {"A": 1.0, "D": 0.0}),  # A = 1 is allowed
        (0, {"A": 0.25, "D": 0.75}),  # A + D = 1
        (0, {"t0": 0.0}),
        (2, {"share": 0.0}),  # a zero share, other shares positive
        (5, {"b": 1e-300, "c": 1e-12}),  # tiny but positive
    ],
)
def test_boundary_values_are_valid(
    write_profile: WriteProfile, paper_doc: Document, k: int, values: dict[str, float]
) -> None:
    paper_doc["tasks"][k].update(values)
    profile = load_profile(write_profile(paper_doc))
    for key, value in values.items():
        assert getattr(profile, key)[k] == value or key == "share"


def test_zero_max_tokens_is_valid(write_profile: WriteProfile, paper_doc: Document) -> None:
    paper_doc["max_tokens"] = 0
    assert load_profile(write_profile(paper_doc)).max_tokens == 0


# --------------------------------------------------------------------------- validation


def test_every_case_has_a_distinct_id() -> None:
    assert len({case.id for case in BAD_PROFILES}) == len(BAD_PROFILES)


def test_invalid_profile_files_are_rejected(bad_profile: BadProfile, tmp_path: Path) -> None:
    path = bad_profile.write(tmp_path)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    error = info.value
    message = str(error)
    assert type(error) is bad_profile.error
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    assert error.field == bad_profile.field
    assert error.task == bad_profile.task
    if bad_profile.field is not None:
        assert bad_profile.field_text in message
    if bad_profile.task_text is not None:
        assert bad_profile.task_text in message
    assert bad_profile.fragment in message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rate": 0.0}, "rate"),
        ({"rate": -1.0}, "rate"),
        ({"rate": math.nan}, "rate"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": math.inf}, "alpha"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
    ],
)
def test_replace_validates_again(changes: dict[str, float], field: str) -> None:
    with pytest.raises(ProfileError, match=f"field '{field}'") as info:
        paper_profile().replace(**changes)  # type: ignore[arg-type]
    assert info.value.field == field


def test_replace_to_an_unstable_rate() -> None:
    with pytest.raises(UnstableLoadError, match=r"field 'rate'.*unstable") as info:
        paper_profile().replace(rate=1 / 0.12238)
    assert info.value.field == "rate"
    # just below the limit rate * E[S(0)] < 1 is fine
    assert paper_profile().replace(rate=1 / 0.12240).rate > 8.16


def test_from_arrays_checks_lengths() -> None:
    p = paper_profile()
    with pytest.raises(ProfileError, match="field 'b': expected 6 values") as info:
        Profile.from_arrays(
            names=p.names,
            share=p.share,
            A=p.A,
            b=p.b[:5],
            D=p.D,
            t0=p.t0,
            c=p.c,
            rate=0.1,
            alpha=30.0,
            max_tokens=100,
        )
    assert info.value.field == "b"


def test_from_tasks_validates() -> None:
    tasks = list(paper_profile().tasks)
    tasks[1] = Task("GSM8K", 1.0, 0.7, -1.0, 0.2, 0.1, 0.01)
    with pytest.raises(ProfileError, match="task 'GSM8K': field 'b'") as info:
        Profile.from_tasks(tasks, rate=0.1, alpha=30.0, max_tokens=100)
    assert (info.value.field, info.value.task) == ("b", "GSM8K")


def test_exception_tree() -> None:
    assert issubclass(ProfileError, ThinkqError)
    assert issubclass(ProfileError, ValueError)
    assert issubclass(ProfileFileError, ProfileError)
    assert issubclass(UnstableLoadError, ProfileError)
    assert not issubclass(ThinkqError, ValueError)
