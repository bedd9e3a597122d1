"""The gateway's request log lines, logged later (:mod:`thinkq.serve.logs`): held for
the delay, then logged in slices of the loop with gaps between, in order, with their
own time; at once outside a loop, at capacity, on flush and when the gateway stops;
and before ``thinkq serve`` ends on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from conftest import write_document
from fakes import FakeServer, profile
from gateway_process import wait_healthy
from llama_server import free_port
from loopback import serving
from test_serve_app import gateway_client
from thinkq.serve.connections import GatewayServer
from thinkq.serve.logs import DeferredLog


class Kept(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def logger() -> Iterator[tuple[DeferredLog, Kept]]:
    kept = Kept()
    log = logging.getLogger("thinkq.test_serve_logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(kept)
    yield DeferredLog(log, delay=0.05, capacity=5), kept
    log.removeHandler(kept)


@pytest.fixture
def serve_log() -> Iterator[Kept]:
    """The gateway's own logger at INFO, its records kept."""
    kept = Kept()
    log = logging.getLogger("thinkq.serve")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(kept)
    yield kept
    log.removeHandler(kept)
    log.setLevel(level)


def test_outside_a_loop_a_line_is_logged_at_once(logger) -> None:
    lines, kept = logger
    lines.info("one %d", 1)
    assert kept.lines() == ["one 1"]
    (record,) = kept.records
    assert record.levelno == logging.INFO
    assert record.name == "thinkq.test_serve_logs"


def test_in_a_loop_lines_are_held_for_the_delay_with_their_own_time(logger) -> None:
    lines, kept = logger

    async def main() -> None:
        start = time.time()
        for k in range(3):
            lines.info("line %d", k)
        assert kept.records == []  # held
        await asyncio.sleep(0.2)
        assert kept.lines() == ["line 0", "line 1", "line 2"]
        assert lines.timer is None
        for record in kept.records:  # when it was logged, not when it was handled
            assert start <= record.created < start + 0.04
            assert record.msecs == (record.created - int(record.created)) * 1e3 // 1

    asyncio.run(main())


def test_the_text_is_the_arguments_when_handled(logger) -> None:
    lines, kept = logger

    async def main() -> None:
        lines.info("%s and %d", "text", 7)
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert kept.lines() == ["text and 7"]


def test_capacity_and_flush_log_what_is_held(logger) -> None:
    lines, kept = logger

    async def main() -> None:
        for k in range(5):  # the capacity
            lines.info("%d", k)
        assert kept.lines() == ["0", "1", "2", "3", "4"]
        lines.info("held")
        assert len(kept.records) == 5
        lines.flush()
        assert kept.lines()[-1] == "held"
        assert lines.timer is None

    asyncio.run(main())


def test_nothing_is_held_when_info_is_off(logger) -> None:
    lines, kept = logger
    lines.logger.setLevel(logging.WARNING)
    lines.info("quiet")
    assert lines.held == []
    assert kept.records == []


def test_a_timer_of_a_loop_that_ended_holds_nothing_back(logger) -> None:
    lines, kept = logger

    async def first() -> None:
        lines.info("a")  # the loop ends before the delay: its timer never fires

    async def second() -> None:
        lines.info("b")  # the next line, in another loop: both logged at once
        assert kept.lines() == ["a", "b"]
        lines.info("c")  # then held again, by this loop's timer
        assert lines.timer is not None
        await asyncio.sleep(0.2)
        assert kept.lines() == ["a", "b", "c"]

    asyncio.run(first())
    assert kept.records == []
    asyncio.run(second())


def test_lines_held_are_logged_in_slices_in_order_with_gaps_between(logger) -> None:
    lines, kept = logger
    lines.slice_time, lines.gap = 0.0, 30.0  # one line a slice; the next slice far off

    async def main() -> None:
        for k in range(4):
            lines.info("line %d", k)
        await asyncio.sleep(0.2)  # the delay: the first slice only
        assert kept.lines() == ["line 0"]
        assert lines.timer is not None  # the next slice is due after the gap
        assert [msg % args for _, msg, args in lines.held] == ["line 1", "line 2", "line 3"]
        lines.flush()  # (as the gateway's stop does) the rest at once, in order
        assert kept.lines() == ["line 0", "line 1", "line 2", "line 3"]
        assert lines.timer is None
        assert lines.held == []

    asyncio.run(main())


def test_slices_go_on_until_every_line_is_logged_in_order(logger) -> None:
    lines, kept = logger
    lines.slice_time, lines.gap = 0.0, 0.001
    callbacks = []

    async def main() -> None:
        start = time.time()
        for k in range(3):  # (the capacity is 5)
            lines.info("line %d", k)
        await asyncio.sleep(0.02)  # within the delay: a line held meanwhile joins them
        lines.info("line 3")
        while lines.held:
            callbacks.append(len(kept.records))
            await asyncio.sleep(0.001)
        assert kept.lines() == [f"line {k}" for k in range(4)]
        assert lines.timer is None
        for record in kept.records:  # when it was logged, not when it was handled
            assert start <= record.created < start + 0.04

    asyncio.run(main())
    # one line a slice: the loop ran other callbacks between the slices
    assert sorted(set(callbacks)) == [0, 1, 2, 3]


