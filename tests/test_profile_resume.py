"""``thinkq profile`` resumes only the run it started: settings beside the records, --extend.

Against the fake server of :mod:`fakes`, through the CLI: a resume with other budgets,
seed or template is one error line (exit code 2) and leaves the file as it was;
``--extend`` adds budgets and runs; a full disk is one error line (exit code 1) and the
records written until then stay a valid file that the same command completes.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeServer
from test_cli_profile import data_dir, measure
from thinkq.measure import journal
from thinkq.measure.settings import read_settings, settings_path
from thinkq.records import read_records

__all__ = ["data_dir"]  # the fixture, used by name


def grid(out: Path) -> list[tuple[Any, ...]]:
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    return sorted((r["item_id"], r["budget"], r["run"]) for r in rows)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("change", "option"),
    [
        (["--budgets", "0,4,8"], "--budgets"),
        (["--runs", "2"], "--runs"),
        (["--seed", "1"], "--seed"),
        (["--template", "qwen3"], "--template"),
        (["--temperature", "0.7"], "--temperature"),
        (["--mode", "cap"], "--mode"),
        (["--samples", "2"], "--samples"),
        (["--concurrency", "2"], "--concurrency"),
    ],
)
def test_resuming_with_other_settings_is_one_error_naming_the_option(
    change: list[str], option: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    assert measure(FakeServer(), data_dir, out, monkeypatch).exit_code == 0
    before = out.read_bytes()
    fake = FakeServer()
    result = measure(fake, data_dir, out, monkeypatch, *change)
    assert result.exit_code == 2, result.output
    [line] = errors(result.stderr)
    assert line.startswith(f"error: option {option}: {out} was measured with {option} "), line
    assert ("--extend" in line) == (option in ("--budgets", "--runs"))
    assert out.read_bytes() == before
    assert fake.calls == []  # refused before the server is asked anything


def test_extend_adds_budgets_and_runs_to_the_same_run(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    assert measure(FakeServer(), data_dir, out, monkeypatch).exit_code == 0
    first = out.read_text("utf-8")
    result = measure(FakeServer(), data_dir, out, monkeypatch, "--budgets", "8", "--extend")
    assert result.exit_code == 0, result.output
    assert out.read_text("utf-8").startswith(first)  # appended, nothing redone
    ids = sorted({i for i, _, _ in grid(out)})
    assert len(ids) == 3
    assert grid(out) == sorted((i, b, 0) for i in ids for b in (0, 4, 8))
    settings = read_settings(out)
    assert settings is not None
    assert settings.budgets == (0, 4, 8)
    result = measure(FakeServer(), data_dir, out, monkeypatch, "--runs", "2", "--extend")
    assert result.exit_code == 0, result.output
    assert grid(out) == sorted((i, b, r) for i in ids for b in (0, 4, 8) for r in (0, 1))
    # the extended run is now the run: resuming it as it is needs no --extend
    again = measure(FakeServer(), data_dir, out, monkeypatch, "--budgets", "0,4,8", "--runs", "2")
    assert again.exit_code == 0, again.output


def test_extend_changes_budgets_and_runs_only(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    assert measure(FakeServer(), data_dir, out, monkeypatch).exit_code == 0
    before = out.read_bytes()
    result = measure(FakeServer(), data_dir, out, monkeypatch, "--extend", "--seed", "1")
    assert result.exit_code == 2, result.output
    [line] = errors(result.stderr)
    assert line.startswith(f"error: option --seed: {out} was measured with --seed 0, not 1")
    assert out.read_bytes() == before


def test_the_settings_are_written_beside_the_records_after_the_checks(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    down = measure(FakeServer(down=True), data_dir, out, monkeypatch)
    assert down.exit_code == 1
    assert not settings_path(out).exists()  # a failed preflight writes nothing
    assert measure(FakeServer(), data_dir, out, monkeypatch).exit_code == 0
    written = json.loads(settings_path(out).read_text("utf-8"))
    assert written["format"] == "thinkq-run/1"
    assert written["settings"]["budgets"] == [0, 4]
    assert written["settings"]["template"] == "chatml"
    assert settings_path(out) == tmp_path / "records.run.json"


def test_an_older_file_without_settings_is_checked_against_the_grid(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    assert measure(FakeServer(), data_dir, out, monkeypatch, "--budgets", "0,4,8").exit_code == 0
    settings_path(out).unlink()
    before = out.read_bytes()
    result = measure(FakeServer(), data_dir, out, monkeypatch)
    assert result.exit_code == 2, result.output
    [error] = errors(result.stderr)
    assert error.startswith(f"error: option -o: {out}:")
    assert "budget: budget 8 is not among this run's --budgets" in error
    assert out.read_bytes() == before
    assert not settings_path(out).exists()
    # the run it was: resumed, with a warning, and the settings are written now
    result = measure(FakeServer(), data_dir, out, monkeypatch, "--budgets", "0,4,8")
    assert result.exit_code == 0, result.output
    assert errors(result.stderr)[-1].startswith(f"warning: {out} had no run settings")
    assert out.read_bytes() == before
    settings = read_settings(out)
    assert settings is not None
    assert settings.budgets == (0, 4, 8)


def test_a_malformed_settings_file_is_one_error(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    assert measure(FakeServer(), data_dir, out, monkeypatch).exit_code == 0
    settings_path(out).write_text('{"format": "thinkq-run/1", "settings": {"runs": 1}}')
    result = measure(FakeServer(), data_dir, out, monkeypatch)
    assert result.exit_code == 2, result.output
    [line] = errors(result.stderr)
    assert line.startswith(f"error: option -o: {settings_path(out)}: setting ")


class FullDisk:
    """A file that takes ``room`` bytes, part of the next write, then raises ENOSPC."""

    def __init__(self, path: Path, room: int) -> None:
        self.file = path.open("ab", buffering=0)
        self.room = room

    def write(self, data: memoryview) -> int:
        if len(data) > self.room:
            self.file.write(data[: self.room // 2 + 1])  # a partial line reaches the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data) or 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


@pytest.mark.parametrize("concurrency", ["1", "3"])
def test_a_full_disk_is_one_error_and_the_records_stay_valid(
    concurrency: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"
    monkeypatch.setattr(journal, "open_append", lambda path: FullDisk(path, room=1500))
    more = ("--concurrency", concurrency)
    result = measure(FakeServer(), data_dir, out, monkeypatch, *more)
    assert result.exit_code == 1, result.output
    [line] = errors(result.stderr)
    assert line.startswith(f"error: option -o: {out}: cannot write: No space left on device;")
    assert "Traceback" not in result.output
    text = out.read_text("utf-8")
    assert text.endswith("\n")
    kept = len(text.splitlines())
    assert 0 < kept < 6
    assert len(read_records([out]).records) == kept  # what is there reads as records
    monkeypatch.undo()  # room again: the same command completes the grid once
    result = measure(FakeServer(), data_dir, out, monkeypatch, *more)
    assert result.exit_code == 0, result.output
    assert len(set(grid(out))) == len(grid(out)) == 6


def test_an_unwritable_file_is_one_error(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "records.jsonl"

    def refuse(path: Path) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(journal, "open_append", refuse)
    result = measure(FakeServer(), data_dir, out, monkeypatch)
    assert result.exit_code == 1, result.output
    [line] = errors(result.stderr)
    assert line.startswith(f"error: option -o: {out}: cannot write: Permission denied;")
