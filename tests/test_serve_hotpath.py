"""The shortcuts of the request path keep its behaviour (``docs/benchmarks.md``, Gateway).

* the head size limit counts a head exactly only when the bytes read since the last
  request ended exceed it: a head over the limit that arrives in the same read as
  the request before it (pipelined) still gets 431;
* :meth:`Records.ended_since` (the fleet's report, O(new)) gives exactly the served
  requests that :meth:`Records.recent` has and that ended after the mark;
* the window's mean system time and mean batch, kept as sums as records come and go,
  are those of the window's records counted afresh;
* the window (records, arrivals) adds no object the cyclic collector tracks per request;
* the metrics' cached series count and observe as the labelled lookups did, also for
  a task outside the profile.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import types

import numpy as np
import pytest

from test_serve_app import metric
from test_serve_connections import CHAT, MAX_HEADER, exchange, gateway_server, request
from thinkq.serve.estimator import Estimator
from thinkq.serve.metrics import Metrics
from thinkq.serve.queue import Record, Records


def test_a_pipelined_head_over_the_limit_in_the_same_read_gets_431() -> None:
    async def main() -> None:
        async with gateway_server() as (port, gateway):
            body = json.dumps(CHAT).encode()
            big = b"X-Big: " + b"a" * (MAX_HEADER + 1)
            answer = await exchange(port, request(body) + request(body, big))  # one write
            text = gateway.metrics.exposition().decode()
            # the first is served (or the connection reset first); never the second
            assert metric(text, "thinkq_requests_total") <= 1
            assert answer.count(b"HTTP/1.1 200 ") <= 1, answer[:300]
            assert answer == b"" or b"HTTP/1.1 431 " in answer, answer[:300]

    asyncio.run(main())


def test_a_pipelined_request_within_the_limit_is_served() -> None:
    async def main() -> None:
        async with gateway_server() as (port, gateway):
            body = json.dumps(CHAT).encode()
            close = b"Connection: close"
            answer = await exchange(port, request(body) + request(body, close))
            assert answer.count(b"HTTP/1.1 200 ") == 2, answer[:300]
            text = gateway.metrics.exposition().decode()
            assert metric(text, "thinkq_requests_total") == 2

    asyncio.run(main())


def test_ended_since_is_recent_filtered_by_end() -> None:
    rng = random.Random(7)
    now = [0.0]
    records = Records(window=30.0, clock=lambda: now[0])
    for _ in range(2000):  # records are added when their requests end, at the clock
        now[0] += rng.expovariate(20.0)
        wait, service = rng.uniform(0, 2), rng.uniform(0, 5)
        arrival = now[0] - wait - service
        outcome = rng.choice(["ok", "ok", "ok", "upstream_error", "disconnected"])
        records.add(Record(arrival, wait, service, "a", 0, 0, outcome))
        if rng.random() < 0.05:
            mark = now[0] - rng.uniform(0, 10)
            expected = [r for r in records.recent() if r.system_time + r.arrival > mark]
            found = records.ended_since(mark)
            assert [r for r in found if r.arrival + r.system_time > mark] == expected
            assert all(r.arrival + r.system_time > mark - 1e-3 for r in found)


def test_the_windows_means_kept_as_sums_are_those_of_its_records() -> None:
    rng = random.Random(11)
    now = [0.0]
    records = Records(window=30.0, clock=lambda: now[0])
    assert records.mean_system_time() is None
    assert records.mean_batch() is None
    for k in range(3000):  # with a pause long enough to empty the window, midway
        now[0] += rng.expovariate(20.0) + (60.0 if k == 1500 else 0.0)
        if k == 1500:
            assert records.mean_system_time() is None  # all left: the sums start again
        wait, service = rng.uniform(0, 2), rng.uniform(0, 5)
        outcome = rng.choice(["ok", "ok", "ok", "upstream_error", "disconnected"])
        records.add(Record(now[0] - wait - service, wait, service, "a", 0, 0, outcome))
        if rng.random() < 0.05:
            served = records.recent()  # the window's served records, counted afresh
            span = min(30.0, now[0])
            mean = sum(r.system_time for r in served) / len(served)
            assert records.mean_system_time() == pytest.approx(mean, rel=1e-12)
            batch = sum(r.service for r in served) / span
            assert records.mean_batch() == pytest.approx(batch, rel=1e-12)


def _tracked(root: object) -> int:
    """Objects the cyclic collector tracks reachable from ``root`` (not through
    functions, modules or classes: the clock's globals are not the window's)."""
    seen, stack, found = set(), [root], 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, types.FunctionType | types.ModuleType | type):
            continue
        seen.add(id(item))
        found += gc.is_tracked(item)
        stack.extend(gc.get_referents(item))
    return found


def test_the_window_adds_no_tracked_object_per_request() -> None:
    records = Records(window=60.0, clock=lambda: 1.0)
    estimator = Estimator(
        prior_rate=1.0, prior_shares=np.array([0.5, 0.5]), window=60.0, clock=lambda: 1.0
    )
    before = _tracked(records), _tracked(estimator)
    for k in range(100):
        records.add(Record(1.0, 0.25, 0.5, "a", 8, 8, "ok" if k % 3 else "disconnected"))
        estimator.arrival(k % 2)
    records.settle()  # what the gateway does once no request is in progress
    assert (_tracked(records), _tracked(estimator)) == before
    assert len(records.recent()) == 66  # all kept, all given back as records
    assert estimator.recorded(0)[1] == [(1.0, k % 2) for k in range(100)]


def test_cached_series_count_as_the_labelled_ones() -> None:
    metrics = Metrics(["a", "b"])
    metrics.record(Record(0.0, 0.5, 1.5, "a", 8, 8, "ok"))
    metrics.record(Record(0.0, 0.0, 0.0, "b", 0, 0, "disconnected"))
    metrics.record(Record(0.0, 0.25, 0.75, "other", 4, 3, "ok"))  # not in the profile
    metrics.outcome("", "bad_request")
    text = metrics.exposition().decode()
    assert 'thinkq_requests_total{outcome="ok",task="a"} 1.0' in text
    assert 'thinkq_requests_total{outcome="disconnected",task="b"} 1.0' in text
    assert 'thinkq_requests_total{outcome="ok",task="other"} 1.0' in text
    assert 'thinkq_requests_total{outcome="bad_request",task=""} 1.0' in text
    assert 'thinkq_wait_seconds_sum{task="a"} 0.5' in text
    assert 'thinkq_service_seconds_sum{task="other"} 0.75' in text
    assert 'thinkq_thinking_tokens_total{task="other"} 3.0' in text
    assert 'thinkq_service_seconds_count{task="b"} 0.0' in text
