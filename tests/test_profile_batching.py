"""``thinkq profile --slots`` and ``thinkq fit`` against llama.cpp's own ``llama-server``
(4 slots, continuous batching) serving SmolLM2-135M: a server table, its prompt stage
included, from a real server."""

from __future__ import annotations

import json
from pathlib import Path

from llama_profile import profile_and_fit
from llama_server import LlamaServer
from thinkq import load_profile


def test_a_real_batching_server_is_profiled_and_fitted(
    llama_batching_server: LlamaServer, benchmarks_dir: Path, tmp_path: Path
) -> None:
    fitted = profile_and_fit(llama_batching_server, benchmarks_dir, tmp_path)
    every = [json.loads(line) for line in fitted.server_records.read_text("utf-8").splitlines()]
    assert all(r["error"] is None for r in every)
    rows = [r for r in every if r["phase"] == "server"]
    # the prompt probe: each item's prompt new (computed whole) and held (llama.cpp's cache)
    probes = [r for r in every if r["phase"] == "prompt"]
    assert len(probes) == 4  # two items of each of two datasets
    assert all(r["new_n"] > r["held_n"] and r["new_ms"] > r["held_ms"] for r in probes)
    assert sorted({r["concurrency"] for r in rows}) == [1, 2, 4]
    assert all(r["thinking_tokens"] == r["budget"] for r in rows)  # exact forcing
    # llama-server reports its own decode timings and its busy slots
    assert all(r["predicted_n"] == r["budget"] and r["predicted_ms"] > 0 for r in rows)
    four = [r for r in rows if r["concurrency"] == 4]
    assert max(r["batch"] for r in four) > 2.5  # the client kept four in service ...
    assert max(r["batch_slots"] or 0 for r in four) > 1.5  # ... and the server batched them
    assert all(r["batch"] <= 1.0 + 1e-9 for r in rows if r["concurrency"] == 1)

    profile = load_profile(fitted.profile)
    server = profile.server
    assert server is not None
    assert server.slots == 4
    assert server.tau1 > 0
    assert server.step_time(4) > server.step_time(1)
    report = fitted.report["server"]
    assert [level["concurrency"] for level in report["levels"]] == [1, 2, 4]
    assert report["timing"] == "server"
    assert report["line_held_out_max_error"] is not None  # three levels: the line is checked
    if report["law"] == "power":  # the bent law has three parameters: four levels to check it
        assert report["held_out_max_error"] is None
        assert any("too few concurrency levels" in w for w in report["warnings"])
    else:
        assert report["held_out_max_error"] == report["line_held_out_max_error"]
    assert 0.001 < server.step_time(1) < 0.5  # seconds per decode step on 2 cores
    # a new prompt is computed alone while the batch waits: part of every solo time
    solo = float(profile.share @ profile.t0)  # E[S(0)], t0 lifted for new prompts
    assert 0 < server.prompt < solo
    assert fitted.report["prompt"]["written"]
    assert fitted.report["prompt"]["probes"] == len(probes)
