"""``thinkq solve --slo``: the acceptance of issue 16 on the command line.

* the mean-SLO budgets are ``thinkq solve --alpha <shadow_price>``'s, exactly;
* unmeetable objectives, malformed strings and percentiles outside (0, 100) are one
  ``error:`` line with exit code 2;
* ``--json`` has the analytic p50/p95/p99 system times, top level and per task, and
  with ``--slo`` an ``slo`` object with the objectives and the shadow price.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

import thinkq
from conftest import paper_document, write_document
from thinkq import cli
from thinkq.tails import system_times


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "100")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


def solved(*args: str | Path) -> dict[str, Any]:
    result = run("solve", "--json", *args)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def budgets(data: dict[str, Any]) -> list[int]:
    return [task["budget"] for task in data["tasks"]]


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Profile arguments: the paper's, at other rates and l_max, two served ones."""
    folder = tmp_path_factory.mktemp("profiles")
    slow = paper_document() | {"rate": 0.03}
    served = paper_document() | {"rate": 1.0, "server": {"slots": 4, "tau0": 0.02, "tau1": 0.002}}
    one = paper_document() | {"server": {"slots": 1, "tau0": 0.02, "tau1": 0.002}}
    return {
        "paper": [],
        "paper-rate-0.2": ["--rate", "0.2"],
        "paper-lmax-300": ["--max-tokens", "300"],
        "slow": [str(write_document(folder / "slow.toml", slow))],
        "batched-4": [str(write_document(folder / "served.json", served))],
        "one-slot": [str(write_document(folder / "one.json", one))],
    }


@pytest.mark.parametrize("name", ["paper", "paper-rate-0.2", "paper-lmax-300", "slow",
                                  "batched-4", "one-slot"])  # fmt: skip
@pytest.mark.parametrize("target", ["1.5s", "2500ms", "4s"])
def test_mean_slo_budgets_are_solve_at_the_shadow_price(
    profiles: dict[str, list[str]], name: str, target: str
) -> None:
    args = profiles[name]
    data = solved(*args, "--slo", f"mean<={target}")
    slo = data["slo"]
    price = slo["shadow_price"]
    assert price is not None, slo
    assert data["alpha"] == price
    again = solved(*args, "--alpha", repr(price))
    assert budgets(again) == budgets(data)
    assert again["mean_system_time"] == data["mean_system_time"]
    (objective,) = slo["objectives"]
    assert objective["achieved"] == data["mean_system_time"]
    assert objective["met"] is True
    assert objective["achieved"] <= objective["target"]
    assert slo["next_alpha"] / price - 1 <= 1e-9
    assert solved(*args, "--alpha", repr(slo["next_alpha"]))["mean_system_time"] > float(
        objective["target"]
    )


def test_the_table_shows_objectives_achieved_values_and_the_shadow_price() -> None:
    result = run("solve", "--slo", "mean<=2s", "--slo", "gsm8k:mean<=3s")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    data = solved("--slo", "mean<=2s", "--slo", "gsm8k:mean<=3s")
    price = data["slo"]["shadow_price"]
    assert "Latency objectives (SLO)" in out
    assert f"alpha {price:g}," in out.splitlines()[0]
    assert f"alpha* = {price:.10g} s per unit of accuracy" in out
    assert "mean<=2s (mean overall)" in out
    assert "GSM8K:mean<=3s (mean of GSM8K)" in out
    assert f"{data['slo']['objectives'][0]['achieved']:.4f} s  met" in out


