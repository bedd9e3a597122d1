"""The measurement grid (thinkq.measure.runner) against a fake server: plan, resume, failures."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from fakes import MODEL, FakeServer
from thinkq.errors import RecordError, ServerError
from thinkq.measure.forcing import Forcer
from thinkq.measure.items import Item
from thinkq.measure.runner import Query, finished, plan, run
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.records import read_records

ITEMS = [Item("gsm8k", f"q{i}", f"What is 6 x 7? ({i})", "42") for i in range(4)] + [
    Item("arc_challenge", f"a{i}", f"Pick one ({i})\nA) x\nB) y", "B", ("A", "B")) for i in range(3)
]
BUDGETS = [0, 8, 32]


def fake_llm(**hooks: Any) -> FakeServer:
    """A fake llama-cpp-python server (its tokenizer finds ChatML's end tokens)."""
    return FakeServer(family="llama-cpp-python", **hooks)


def measure(fake: FakeServer, out: Path, queries: list[Query], **options: Any) -> Any:
    async def go() -> Any:
        async with fake.server() as server:
            forcer = Forcer(server, template=TEMPLATES["chatml"])
            return await run(forcer, queries, out, model=MODEL, backoff=0.0, **options)

    return asyncio.run(go())


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def keys(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["task"], r["item_id"], r["budget"], r["run"]) for r in rows]


def test_plan_covers_the_grid_once_in_a_seeded_order() -> None:
    grid = plan(ITEMS, BUDGETS, 2, seed=5)
    assert len(grid) == len(ITEMS) * len(BUDGETS) * 2
    assert len({q.key for q in grid}) == len(grid)
    assert [q.key for q in plan(ITEMS, BUDGETS, 2, seed=5)] == [q.key for q in grid]
    assert [q.key for q in plan(ITEMS, BUDGETS, 2, seed=6)] != [q.key for q in grid]
    ordered = [(q.item.dataset, q.item.item_id, q.budget, q.run) for q in grid]
    assert ordered != sorted(ordered)  # shuffled: budgets are not measured in blocks


def test_query_seeds_are_fixed_and_differ() -> None:
    first, second = plan(ITEMS[:1], [0, 8], 1)
    assert first.seed(0) == Query(first.item, first.budget, first.run).seed(0)
    assert first.seed(0) != second.seed(0)
    assert first.seed(0) != first.seed(1)
    assert 0 <= first.seed(0) < 2**31


def test_run_writes_one_graded_record_per_query(tmp_path: Path) -> None:
    fake, out = fake_llm(), tmp_path / "r.jsonl"
    queries = plan(ITEMS, BUDGETS, 1)
    tally = measure(fake, out, queries)
    rows = lines(out)
    assert (tally.answered, tally.failed, tally.skipped) == (len(queries), 0, 0)
    assert sorted(keys(rows)) == sorted(q.key for q in queries)
    assert all(r["thinking_tokens"] == r["budget"] for r in rows)
    assert all(r["error"] is None and r["model"] == MODEL for r in rows)
    gsm8k = [r for r in rows if r["task"] == "gsm8k"]
    assert all(r["correct"] and r["extracted"] == "42" for r in gsm8k)  # "The answer is 42"
    assert not any(r["correct"] for r in rows if r["task"] == "arc_challenge")
    assert len(read_records([out]).records) == len(queries)  # the fit format


def test_a_stopped_run_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    queries = plan(ITEMS, BUDGETS, 2, seed=1)
    measure(fake_llm(), out, queries[:9])
    with out.open("ab") as stream:  # a crash in the middle of writing a line
        stream.write(b'{"task": "gsm8k", "item_id": "q1", "bud')
    tally = measure(fake_llm(), out, queries)
    rows = lines(out)
    assert tally.skipped == 9
    assert tally.answered == len(queries) - 9
    assert sorted(keys(rows)) == sorted(q.key for q in queries)
    assert measure(fake_llm(), out, queries).answered == 0  # nothing left to do


def test_failed_queries_are_recorded_then_retried_on_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    queries = plan(ITEMS[:2], [8], 1)
    fake = fake_llm()
    for number in range(1, 20):  # every attempt of the first query fails
        fake.fail_on(number, 503)
    tally = measure(fake, out, queries, retries=2, concurrency=1)
    rows = lines(out)
    assert tally.failed == 2
    assert all("503" in r["error"] for r in rows)
    assert len(fake.bodies("/v1/completions")) == 2 * 3  # each query: one try and two retries
    with pytest.raises(RecordError, match="all 2 records are failed queries"):
        read_records([out])
    tally = measure(fake_llm(), out, queries)
    assert tally.answered == 2
    assert tally.skipped == 0
    assert sorted(keys(lines(out))) == sorted(q.key for q in queries)
    assert all(r["error"] is None for r in lines(out))


def test_a_transient_failure_is_retried_and_then_succeeds(tmp_path: Path) -> None:
    fake, out = fake_llm(), tmp_path / "r.jsonl"
    fake.fail_on(1, 502)
    tally = measure(fake, out, plan(ITEMS[:1], [8], 1), retries=1)
    assert tally.answered == 1
    assert tally.failed == 0


def test_thinking_short_of_its_budget_is_an_error_record(tmp_path: Path) -> None:
    fake, out = fake_llm(short_by=3), tmp_path / "r.jsonl"
    measure(fake, out, plan(ITEMS[:1], [0, 16], 1))
    rows = {r["budget"]: r for r in lines(out)}
    assert rows[0]["error"] is None  # no thinking phase at budget 0
    assert "13 of 16" in rows[16]["error"]
    assert rows[16]["correct"] is False


def test_an_unreachable_server_stops_the_run(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"

    async def go() -> None:
        async with Server("http://127.0.0.1:9/v1", "m", timeout=2) as server:
            forcer = Forcer(server, template=TEMPLATES["chatml"], suppress_ids=[2])
            await run(forcer, plan(ITEMS[:1], [8], 1), out, model="m", retries=0)

    with pytest.raises(ServerError) as caught:
        asyncio.run(go())
    assert caught.value.field == "base_url"
    assert not out.exists()


def test_finished_refuses_foreign_lines_and_other_models(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"hello": 1}\n')
    with pytest.raises(RecordError, match="not a record of thinkq profile"):
        finished(out, model="fake")
    out.write_text('{"task": "gsm8k", "item_id": "q0", "budget": 0, "run": 0, "model": "x"}\n')
    with pytest.raises(RecordError, match="records of 'x', not 'fake'"):
        finished(out, model="fake")
    assert finished(tmp_path / "absent.jsonl", model="fake") == set()


def test_concurrent_queries_all_land_once(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    queries = plan(ITEMS, BUDGETS, 2)
    tally = measure(fake_llm(), out, queries, concurrency=4)
    assert tally.answered == len(queries)
    rows = lines(out)
    assert sorted(keys(rows)) == sorted(q.key for q in queries)
    assert {r["concurrency"] for r in rows} == {4}


def test_plan_avoids_asking_the_same_item_twice_in_a_row() -> None:
    for seed in range(20):
        grid = plan(ITEMS, BUDGETS, 3, seed=seed)
        pairs = itertools.pairwise(grid)
        assert all(a.item is not b.item for a, b in pairs)
    single = plan(ITEMS[:1], BUDGETS, 1)  # one item: nothing to interleave, all kept
    assert len(single) == len(BUDGETS)
