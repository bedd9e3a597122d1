"""``thinkq profile`` against a fake server: what it says when the server dies mid-run."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fakes import BASE_URL, MODEL, Body, FakeServer, Reply
from thinkq import cli
from thinkq.cli import _profile
from thinkq.measure.server import Server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A benchmarks folder with three GSM8K items."""
    folder = tmp_path / "benchmarks" / "gsm8k"
    folder.mkdir(parents=True)
    lines = [
        json.dumps({"question": f"What is {k} + {k}?", "answer": f"#### {2 * k}"})
        for k in range(1, 4)
    ]
    (folder / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder.parent


def measure(
    fake: FakeServer, data_dir: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *more: str
) -> Result:
    """``thinkq profile`` of 3 items at budgets 0,4 in 1 run (``more`` overrides these)."""
    server = functools.partial(Server, transport=fake.transport())
    monkeypatch.setattr(_profile, "Server", server)
    args = ["profile", "--base-url", BASE_URL, "--model", MODEL, "--dataset", "gsm8k"]
    args += ["--budgets", "0,4", "--samples", "3", "--runs", "1", "--retries", "0"]
    args += ["--data-dir", str(data_dir), "-o", str(out), "--template", "chatml", *more]
    return CliRunner().invoke(cli.app, args, prog_name="thinkq")


def test_a_server_that_dies_mid_run_is_a_failure_not_a_bad_base_url(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[Body] = []
    fake = FakeServer()
    healthy = FakeServer()._completions

    def dies_after_two(body: Body) -> Reply:
        reply = healthy(body)
        if "logit_bias" not in body:  # phase 2: a query is answered
            answered.append(body)
            if len(answered) == 2:  # from now on every connection is refused
                fake.down = True
        return reply

    fake.complete = dies_after_two
    out = tmp_path / "records.jsonl"
    result = measure(fake, data_dir, out, monkeypatch)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # the bar leaves ""
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: the server stopped answering during the run:")
    assert "connection refused" in line
    assert "--base-url" not in line
    assert str(out) in line  # where the finished queries are
    assert len(out.read_text("utf-8").splitlines()) == 2


def test_a_server_down_from_the_start_names_base_url_and_writes_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeServer(down=True)
    out = tmp_path / "records.jsonl"
    result = measure(fake, data_dir, out, monkeypatch)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: option --base-url: cannot connect to")
    assert not out.exists()


def test_a_finished_run_confirms_its_file_on_stderr(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    result = measure(FakeServer(), data_dir, out, monkeypatch)
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"wrote {out}"]
    assert len(out.read_text("utf-8").splitlines()) == 6