def test_a_loose_slo_does_not_bind() -> None:
    data = solved("--max-tokens", "50", "--slo", "mean<=1min")
    assert data["slo"]["shadow_price"] is None
    assert data["slo"]["binding"] is False
    assert budgets(data) == [50] * 6
    assert (
        "none: no objective binds"
        in run("solve", "--max-tokens", "50", "--slo", "mean<=1min").stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "mean<=0.1s"],
         "error: option --slo: 'mean<=0.1s': mean at zero budgets is 0.1234 s > 0.1 s; "
         "no budgets meet it"),
        (["--slo", "p95<=8"], "error: option --slo: 'p95<=8': the target has no unit"),
        (["--slo", "p100<=8s"], "error: option --slo: 'p100<=8s': the percentile must lie "
         "strictly between 0 and 100, got 100"),
        (["--slo", "p0<=8s"], "error: option --slo: 'p0<=8s': the percentile must lie"),
        (["--slo", "p-1<=8s"], "error: option --slo: 'p-1<=8s': the percentile must lie"),
        (["--slo", "p95<=-8s"], "error: option --slo: 'p95<=-8s': the target must be a positive"),
        (["--slo", "p95<=nans"], "error: option --slo: 'p95<=nans': the target must be a positive"),
        (["--slo", "p95>8s"], "error: option --slo: 'p95>8s': expected [TASK:]mean<=T"),
        (["--slo", "mmlu:p95<=8s"], "error: option --slo: 'mmlu:p95<=8s': task 'mmlu' is not a "
         "task of the profile (tasks: AIME, GSM8K, GPQA, CRUXEval, BBH, ARC-Challenge)"),
        (["--slo", "mean<=2s", "--alpha", "3"], "error: option --alpha: not with --slo"),
        (["--slo", "mean<=2s", "--uncertainty", "2"], "error: option --uncertainty: not "
         "available with --slo"),
        (["--slo", "mean<=2s", "--method", "fixed-point", "--max-iter", "0"],
         "error: Invalid value for '--max-iter'"),
    ],
)  # fmt: skip
def test_bad_objectives_are_one_error_line_and_exit_2(args: list[str], message: str) -> None:
    for extra in ([], ["--json"]):
        result = run("solve", *args, *extra)
        assert result.exit_code == 2, result.stdout
        assert result.stdout == ""
        assert result.stderr.startswith(message), result.stderr
        assert result.stderr.count("\n") == 1


# --------------------------------------------------------------------------- --json


PERCENTILE_KEYS = ["p50_system_time", "p95_system_time", "p99_system_time"]


def test_json_reports_analytic_percentiles_top_level_and_per_task() -> None:
    data = solved()
    profile = thinkq.paper_profile()
    times = system_times(profile, np.array(budgets(data)))
    overall, per_task = times.percentiles([50, 95, 99])
    assert [data[key] for key in PERCENTILE_KEYS] == overall.tolist()
    assert data["percentile_method"] == "pk-transform"
    assert data["percentile_queries"] == 0
    keys = list(data)
    assert keys[keys.index("mean_system_time") + 1 : keys.index("percentile_method")] == (
        PERCENTILE_KEYS
    )
    for task, row in zip(data["tasks"], per_task.tolist(), strict=True):
        assert [task[key] for key in PERCENTILE_KEYS] == row
        assert list(task)[-3:] == PERCENTILE_KEYS
    assert data["p50_system_time"] < data["p95_system_time"] < data["p99_system_time"]
    assert "slo" not in data


def test_json_on_a_batched_server_says_its_percentiles_are_simulated(
    profiles: dict[str, list[str]],
) -> None:
    data = solved(*profiles["batched-4"])
    assert data["percentile_method"] == "simulation"
    assert data["percentile_queries"] > 0
    assert all(task["p95_system_time"] > 0 for task in data["tasks"])


def test_json_with_slo_has_the_objectives_and_the_shadow_price() -> None:
    data = solved("--slo", "p95<=8s", "--slo", "GSM8K:p99<=12s")
    slo = data["slo"]
    assert [o["objective"] for o in slo["objectives"]] == ["p95<=8s", "GSM8K:p99<=12s"]
    first, second = slo["objectives"]
    assert (first["statistic"], first["task"], first["target"]) == ("p95", None, 8.0)
    assert (second["statistic"], second["task"], second["target"]) == ("p99", "GSM8K", 12.0)
    assert first["achieved"] <= 8.0  # percentile() and percentiles() agree to rounding:
    assert first["achieved"] == pytest.approx(data["p95_system_time"], rel=1e-12)
    assert second["achieved"] <= 12.0
    assert second["achieved"] == pytest.approx(data["tasks"][1]["p99_system_time"], rel=1e-12)
    assert first["met"] is second["met"] is True
    assert slo["shadow_price"] == data["alpha"]
    assert slo["accuracy_per_second"] == pytest.approx(1 / slo["shadow_price"])
    assert slo["exact"] is False
    assert slo["percentile_method"] == "pk-transform"
    again = solved("--alpha", repr(slo["shadow_price"]))
    assert budgets(again) == budgets(data)
