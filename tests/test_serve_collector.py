"""The cyclic collector's passes between requests (thinkq.serve.collector)."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from thinkq.serve.collector import IdleCollector


class Node:
    other: object


def cycles(count: int) -> list[weakref.ref[Node]]:
    """``count`` objects each in a reference cycle with itself, unreachable at once."""
    refs = []
    for _ in range(count):
        node = Node()
        node.other = node
        refs.append(weakref.ref(node))
    return refs


def alive(refs: list[weakref.ref[Node]]) -> int:
    return sum(ref() is not None for ref in refs)


@pytest.fixture(autouse=True)
def automatic_collector() -> Iterator[None]:
    """Every test leaves the automatic collector on, with its thresholds."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.enable()


def test_counting_alone_leaves_the_automatic_collector_on() -> None:
    collector = IdleCollector()
    collector.enter()
    collector.enter()
    assert not collector.idle()
    collector.leave()
    collector.leave()
    assert collector.idle()
    assert gc.isenabled()
    collector.stop()  # never started: nothing to give back
    assert gc.isenabled()
    assert collector.passes == [0, 0, 0]


def test_no_pass_while_a_request_is_in_progress_then_one_when_it_leaves() -> None:
    async def run() -> None:
        collector = IdleCollector(period=10.0)  # the timer does not look during the test
        collector.start()
        assert not gc.isenabled()
        collector.enter()
        gc.collect()
        refs = cycles(3 * gc.get_threshold()[0])
        assert gc.get_count()[0] > gc.get_threshold()[0]
        for _ in range(5):
            await asyncio.sleep(0)
        assert alive(refs) == len(refs)
        assert collector.passes == [0, 0, 0]
        collector.leave()
        assert alive(refs) == len(refs)  # not inside the request's own code
        await asyncio.sleep(0)
        assert alive(refs) == 0
        assert sum(collector.passes) == 1
        collector.stop()
        assert gc.isenabled()

    asyncio.run(run())


def test_a_request_that_arrives_before_the_pass_runs_puts_it_off() -> None:
    async def run() -> None:
        collector = IdleCollector(period=10.0)
        collector.start()
        collector.enter()
        refs = cycles(3 * gc.get_threshold()[0])
        collector.leave()  # the pass is scheduled ...
        collector.enter()  # ... and a request arrives first
        await asyncio.sleep(0)
        assert alive(refs) == len(refs)
        assert collector.passes == [0, 0, 0]
        collector.leave()
        await asyncio.sleep(0)
        assert alive(refs) == 0
        assert sum(collector.passes) == 1
        collector.stop()

    asyncio.run(run())


def test_a_loop_never_idle_is_collected_at_the_ceiling() -> None:
    async def run() -> None:
        collector = IdleCollector(ceiling=4, period=0.01)
        collector.start()
        collector.enter()  # and never leaves
        gc.collect()
        threshold = gc.get_threshold()[0]
        below = cycles(threshold // 2)  # past the threshold, under the ceiling
        assert threshold < gc.get_count()[0] < 4 * threshold
        await asyncio.sleep(0.05)
        assert alive(below) == len(below)
        above = cycles(3 * threshold)
        await asyncio.sleep(0.05)
        assert alive(above) == 0
        assert alive(below) == 0
        assert sum(collector.passes) >= 1
        collector.stop()

    asyncio.run(run())


def test_the_timer_collects_garbage_made_while_idle() -> None:
    async def run() -> None:
        collector = IdleCollector(period=0.01)
        collector.start()
        refs = cycles(2 * gc.get_threshold()[0])  # no request: nobody leaves
        await asyncio.sleep(0.05)
        assert alive(refs) == 0
        collector.stop()

    asyncio.run(run())


def test_a_pass_takes_the_oldest_generation_past_its_threshold() -> None:
    collector = IdleCollector()
    gc.collect()  # every count 0
    for _ in range(gc.get_threshold()[1] + 1):
        gc.collect(0)  # each young pass counts one towards the middle generation
    assert collector.collect() == 1
    assert collector.collect() == 0
    assert collector.passes == [1, 1, 0]


def test_a_collector_turned_off_by_the_program_stays_off() -> None:
    async def run() -> None:
        gc.set_threshold(0)
        collector = IdleCollector()
        collector.start()
        assert collector.loop is None
        assert gc.isenabled()

    asyncio.run(run())


@pytest.mark.parametrize(("field", "value"), [("ceiling", 0.5), ("period", 0.0)])
def test_bad_settings_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        IdleCollector(**{field: value})


def test_quiet_waits_for_no_request_in_progress_or_its_patience() -> None:
    async def run() -> None:
        collector = IdleCollector()
        start = time.monotonic()
        await collector.quiet(patience=1.0)  # idle: at once
        assert time.monotonic() - start < 0.5
        collector.enter()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, collector.leave)
        start = time.monotonic()
        await collector.quiet(patience=5.0)
        waited = time.monotonic() - start
        assert 0.04 <= waited < 2.0  # until the request left
        collector.enter()  # and never leaves
        start = time.monotonic()
        await collector.quiet(patience=0.1)
        assert 0.09 <= time.monotonic() - start < 2.0  # no longer than its patience

    asyncio.run(run())


