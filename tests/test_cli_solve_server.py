"""``thinkq solve`` with and without a ``[server]`` table.

Without one, the output must stay what it was before the batched server existed: the
files under ``tests/golden/`` were captured from ``thinkq solve`` (table and ``--json``,
the paper's profile and ``--rate 1``) before the solver learned about servers, and are
compared byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from thinkq import cli

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
    assert result.stdout == (GOLDEN / golden).read_text(encoding="utf-8")
