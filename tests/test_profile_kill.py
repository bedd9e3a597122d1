"""Acceptance: ``thinkq profile`` killed (SIGKILL) at random moments and resumed still
ends with exactly the grid, each query once; resumed with other budgets it refuses
unless told to ``--extend``. The command runs as a subprocess against the fake server
of :mod:`fakes`, served on a loopback port by :mod:`loopback`."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from fakes import MODEL, FakeServer
from loopback import serving
from test_cli_profile import data_dir
from thinkq.records import read_records

__all__ = ["data_dir"]  # the fixture, used by name

BUDGETS = (0, 4, 8, 16)
RUNS = 3


def command(url: str, data_dir: Path, out: Path, *more: str) -> list[str]:
    args = ["profile", "--base-url", url, "--model", MODEL, "--dataset", "gsm8k"]
    args += ["--budgets", ",".join(map(str, BUDGETS)), "--samples", "3", "--runs", str(RUNS)]
    args += ["--data-dir", str(data_dir), "-o", str(out), "--template", "chatml"]
    return [sys.executable, "-m", "thinkq", *args, "--retries", "0", *more]


def count(out: Path) -> int:
    return out.read_bytes().count(b"\n") if out.exists() else 0


def kill_after_progress(argv: list[str], out: Path, rng: random.Random) -> int:
    """Start ``argv``, wait until it has written a record more, kill it a moment later."""
    before = count(out)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while count(out) <= before and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.15))  # mid-query, mid-write or between lines
    process.send_signal(signal.SIGKILL)
    return process.wait()


def test_killed_at_random_moments_and_resumed_it_ends_with_the_grid_once(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "records.jsonl"
    rng = random.Random(13)
    total = 3 * len(BUDGETS) * RUNS
    with serving(FakeServer(delay=0.02)) as url:
        argv = command(url, data_dir, out)
        kills = 0
        for _ in range(6):
            if kill_after_progress(argv, out, rng) == -signal.SIGKILL:
                kills += 1
        assert kills >= 3  # most runs were killed mid-grid, not after finishing
        assert count(out) < total
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    keys = [(r["item_id"], r["budget"], r["run"]) for r in rows]
    items = {r["item_id"] for r in rows}
    assert len(items) == 3
    assert sorted(keys) == sorted((i, b, r) for i in items for b in BUDGETS for r in range(RUNS))
    assert all(r["error"] is None for r in rows)
    assert len(read_records([out]).records) == total


def test_resumed_with_other_budgets_it_refuses_unless_told_to_extend(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "records.jsonl"
    rng = random.Random(7)
    with serving(FakeServer(delay=0.02)) as url:
        kill_after_progress(command(url, data_dir, out), out, rng)
        before = out.read_bytes()
        other = command(url, data_dir, out, "--budgets", "0,4,32")
        refused = subprocess.run(other, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2
        [line] = refused.stderr.splitlines()
        assert line.startswith("error: option --budgets: ")
        assert "--extend" in line
        assert out.read_bytes() == before
        extended = subprocess.run([*other, "--extend"], capture_output=True, text=True)
        assert extended.returncode == 0, extended.stderr
    keys = sorted(
        (r["item_id"], r["budget"], r["run"])
        for r in map(json.loads, out.read_text("utf-8").splitlines())
    )
    items = {k[0] for k in keys}
    budgets = (*BUDGETS, 32)
    assert keys == sorted((i, b, r) for i in items for b in budgets for r in range(RUNS))
