"""The store's scripts against a real redis-server: what a member's report and read
write and return are what the documented pipelines did, in one command each.

``INFO commandstats`` counts the commands a script runs as well as the script, so a
round trip shows as one ``EVAL``/``EVALSHA`` and no ``MULTI``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fakes import Clock
from redis_server import RedisServer
from test_fleet_state import START, member
from thinkq.fleet import Store
from thinkq.fleet.scripts import hashes, report_args
from thinkq.fleet.state import BUCKET_TTL, parse_epoch

ARRIVALS = {1000: {"math": 3, "chat": 1}, 1001: {"chat": 2}}
SUMS = {1000: {"math:n": 2.0, "math:service": 1.25, "math:thinking": 812.0}}


async def _commands(store: Store) -> dict[str, int]:
    """Calls per command since the last ``CONFIG RESETSTAT``."""
    stats = await store.client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def _keys(store: Store) -> dict[str, Any]:
    found = {}
    for key in sorted(await store.client.keys(f"{store.prefix}:*")):
        kind = await store.client.type(key)
        found[key.partition(":")[2]] = (
            await store.client.hgetall(key) if kind == "hash" else await store.client.get(key)
        )
    return found


def test_report_args_are_the_pipelines_values() -> None:
    keys, args = report_args(lambda *p: ":".join(map(str, p)), ARRIVALS, SUMS)
    assert keys == ["arrivals:1000", "arrivals:1001", "completions:1000"]
    assert args == [
        *("2", "math", "i", "3", "chat", "i", "1"),
        *("1", "chat", "i", "2"),
        *("3", "math:n", "i", "2", "math:service", "f", "1.25", "math:thinking", "i", "812"),
    ]
    assert hashes([["a", "1", "b", "2"], []]) == [{"a": "1", "b": "2"}, {}]
    with pytest.raises(ValueError, match="shorter"):  # an odd reply is not a hash
        hashes([["a"]])


def test_a_report_writes_what_add_writes_only_under_its_epoch(redis_server: RedisServer) -> None:
    async def main() -> None:
        piped, scripted = Store(redis_server.url, prefix="p"), Store(redis_server.url, prefix="s")
        try:
            epoch = scripted.new_epoch(999.0)
            found = await scripted.report(epoch, None, ARRIVALS, SUMS)  # no epoch yet
            assert found == epoch  # created, and nothing added under an unknown one
            assert list(await _keys(scripted)) == ["epoch"]
            assert await scripted.report(scripted.new_epoch(5.0), "other", ARRIVALS) == epoch
            assert await scripted.report(epoch, epoch, ARRIVALS, SUMS) is None
            await piped.epoch(999.0)
            await piped.add(ARRIVALS, SUMS)
            mine, theirs = await _keys(scripted), await _keys(piped)
            assert parse_epoch(mine.pop("epoch"))[1] == parse_epoch(theirs.pop("epoch"))[1]
            assert mine == theirs  # the same hashes, fields and values
            assert mine["completions:1000"]["math:service"] == "1.25"
            for key in ("s:arrivals:1000", "s:arrivals:1001", "s:completions:1000"):
                assert 0 < await scripted.client.ttl(key) <= BUCKET_TTL
        finally:
            await piped.aclose()
            await scripted.aclose()

    asyncio.run(main())


def test_windows_reads_both_kinds_in_one_command(redis_server: RedisServer) -> None:
    async def main() -> None:
        store = Store(redis_server.url)
        try:
            await store.epoch(0.0)
            await store.add(ARRIVALS, SUMS)
            seconds = range(999, 1003)
            await store.windows(seconds)  # the script loaded (redis-py does it on NOSCRIPT)
            await store.client.config_resetstat()
            arrived, ended = await store.windows(seconds)
            used = await _commands(store)
            assert used.get("evalsha", 0) + used.get("eval", 0) == 1, used
            assert arrived == [{}, {"math": "3", "chat": "1"}, {"chat": "2"}, {}]
            done = {"math:n": "2", "math:service": "1.25", "math:thinking": "812"}
            assert ended == [{}, done, {}, {}]
            assert arrived == await store.buckets("arrivals", seconds)
            assert ended == await store.buckets("completions", seconds)
        finally:
            await store.aclose()

    asyncio.run(main())


def test_a_members_tick_is_one_round_trip_and_a_share_four(redis_server: RedisServer) -> None:
    """Reporting every second is one script (the epoch checked in it); a leader's share
    adds the lease, one read of the window and the plan's SET."""
    clock = Clock(START)

    async def main() -> None:
        store = Store(redis_server.url, wall=clock)
        m = member(store, clock)
        try:
            await m.tick()  # the first: the epoch learnt, then the report; leads
            assert m.role == "leader"
            for step in range(1, 5):
                clock.now = START + step
                m.estimator.arrival(0)
                await store.client.config_resetstat()
                await m.tick()
                used = await _commands(store)
                assert used.get("evalsha", 0) + used.get("eval", 0) == 1, used
                assert "multi" not in used
                assert "hgetall" not in used
            clock.now = START + 5  # a period on: report, lease, read, publish
            await store.client.config_resetstat()
            await m.tick()
            used = await _commands(store)
            assert used.get("evalsha", 0) + used.get("eval", 0) == 3, used
            assert "multi" not in used
            assert used["hgetall"] == 2 * 60
        finally:
            await store.aclose()

    asyncio.run(main())


def test_after_redis_restarts_empty_the_window_is_reported_again_in_one_tick(
    redis_server: RedisServer,
) -> None:
    clock = Clock(START)

    async def main() -> None:
        store = Store(redis_server.url, wall=clock)
        m = member(store, clock)
        try:
            for step in range(20):  # 3 arrivals a second, reported every second
                for k in range(3):
                    clock.now = START + step + k / 3
                    m.estimator.arrival(k % 2)
                clock.now = START + step + 1
                await m.tick()
            seconds = range(int(START) - 1, int(START) + 21)

            async def reported() -> float:
                rows = await store.buckets("arrivals", seconds)
                return sum(float(v) for row in rows for v in row.values())

            assert await reported() == 60  # each arrival once
            await store.client.flushdb()  # Redis back empty: a new epoch
            m.estimator.arrival(0)
            await m.tick()
            assert await reported() == 61  # the whole window again, in this tick
            assert m.connected is True
        finally:
            await store.aclose()

    asyncio.run(main())