def test_a_slice_of_work_logs_several_lines(logger) -> None:
    lines, kept = logger
    lines.slice_time, lines.gap = 10.0, 30.0  # all in one slice

    async def main() -> None:
        for k in range(4):
            lines.info("line %d", k)
        await asyncio.sleep(0.2)
        assert kept.lines() == [f"line {k}" for k in range(4)]
        assert lines.timer is None

    asyncio.run(main())


def test_the_gateways_lines_are_all_logged_in_order_and_the_rest_when_it_stops(
    serve_log: Kept,
) -> None:
    kept = serve_log
    body = {"max_tokens": 4}
    headers = {"X-Thinkq-Task": "math"}

    async def main() -> None:
        async with gateway_client(FakeServer(), log_prompts=True) as (client, gateway):
            lines = gateway.books.lines
            lines.slice_time, lines.gap = 0.0, 0.001  # one line a slice
            for k in range(6):  # served one after the other, logged in slices meanwhile
                messages = [{"role": "user", "content": f"question {k}"}]
                reply = await client.post(
                    "/v1/chat/completions", json=body | {"messages": messages}, headers=headers
                )
                assert reply.status_code == 200, reply.text
            while lines.held:
                await asyncio.sleep(0.001)
            lines.gap = 30.0  # then the next slice far off: the gateway's stop logs the rest
            for k in range(6, 9):
                messages = [{"role": "user", "content": f"question {k}"}]
                await client.post(
                    "/v1/chat/completions", json=body | {"messages": messages}, headers=headers
                )
            await asyncio.sleep(0.3)  # the delay: one slice
            assert len(lines.held) == 2
        assert lines.held == []

    asyncio.run(main())
    prompts = [line.rsplit("prompt=", 1)[1] for line in kept.lines() if " task=math " in line]
    assert prompts == [repr(f"question {k}") for k in range(9)]


def test_lines_wait_for_no_request_in_progress_or_the_patience(logger) -> None:
    lines, kept = logger
    busy = [True]
    lines.idle, lines.patience = (lambda: not busy[0]), 30.0

    async def main() -> None:
        lines.info("a")
        lines.info("b")
        await asyncio.sleep(0.2)  # the delay is up, but a request is in progress
        assert kept.records == []
        busy[0] = False
        await asyncio.sleep(0.05)
        assert kept.lines() == ["a", "b"]
        busy[0], lines.patience = True, 0.1
        lines.info("c")
        await asyncio.sleep(0.5)  # held past the delay and the patience: logged, busy or not
        assert kept.lines() == ["a", "b", "c"]
        assert lines.timer is None

    asyncio.run(main())


def test_the_gateways_lines_wait_while_a_request_is_in_progress(serve_log: Kept) -> None:
    kept = serve_log
    body = {"messages": [{"role": "user", "content": "2 + 3?"}], "max_tokens": 4}
    headers = {"X-Thinkq-Task": "math"}

    async def main() -> None:
        upstream = FakeServer()
        async with gateway_client(upstream) as (client, gateway):
            lines = gateway.books.lines
            reply = await client.post("/v1/chat/completions", json=body, headers=headers)
            assert reply.status_code == 200, reply.text
            upstream.delay = 0.5  # the next request is in progress for a second or so
            slow = asyncio.create_task(
                client.post("/v1/chat/completions", json=body, headers=headers)
            )
            await asyncio.sleep(0.4)  # past the delay of the first line
            assert len(lines.held) == 1
            assert (await slow).status_code == 200
            await asyncio.sleep(0.05)  # none in progress: both logged
            assert lines.held == []

    asyncio.run(main())
    assert sum(" task=math " in line for line in kept.lines()) == 2


def test_the_arguments_are_checked() -> None:
    log = logging.getLogger("thinkq.test_serve_logs")
    with pytest.raises(ValueError, match="delay"):
        DeferredLog(log, delay=0)
    with pytest.raises(ValueError, match="capacity"):
        DeferredLog(log, capacity=0)
    with pytest.raises(ValueError, match="slice_time"):
        DeferredLog(log, slice_time=-1.0)
    with pytest.raises(ValueError, match="gap"):
        DeferredLog(log, gap=float("nan"))


def test_the_gateways_server_calls_before_exit_once_shut_down(logger) -> None:
    lines, kept = logger

    async def main() -> None:
        server = GatewayServer(uvicorn.Config(lambda *a: None), before_exit=lines.flush)
        with server.capture_signals():
            lines.info("last")
            assert kept.records == []
        assert kept.lines() == ["last"]

    asyncio.run(main())


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    return write_document(tmp_path / "profile.toml", profile(t0=[0.02, 0.02]).to_dict())


def test_thinkq_serve_stopped_by_sigterm_has_written_every_request_line(
    profile_file: Path,
) -> None:
    port = free_port()
    with serving(FakeServer()) as upstream:
        command = [
            sys.executable, "-m", "thinkq", "serve", "--upstream", upstream,
            "--profile", str(profile_file), "--port", str(port), "--mode", "cap",
        ]  # fmt: skip
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(process, base, 60)
            body = {"messages": [{"role": "user", "content": "2 + 3?"}], "max_tokens": 4}
            headers = {"X-Thinkq-Task": "math"}
            for _ in range(3):
                reply = httpx.post(
                    f"{base}/v1/chat/completions", json=body, headers=headers, timeout=10
                )
                assert reply.status_code == 200, reply.text
        finally:
            os.kill(process.pid, signal.SIGTERM)  # at once: the lines are still held
            _, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM  # uvicorn's own way to end
    assert err.count("INFO:     ok task=math") == 3, err
