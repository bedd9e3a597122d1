"""The server phase of ``thinkq profile --slots`` against a fake server: levels, batches,
resume, the /slots witness and the command's options."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes import MODEL, FakeServer
from test_cli_profile import data_dir, measure
from thinkq.errors import RecordError
from thinkq.measure.forcing import Forcer
from thinkq.measure.inflight import InFlight, SlotWatch
from thinkq.measure.items import Item
from thinkq.measure.level_plan import checked_levels, concurrency_levels, plan_levels, rounds
from thinkq.measure.levels import run_levels, server_records_path
from thinkq.measure.templates import TEMPLATES
from thinkq.records import read_records

__all__ = ["data_dir"]  # the fixture, used here by name

ITEMS = [Item("gsm8k", f"q{i}", f"What is 6 x {i}? ", str(6 * i)) for i in range(5)]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_levels_double_up_to_the_slots() -> None:
    assert concurrency_levels(1) == (1,)
    assert concurrency_levels(4) == (1, 2, 4)
    assert concurrency_levels(6) == (1, 2, 4, 6)
    with pytest.raises(ValueError, match=r"^slots: "):
        concurrency_levels(0)


def test_chosen_levels_are_sorted_and_checked() -> None:
    assert checked_levels([4, 1, 3, 2], 4) == (1, 2, 3, 4)
    assert checked_levels([2, 2, 3], 3) == (2, 3)
    for levels, why in (([0, 1], "0 is outside 1..4"), ([1, 5], "5 is outside 1..4"),
                        ([2, 2], "need at least two")):  # fmt: skip
        with pytest.raises(ValueError, match=f"^levels: {why}"):
            checked_levels(levels, 4)
    planned = plan_levels(ITEMS, [8], slots=4, per_level=4, seed=2, levels=[3, 1])
    assert sorted({q.concurrency for q in planned}) == [1, 3]


def test_every_level_asks_the_same_queries_and_no_budget_zero() -> None:
    planned = plan_levels(ITEMS, [0, 8, 16], slots=4, per_level=12, seed=2)
    by_level: dict[int, list[tuple[Any, ...]]] = {}
    for q in planned:
        by_level.setdefault(q.concurrency, []).append(q.query.key)
    assert sorted(by_level) == [1, 2, 4]
    assert all(len(keys) == 12 for keys in by_level.values())
    assert by_level[1] == by_level[2] == by_level[4]
    assert {key[2] for key in by_level[1]} == {8, 16}
    assert len(set(by_level[1])) == 12  # 10 cells, then a second run of two
    with pytest.raises(ValueError, match=r"^budgets: "):
        plan_levels(ITEMS, [0], slots=2, per_level=4, seed=0)


def test_levels_are_interleaved_in_rounds_of_full_blocks() -> None:
    assert rounds(12, 4) == 1  # a block of 12 at 4 slots: one round
    assert rounds(32, 4) == 2
    assert rounds(1000, 4) == 4
    planned = plan_levels(ITEMS, [8, 16], slots=2, per_level=16, seed=2)
    order = [n for n, _ in itertools.groupby(q.concurrency for q in planned)]
    assert order == [1, 2, 1, 2]  # drifts of the machine spread over both levels
    first = [q.query.key for q in planned[:8]]
    assert first == [q.query.key for q in planned[8:16]]  # the same block at each level


def test_in_flight_averages_the_count_over_a_window() -> None:
    count = InFlight()
    start = time.perf_counter()
    count.enter()
    time.sleep(0.05)
    middle = time.perf_counter()
    count.enter()
    time.sleep(0.05)
    count.leave()
    end = time.perf_counter()
    mean = count.mean(start, end)
    assert mean is not None
    assert 1.3 < mean < 1.7
    assert count.mean(middle, middle) is None
    assert count.mean(start, middle) == pytest.approx(1.0, abs=0.05)


def _run(fake: FakeServer, out: Path, queries: list[Any], slots: int) -> Any:
    async def go() -> Any:
        async with fake.server() as server:
            forcer = Forcer(server, template=TEMPLATES["chatml"])
            return await run_levels(forcer, server, queries, out, slots=slots, backoff=0.0)

    return asyncio.run(go())


def test_the_closed_loop_keeps_n_queries_in_service_and_resumes(tmp_path: Path) -> None:
    fake = FakeServer(family="llama-cpp-python", delay=0.04)
    out = server_records_path(tmp_path / "r.jsonl")
    assert out.name == "r.server.jsonl"
    queries = plan_levels(ITEMS, [8], slots=4, per_level=8, seed=0)
    first = _run(fake, out, queries[:5], slots=4)  # stopped after 5 queries of level 1
    assert first.answered == 5
    with out.open("ab") as stream:  # a crash while writing a line
        stream.write(b'{"phase": "server", "task": "gs')
    tally = _run(fake, out, queries, slots=4)
    assert (tally.skipped, tally.answered, tally.failed) == (5, 19, 0)
    rows = lines(out)
    assert sorted((r["concurrency"], r["item_id"], r["run"]) for r in rows) == sorted(
        (q.concurrency, q.query.item.item_id, q.query.run) for q in queries
    )
    batch = {n: [r["batch"] for r in rows if r["concurrency"] == n] for n in (1, 2, 4)}
    assert all(b == pytest.approx(1.0, abs=0.05) for b in batch[1])
    assert sum(batch[4]) / len(batch[4]) > 2.5  # four in flight most of the time
    assert max(batch[2]) <= 2.0 + 1e-9
    # the fake has no /slots and no timings: the client's count and clock stand alone
    assert all(r["batch_slots"] is None and r["predicted_ms"] is None for r in rows)
    assert all(r["think_s"] > 0.03 and r["slots"] == 4 for r in rows)
    server = read_records([out]).server
    assert len(server) == 24
    assert all(r.step_s is not None for r in server)


def test_slot_watch_reads_the_servers_busy_slots() -> None:
    busy = [[True, False, True, False]]

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=[{"id": i, "is_processing": b} for i, b in enumerate(busy[0])]
        )

    async def go() -> tuple[float | None, int, bool]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
            start = time.perf_counter()
            async with SlotWatch(http, "http://llm.test:8000", every=0.01) as watch:
                await asyncio.sleep(0.1)
            mean, samples = watch.mean(start, time.perf_counter())
            return mean, samples, watch.available

    mean, samples, available = asyncio.run(go())
    assert available
    assert samples >= 3
    assert mean == 2.0

    async def missing() -> bool:
        transport = httpx.MockTransport(lambda request: httpx.Response(404))
        async with httpx.AsyncClient(transport=transport) as http:
            async with SlotWatch(http, "http://llm.test:8000", every=0.01) as watch:
                await asyncio.sleep(0.05)
            return watch.available

    assert asyncio.run(missing()) is False


def test_profile_with_slots_writes_both_phases(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeServer(family="llama-cpp-python", delay=0.01)
    out = tmp_path / "records.jsonl"
    more = ("--slots", "2", "--server-queries", "4")
    result = measure(fake, data_dir, out, monkeypatch, *more)
    assert result.exit_code == 0, result.output
    assert len(lines(out)) == 6  # the accuracy phase, unchanged
    server = tmp_path / "records.server.jsonl"
    rows = lines(server)
    assert sorted(r["concurrency"] for r in rows) == [1] * 4 + [2] * 4
    assert {r["budget"] for r in rows} == {4}
    assert (tmp_path / "records.server.run.json").is_file()
    assert "records.server.jsonl" in result.output
    again = measure(fake, data_dir, out, monkeypatch, *more)  # all done: nothing asked
    assert again.exit_code == 0
    assert len(lines(server)) == 8
    other = measure(fake, data_dir, out, monkeypatch, "--slots", "4", "--server-queries", "4")
    assert other.exit_code == 2
    assert other.stderr.startswith("error: option --slots: "), other.stderr
    only = measure(fake, data_dir, tmp_path / "o.jsonl", monkeypatch, "--server-only", *more)
    assert only.exit_code == 0, only.output
    assert not (tmp_path / "o.jsonl").exists()
    assert len(lines(tmp_path / "o.server.jsonl")) == 8
    chosen = ("--server-only", "--slots", "3", "--server-levels", "1,2,3", "--server-queries", "3")
    three = measure(fake, data_dir, tmp_path / "l.jsonl", monkeypatch, *chosen)
    assert three.exit_code == 0, three.output
    assert sorted({r["concurrency"] for r in lines(tmp_path / "l.server.jsonl")}) == [1, 2, 3]


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        (("--server-only",), "error: option --server-only: give --slots B"),
        (("--slots", "2", "--mode", "cap"), "error: option --slots: the server phase forces"),
        (("--slots", "2", "--budgets", "0"), "error: option --budgets: the server phase"),
        (("--server-levels", "1,2"), "error: option --server-levels: give --slots B too"),
        (("--slots", "2", "--server-levels", "1,3"), "error: option --server-levels: 3 is outside"),
        (("--slots", "2", "--server-levels", "2"), "error: option --server-levels: need at least"),
        (("--slots", "2", "--server-levels", "1,x"), "error: option --server-levels: expected"),
    ],
)
def test_server_phase_options_are_checked_first(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    more: tuple[str, ...],
    expected: str,
) -> None:
    out = tmp_path / "records.jsonl"
    result = measure(FakeServer(family="llama-cpp-python"), data_dir, out, monkeypatch, *more)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(expected), result.stderr
    assert not out.exists()
    assert not (tmp_path / "records.server.jsonl").exists()


def test_server_records_of_another_model_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.server.jsonl"
    out.write_text(json.dumps({"phase": "server", "task": "gsm8k", "item_id": "q0",
                               "budget": 8, "run": 0, "concurrency": 1, "model": "other"})
                   + "\n", "utf-8")  # fmt: skip
    queries = plan_levels(ITEMS, [8], slots=2, per_level=2, seed=0)
    with pytest.raises(RecordError, match="model: records of 'other', not"):
        _run(FakeServer(family="llama-cpp-python"), out, queries, slots=2)
    assert MODEL != "other"


def test_a_server_phase_where_every_query_fails_says_so_in_one_line(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeServer(family="llama-cpp-python", short_by=1)  # never stops for length
    out = tmp_path / "records.jsonl"
    more = ("--server-only", "--slots", "2", "--server-queries", "2")
    result = measure(fake, data_dir, out, monkeypatch, *more)
    assert result.exit_code == 1, result.output
    rows = lines(tmp_path / "records.server.jsonl")
    assert len(rows) == 4
    assert all(r["error"].startswith("forcing: thinking stopped at 3 of 4") for r in rows)
    assert result.stderr.strip().endswith("4 queries failed (their records say why); "
                                          "run the same command to try them again")  # fmt: skip
