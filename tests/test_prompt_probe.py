"""The prompt probe that closes the server phase (thinkq.measure.prompt_probe) against a
fake llama.cpp whose replies time new prompts and held ones apart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from fakes import MODEL, FakeServer
from test_cli_profile import data_dir, measure
from thinkq.errors import ServerUnreachableError
from thinkq.measure.forcing import Forcer
from thinkq.measure.items import Item
from thinkq.measure.level_plan import LevelQuery, plan_levels
from thinkq.measure.levels import run_levels
from thinkq.measure.prompt_probe import PHASE, Probed, probe_items, run_probe
from thinkq.measure.templates import TEMPLATES
from thinkq.records import read_records

__all__ = ["data_dir"]  # the fixture, used here by name

ITEMS = [Item("gsm8k", f"q{i}", f"What is 6 x {i}? ", str(6 * i)) for i in range(5)]
ITEMS += [Item("arc_challenge", f"a{i}", f"Pick A or B, {i}. ", "A", ("A", "B")) for i in range(3)]
NEW, HELD = 350.0, 9.0


def lines(path: Path, phase: str = PHASE) -> list[dict[str, Any]]:
    rows = [json.loads(text) for text in path.read_text("utf-8").splitlines()]
    return [r for r in rows if r.get("phase") == phase]


def queries(per_level: int = 16) -> list[LevelQuery]:
    return plan_levels(ITEMS, [8], slots=2, per_level=per_level, seed=0)


def probe(fake: FakeServer, out: Path, planned: list[LevelQuery], **options: Any) -> Probed:
    async def go() -> Probed:
        async with fake.server() as server:
            forcer = Forcer(server, template=TEMPLATES["chatml"])
            return await run_probe(forcer, planned, out, backoff=0.0, **options)

    return asyncio.run(go())


def levels(fake: FakeServer, out: Path, planned: list[LevelQuery]) -> Any:
    async def go() -> Any:
        async with fake.server() as server:
            forcer = Forcer(server, template=TEMPLATES["chatml"])
            return await run_levels(forcer, server, planned, out, slots=2, backoff=0.0)

    return asyncio.run(go())


def test_the_probed_items_are_the_phases_distinct_items_capped_per_task() -> None:
    planned = queries()
    items = probe_items(planned)
    keys = [(i.dataset, i.item_id) for i in items]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(q.query.item.dataset, q.query.item.item_id) for q in planned}
    assert [i.item_id for i in probe_items(planned, per_task=2) if i.dataset == "gsm8k"] == [
        i.item_id for i in items if i.dataset == "gsm8k"
    ][:2]


def test_the_probe_times_each_item_new_then_held_and_resumes(tmp_path: Path) -> None:
    fake = FakeServer(family="llama.cpp", prompt_ms=(NEW, HELD))
    out = tmp_path / "r.server.jsonl"
    planned = queries()
    levels(fake, out, planned)  # the server phase first, as thinkq profile runs it
    fake.calls.clear()
    probed = probe(fake, out, planned)
    items = probe_items(planned)
    assert probed.timed
    assert (probed.tally.answered, probed.tally.failed) == (len(items), 0)
    rows = lines(out)
    assert [(r["task"], r["item_id"]) for r in rows] == [(i.dataset, i.item_id) for i in items]
    for row in rows:
        assert (row["new_ms"], row["held_ms"], row["held_n"]) == (NEW, HELD, 1)
        assert row["model"] == MODEL
        assert row["error"] is None
        assert row["tag"].startswith("[thinkq probe ")
    assert len({r["tag"] for r in rows}) == len(rows)  # a tag of its own per item
    bodies = fake.bodies("/v1/completions")
    assert len(bodies) == 2 * len(items)
    pairs = zip(bodies[::2], bodies[1::2], strict=True)
    for (new, held), row, item in zip(pairs, rows, items, strict=True):
        messages = [{"role": "user", "content": f"{row['tag']} {item.prompt}"}]
        assert new["prompt"] == held["prompt"]  # the same prompt: new, then held
        chatml = TEMPLATES["chatml"]  # rendered as the forced requests render it
        assert new["prompt"] == chatml.render(messages) + chatml.thinking.open
        assert (new["max_tokens"], new["temperature"]) == (1, 0)
        assert row["new_n"] == len(new["prompt"])
    # the server phase's lines are untouched, and its resume skips the probe's lines
    assert len(lines(out, "server")) == len(planned)
    assert levels(fake, out, planned).skipped == len(planned)
    # a probe resumed: the last item lost, one failed: both are asked again, with new tags
    text = out.read_text("utf-8").splitlines()
    failed = json.loads(text[-2]) | {"new_ms": None, "held_ms": None, "error": "server: HTTP 500"}
    out.write_text("\n".join([*text[:-2], json.dumps(failed)]) + "\n", "utf-8")
    again = probe(fake, out, planned)
    assert (again.tally.skipped, again.tally.answered) == (len(items) - 2, 2)
    after = lines(out)
    assert [(r["task"], r["item_id"]) for r in after[-2:]] == [(r["task"], r["item_id"])
                                                               for r in rows[-2:]]  # fmt: skip
    assert all(r["error"] is None and r["new_ms"] == NEW for r in after)
    assert {r["tag"] for r in after[-2:]}.isdisjoint(r["tag"] for r in rows)
    assert read_records([out]).prompts[-1].held_ms == HELD
    done = probe(fake, out, planned)
    assert (done.tally.skipped, done.tally.answered) == (len(items), 0)


def test_a_server_without_timings_gets_no_probe_lines(tmp_path: Path) -> None:
    fake = FakeServer(family="llama.cpp")  # no prompt_ms: no timings, as vLLM
    out = tmp_path / "r.server.jsonl"
    probed = probe(fake, out, queries())
    assert not probed.timed
    assert probed.tally.answered == probed.tally.failed == 0
    assert not out.exists() or not out.read_text("utf-8")
    assert len(fake.bodies("/v1/completions")) == 2  # one item asked, then no more


def test_a_failed_probe_is_its_items_error_and_an_unreachable_server_stops_it(
    tmp_path: Path,
) -> None:
    fake = FakeServer(family="llama.cpp", prompt_ms=(NEW, HELD))
    fake.fail_on(1, status=400)  # not transient: the item's error
    out = tmp_path / "r.server.jsonl"
    probed = probe(fake, out, queries(), retries=0)
    assert probed.tally.failed == 1
    first = lines(out)[0]
    assert first["error"].startswith("server: HTTP 400")
    assert first["new_ms"] is None
    fake.down = True
    with pytest.raises(ServerUnreachableError):
        probe(fake, tmp_path / "other.server.jsonl", queries())


def test_thinkq_profile_with_slots_probes_prompts_and_says_so_without_timings(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeServer(family="llama-cpp-python", prompt_ms=(NEW, HELD))
    out = tmp_path / "records.jsonl"
    more = ("--slots", "2", "--server-queries", "4")
    result = measure(fake, data_dir, out, monkeypatch, *more)
    assert result.exit_code == 0, result.output
    probes = lines(tmp_path / "records.server.jsonl")
    assert len(probes) == 3  # the three items of the server phase
    assert "prompt probe: 3 items; a new prompt 350 ms" in " ".join(result.output.split())
    plain = measure(FakeServer(family="llama-cpp-python"), data_dir, tmp_path / "p.jsonl",
                    monkeypatch, *more)  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert "the server's replies carry no timings" in plain.stderr
    assert not lines(tmp_path / "p.server.jsonl")