def test_the_gateway_counts_its_requests_in_one_place() -> None:
    from thinkq.serve.metrics import Metrics
    from thinkq.serve.queue import Records
    from thinkq.serve.request import Books

    records = Records(window=60.0, clock=time.monotonic)
    books = Books(("chat",), records=records, metrics=Metrics(("chat",), []), refit=None,
                  clock=time.monotonic, log_prompts=False)  # fmt: skip
    assert books.lines.idle is not None
    assert books.lines.idle()
    books.activity.enter()
    assert not books.lines.idle()


def test_the_timer_settles_the_books_only_while_no_request_is_in_progress() -> None:
    async def run() -> None:
        ran: list[str] = []
        collector = IdleCollector(period=0.01)
        collector.settles.append(lambda: ran.append("settle"))
        await asyncio.sleep(0.03)
        assert ran == []  # not started: counting alone
        collector.start()
        collector.enter()
        await asyncio.sleep(0.05)
        assert ran == []  # a request in progress the whole time
        collector.leave()
        assert ran == []  # not inside the request's own code
        await asyncio.sleep(0.05)
        assert len(ran) >= 2  # idle: at every look of the timer
        collector.stop()
        seen = len(ran)
        await asyncio.sleep(0.03)
        assert len(ran) == seen  # stopped

    asyncio.run(run())


def test_a_request_counts_in_the_metrics_once_the_loop_is_idle() -> None:
    from thinkq.measure.prompts import Cue
    from thinkq.serve.metrics import Metrics
    from thinkq.serve.queue import Records
    from thinkq.serve.request import Books, Job

    def served() -> float | None:
        return metrics.registry.get_sample_value(
            "thinkq_requests_total", {"task": "chat", "outcome": "ok"}
        )

    async def run() -> None:
        books.activity.start()
        books.activity.enter()
        job = Job(0, time.monotonic(), "completion", [], "hi", Cue("", 1, ()))
        books.finish(job, None, "ok")
        assert served() == 0.0  # held, off the request's path
        assert len(records) == 1  # a read sees it
        books.activity.leave()
        await asyncio.sleep(2 * books.activity.period)
        assert served() == 1.0  # counted once the loop was idle
        books.finish(job, None, "ok")
        assert b'outcome="ok",task="chat"} 2.0' in metrics.exposition()  # a scrape sees it
        books.activity.stop()

    records, metrics = Records(window=60.0, clock=time.monotonic), Metrics(("chat",), [])
    books = Books(("chat",), records=records, metrics=metrics, refit=None,
                  clock=time.monotonic, log_prompts=False)  # fmt: skip
    asyncio.run(run())


def test_the_books_held_are_bounded_without_an_idle_loop() -> None:
    from thinkq.serve.metrics import Metrics
    from thinkq.serve.records import HOLD, Record

    metrics = Metrics(("chat",), [])
    for _ in range(HOLD - 1):
        metrics.record(Record(0.0, 0.0, 0.1, "chat", 0, 0, "ok"))
    labels = {"task": "chat", "outcome": "ok"}
    assert metrics.registry.get_sample_value("thinkq_requests_total", labels) == 0.0
    metrics.record(Record(0.0, 0.0, 0.1, "chat", 0, 0, "ok"))
    assert metrics.registry.get_sample_value("thinkq_requests_total", labels) == HOLD
