"""``thinkq solve`` with and without a ``[server]`` table.

Without one, the output must stay what it was before the batched server existed: the
files under ``tests/golden/`` were captured from ``thinkq solve`` (table and ``--json``,
the paper's profile and ``--rate 1``) before the solver learned about servers, and are
compared byte for byte. The ``--json`` ones were captured again when ``solve --json``
gained the p50/p95/p99 system times (issue 16): only those fields were added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import thinkq
from conftest import paper_document, write_document
from golden_compare import same_data, same_text
from thinkq import cli
from thinkq.batching import UNLIMITED_SLOTS

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich output as on a wide pipe, whatever the environment of the test run says."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "120")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="thinkq")


@pytest.mark.parametrize(
    ("golden", "args"),
    [
        ("solve_paper.txt", []),
        ("solve_paper.json", ["--json"]),
        ("solve_paper_rate1.txt", ["--rate", "1"]),
        ("solve_paper_rate1.json", ["--json", "--rate", "1"]),
    ],
)
def test_output_without_a_server_table_is_unchanged(golden: str, args: list[str]) -> None:
    result = run("solve", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert same_text(result.stdout, (GOLDEN / golden).read_text(encoding="utf-8"))


# --------------------------------------------------------------------- with a server table

SERVER_KEYS = {
    "slots",
    "tau0",
    "tau1",
    "capacity",
    "utilization",
    "mean_batch",
    "step_time",
    "slowdown",
    "waiting_time",
}
PK_ONLY = (
    "gap_bound",
    "contraction_bound",
    "step_bound",
    "lipschitz_bound",
    "bounds_region",
    "rho_max",
    "rho_bar",
)


def _served(tmp_path: Path, slots: int, *, rate: float = 1.0) -> Path:
    doc = paper_document()
    doc["rate"] = rate
    doc["server"] = {"slots": slots, "tau0": 0.02, "tau1": 0.002}
    return write_document(tmp_path / f"served-{slots}.json", doc)


def _json(*args: str | Path) -> dict[str, Any]:
    result = run("solve", "--json", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_json_on_a_batched_server_has_the_server_object(tmp_path: Path) -> None:
    path = _served(tmp_path, 8)
    data = _json(path)
    golden = json.loads((GOLDEN / "solve_paper.json").read_text(encoding="utf-8"))
    assert set(data) == set(golden) | {"server"}
    assert set(data["solver"]) == set(golden["solver"])
    assert set(data["server"]) == SERVER_KEYS
    assert data["solver"]["method"] == "scan+newton"
    assert data["solver"]["converged"] is True
    for key in PK_ONLY:
        assert data["solver"][key] is None, key
    assert data["lower_bound"] is None
    assert data["loss_bound"] is None
    result = thinkq.solve(thinkq.load_profile(path))
    assert result.server is not None
    assert data["server"] == pytest.approx(result.server.to_dict(), rel=1e-15)
    assert data["objective"] == result.objective
    assert [task["budget"] for task in data["tasks"]] == result.budgets.tolist()
    server = data["server"]
    assert (server["slots"], server["tau0"], server["tau1"]) == (8, 0.02, 0.002)
    assert server["utilization"] == pytest.approx(data["utilization"], rel=1e-12)
    assert server["waiting_time"] == pytest.approx(data["mean_waiting_time"], rel=1e-12)
    assert 1.0 < server["mean_batch"] < 8.0
    assert 0.022 < server["step_time"] < 0.036


def test_the_table_on_a_batched_server_shows_the_server(tmp_path: Path) -> None:
    result = run("solve", _served(tmp_path, 8))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    data = _json(_served(tmp_path, 8))
    for line in (
        "utilisation (rho / C(B))",
        "Server",
        "slots (B)                       8",
        "step time law tau(n) (s)        0.02 + 0.002 n",
        f"mean batch (in service)         {data['server']['mean_batch']:.4f}",
        f"step time (s per decode step)   {data['server']['step_time']:.4g}",
        f"capacity C(B) (solo-s per s)    {data['server']['capacity']:.4g}",
        "lower bound (41)                n/a (P-K only)",
        "gap bound on J                  n/a (P-K only)",
        "scan+newton",
    ):
        assert line in out, line


def test_one_slot_prints_todays_numbers_and_the_server(tmp_path: Path) -> None:
    data = _json(_served(tmp_path, 1))
    golden = json.loads((GOLDEN / "solve_paper_rate1.json").read_text(encoding="utf-8"))
    server = data.pop("server")
    assert same_data(data, golden)
    assert server["slots"] == 1
    assert server["mean_batch"] == pytest.approx(golden["utilization"], rel=1e-15)
    assert server["step_time"] == pytest.approx(0.022)
    table = run("solve", _served(tmp_path, 1)).stdout
    today = (GOLDEN / "solve_paper_rate1.txt").read_text(encoding="utf-8")
    # the same rows as without the table (but the profile's name), then the server
    rows, expected = table.splitlines(), today.splitlines()
    assert same_text("\n".join(rows[1 : len(expected)]), "\n".join(expected[1:]))
    assert rows[len(expected)].startswith("Server")
    assert "unlimited" not in table
    assert "slots (B)                       1" in table


@pytest.mark.parametrize("method", ["fixed-point", "gradient"])
def test_the_papers_iterations_on_a_batched_server_are_one_error_line(
    tmp_path: Path, method: str
) -> None:
    result = run("solve", _served(tmp_path, 8), "--method", method)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: option --method: ")
    assert "8 slots" in lines[0]
    assert "Traceback" not in result.output


def test_unlimited_slots_are_named(tmp_path: Path) -> None:
    doc = paper_document()
    doc["server"] = {"slots": UNLIMITED_SLOTS, "tau0": 1.0, "tau1": 0.0}
    path = write_document(tmp_path / "unlimited.json", doc)
    result = run("solve", path)
    assert result.exit_code == 0, result.stderr
    assert "1,000,000 (unlimited)" in result.stdout
