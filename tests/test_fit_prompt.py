"""The [server] table's prompt stage from the prompt probe's records: thinkq.fit.prompt
and thinkq fit --no-prompt-stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from thinkq import load_profile
from thinkq.batching.server import PROMPT_SLOTS
from thinkq.cli import app
from thinkq.fit import FitResult, fit_records
from thinkq.fit.files import profile_text
from thinkq.fit.synthetic import sample_records, sample_server_records, write_jsonl
from thinkq.profile import Profile

TAU0, TAU1 = 0.010, 0.008
runner = CliRunner()
#: Per task, its probes' (new_ms, held_ms).
PROBES = {"gsm8k": [(300.0, 10.0), (340.0, 12.0), (320.0, 8.0)], "arc": [(400.0, 8.0)]}


def two_tasks() -> Profile:
    return Profile.from_arrays(
        names=["gsm8k", "arc"], share=[1.0, 1.0], A=[0.3, 0.3], b=[0.02, 0.02], D=[0.2, 0.2],
        t0=[0.4, 0.3], c=[1.05 * (TAU0 + TAU1)] * 2, rate=0.2, alpha=30.0, max_tokens=256,
    )  # fmt: skip


def probes(table: dict[str, list[tuple[float, float]]] = PROBES) -> list[dict[str, Any]]:
    return [
        {"phase": "prompt", "task": task, "item_id": f"{task}-{i}", "model": "synthetic",
         "new_ms": new, "new_n": 125, "held_ms": held, "held_n": 1, "error": None}
        for task, rows in table.items() for i, (new, held) in enumerate(rows)
    ]  # fmt: skip


def write(directory: Path, prompt: list[dict[str, Any]], *, slots: int = 4) -> list[Path]:
    directory.mkdir(exist_ok=True)
    accuracy = sample_records(two_tasks(), [0, 64, 256], items=20, runs=1, seed=3)
    server = sample_server_records(TAU0, TAU1, slots=slots, seed=4)
    return [
        write_jsonl(directory / "r.jsonl", accuracy),
        write_jsonl(directory / "r.server.jsonl", server + prompt),
    ]


def means(task: str) -> tuple[float, float]:
    rows = np.array(PROBES[task])
    return float(np.mean(rows[:, 0]) / 1e3), float(np.mean(rows[:, 1]) / 1e3)


def test_the_prompt_is_the_shared_mean_new_prompt_and_each_t0_is_lifted(tmp_path: Path) -> None:
    plain = fit_records(write(tmp_path / "plain", []), bootstrap=50, seed=1)
    result = fit_records(write(tmp_path / "probed", probes()), bootstrap=50, seed=1)
    fit, profile = result.prompt, result.profile
    assert plain.prompt is None
    assert fit is not None
    assert fit.applied
    assert fit.probes == 4
    share = dict(zip(profile.names, profile.share, strict=True))
    expected = share["gsm8k"] * means("gsm8k")[0] + share["arc"] * means("arc")[0]
    assert fit.prompt == pytest.approx(expected, rel=1e-12)
    assert profile.server is not None
    assert profile.server.prompt == fit.prompt
    assert result.server is not None
    assert result.server.server == profile.server
    for k, name in enumerate(profile.names):
        new, held = means(name)
        assert fit.lift(k) == pytest.approx(new - held, rel=1e-12)
        # the line is the one measured, the profile's t0 is it lifted by a new prompt
        assert result.tasks[k].latency.t0 == plain.tasks[k].latency.t0
        assert profile.t0[k] == pytest.approx(plain.profile.t0[k] + new - held, rel=1e-12)
    assert plain.replicates is not None
    assert result.replicates is not None
    lifts = np.array([fit.lift(k) for k in range(profile.size)])
    assert np.allclose(result.replicates.t0, plain.replicates.t0 + lifts, rtol=1e-12, atol=0)
    assert fit.interval is not None
    low, high = fit.interval
    assert low <= fit.prompt <= high
    assert low < high  # the items were resampled
    assert plain.profile.server is not None
    assert profile.server.tau0 == plain.profile.server.tau0
    report = result.to_dict()
    assert report["prompt"]["written"]
    assert report["prompt"]["types"][1]["new_s"] == pytest.approx(0.4)
    assert report["tasks"][0]["latency"]["t0_profile"] == pytest.approx(profile.t0[0])
    assert "lifted" in report["prompt"]["t0"]
    assert not [w for w in result.warnings if "prompt" in w]


def test_the_toml_carries_the_prompt_with_its_interval_and_says_why_t0_is_lifted(
    tmp_path: Path,
) -> None:
    files = write(tmp_path, probes())
    out = tmp_path / "p.toml"
    done = runner.invoke(app, ["fit", *map(str, files), "-o", str(out), "--bootstrap", "50"])
    assert done.exit_code == 0, done.output
    text = out.read_text("utf-8")
    (line,) = [t for t in text.splitlines() if t.startswith("prompt = ")]
    assert line.endswith("s: a new prompt computed alone while the batch waits (4 probes)")
    assert "  # [" in line
    t0_lines = [t for t in text.splitlines() if t.startswith("t0 = ")]
    assert all("measured with prompts held" in t for t in t0_lines)
    loaded = load_profile(out)
    assert loaded.server is not None
    report = json.loads((tmp_path / "p.fit.json").read_text("utf-8"))
    assert loaded.server.prompt == report["prompt"]["prompt"]
    assert list(loaded.t0) == [t["latency"]["t0_profile"] for t in report["tasks"]]
    assert "prompt" in " ".join(done.output.split())


def test_no_prompt_stage_leaves_the_prompt_out_and_t0_as_measured(tmp_path: Path) -> None:
    plain_files = write(tmp_path / "plain", [])
    files = write(tmp_path / "probed", probes())
    plain = fit_records(plain_files, bootstrap=20, seed=1)
    left = fit_records(files, bootstrap=20, seed=1, prompt_stage=False)
    assert left.prompt is not None
    assert not left.prompt.applied
    assert np.array_equal(left.profile.t0, plain.profile.t0)
    assert left.profile.server == plain.profile.server
    assert not [w for w in left.warnings if "prompt" in w]  # asked for: no warning

    def body(result: FitResult) -> list[str]:
        return [t for t in profile_text(result).splitlines() if not t.startswith("# ")]

    assert body(left) == body(plain)  # the same profile, bit for bit
    out = tmp_path / "p.toml"
    done = runner.invoke(app, ["fit", *map(str, files), "-o", str(out), "--no-prompt-stage"])
    assert done.exit_code == 0, done.output
    server = load_profile(out).server
    assert server is not None
    assert server.prompt == 0.0
    assert "prompt = " not in out.read_text("utf-8")


def test_without_probe_records_the_toml_has_no_prompt(tmp_path: Path) -> None:
    result = fit_records(write(tmp_path, []), bootstrap=20, seed=1)
    text = profile_text(result)
    assert "prompt" not in text
    assert "prompt" not in result.to_dict()


def test_a_prompt_not_below_the_mean_solo_time_is_left_out_with_a_warning(tmp_path: Path) -> None:
    slow = {"gsm8k": [(5000.0, 5000.0)], "arc": [(5000.0, 5000.0)]}  # held as slow as new
    result = fit_records(write(tmp_path, probes(slow)), bootstrap=0)
    assert result.prompt is not None
    assert not result.prompt.applied
    assert result.profile.server is not None
    assert result.profile.server.prompt == 0.0
    (warning,) = [w for w in result.warnings if "prompt" in w]
    assert "not below the mean solo time at zero budgets" in warning
    assert "t0 left as measured" in warning
    assert "prompt = " not in profile_text(result)


def test_more_slots_than_the_prompt_stage_models_are_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    slots = PROMPT_SLOTS * 2
    plain = fit_records(write(tmp_path / "plain", [], slots=slots), bootstrap=0)
    result = fit_records(write(tmp_path / "probed", probes(), slots=slots), bootstrap=0)
    assert result.prompt is not None
    assert not result.prompt.applied
    (warning,) = [w for w in result.warnings if "prompt" in w]
    assert f"at most {PROMPT_SLOTS} slots, not {slots}" in warning
    assert np.array_equal(result.profile.t0, plain.profile.t0)


def test_a_type_without_a_probe_takes_the_mean_of_all_probes(tmp_path: Path) -> None:
    only = {"gsm8k": PROBES["gsm8k"]}
    result = fit_records(write(tmp_path, probes(only)), bootstrap=0)
    fit = result.prompt
    assert fit is not None
    assert fit.applied
    arc = fit.types[1]
    assert (arc.name, arc.probes) == ("arc", 0)
    assert (arc.new, arc.held) == pytest.approx(means("gsm8k"), rel=1e-12)
    assert any("no probe of arc" in w for w in result.warnings)
