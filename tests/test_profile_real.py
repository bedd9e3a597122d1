"""``thinkq profile`` against the real llama.cpp server (SmolLM2-135M), end to end.

These are the acceptance checks of issue 6 on a real model: exact budgets, a latency
line that explains the measurements, records that fit into a profile `thinkq solve`
accepts, an interrupted run that resumes to the full grid, and one-line errors for a
server that is down, a wrong URL and an unknown model.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import llama_server as llama_server_module
from llama_server import LlamaServer, free_port


def thinkq(*args: object, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "thinkq", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def profile_args(server: LlamaServer, data: Path, out: Path, **options: object) -> list[object]:
    settings: dict[str, object] = {
        "--base-url": server.base_url,
        "--model": server.model,
        "--dataset": "gsm8k,arc_challenge",
        "--budgets": "0,64,128,256",
        "--samples": 2,
        "--runs": 1,
        "--data-dir": data,
        "--template": "chatml",
        "-o": out,
        **options,
    }
    return ["profile", *[part for pair in settings.items() for part in pair]]


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_profile_fit_solve_on_the_real_server(
    llama_server: LlamaServer, benchmarks_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "records.jsonl"
    done = thinkq(*profile_args(llama_server, benchmarks_dir, out))
    assert done.returncode == 0, done.stderr
    rows = records(out)
    assert len(rows) == 2 * 2 * 4
    assert all(r["error"] is None for r in rows)
    assert all(r["thinking_tokens"] == r["budget"] for r in rows)  # exact forcing
    assert {r["task"] for r in rows} == {"gsm8k", "arc_challenge"}
    mean = {
        budget: sum(r["latency_s"] for r in rows if r["budget"] == budget) / 4
        for budget in (0, 64, 128, 256)
    }
    # 256 forced tokens take seconds more than none (about 13 ms a token on 2 cores);
    # neighbouring budgets are only tenths apart, within the noise of a busy machine
    assert mean[0] < mean[256]

    profile = tmp_path / "smollm2.toml"
    fitted = thinkq("fit", out, "-o", profile, "--bootstrap", "20", "--json")
    assert fitted.returncode == 0, fitted.stderr
    report = json.loads(fitted.stdout)
    for task in report["tasks"]:
        latency = task["latency"]
        assert latency["r_squared_means"] >= 0.95, (task["name"], latency)
        assert latency["r_squared"] >= 0.5, (task["name"], latency)  # prompts differ in length
        assert 0.001 < latency["c"] < 0.2  # seconds per thinking token on 2 cores
    solved = thinkq("solve", profile, "--json")
    assert solved.returncode in (0, 1), solved.stderr
    result = json.loads(solved.stdout)
    assert {t["name"] for t in result["tasks"]} == {"gsm8k", "arc_challenge"}
    assert all(0 <= t["budget"] <= 256 for t in result["tasks"])


def test_an_interrupted_run_resumes_to_the_whole_grid(
    llama_server: LlamaServer, benchmarks_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "records.jsonl"
    grid = {"--budgets": "0,8,24", "--samples": 3}
    args = profile_args(llama_server, benchmarks_dir, out, **grid)
    command = [sys.executable, "-m", "thinkq", *map(str, args)]
    # a shell that starts the suite in the background (``cmd &``) ignores SIGINT in its
    # children, and Python keeps an inherited SIG_IGN: give the child the default back
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text("utf-8").count("\n") >= 4:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"run the same command" in stderr
    partial = records(out)  # every line is whole JSON
    assert 4 <= len(partial) < 18

    other = profile_args(llama_server, benchmarks_dir, out, **(grid | {"--budgets": "0,8"}))
    refused = thinkq(*other)  # other budgets: not this run
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: option --budgets: "), refused.stderr
    assert len(records(out)) == len(partial)

    done = thinkq(*args)
    assert done.returncode == 0, done.stderr
    keys = Counter((r["task"], r["item_id"], r["budget"], r["run"]) for r in records(out))
    assert len(keys) == 2 * 3 * 3  # the whole grid ...
    assert set(keys.values()) == {1}  # ... once each
    assert {(r["task"], r["item_id"], r["budget"]) for r in partial} <= {k[:3] for k in keys}

    more = profile_args(llama_server, benchmarks_dir, out, **(grid | {"--budgets": "4"}))
    extended = thinkq(*more, "--extend")  # a budget added to the same run
    assert extended.returncode == 0, extended.stderr
    keys = Counter((r["task"], r["item_id"], r["budget"], r["run"]) for r in records(out))
    assert len(keys) == 2 * 3 * 4
    assert set(keys.values()) == {1}


def test_bad_servers_fail_fast_with_one_line_and_no_file(
    llama_server: LlamaServer, benchmarks_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "records.jsonl"
    root = llama_server.base_url.removesuffix("/v1")
    cases = {
        # nothing listens: a failure (1), as when a server dies, not a user error (2)
        "down": ({"--base-url": f"http://127.0.0.1:{free_port()}/v1"}, "--base-url", 1),
        "wrong url": ({"--base-url": root}, "/v1", 2),
        "unknown model": ({"--model": "no-such-model"}, "smollm2", 2),
    }
    for name, (options, mentioned, code) in cases.items():
        started = time.monotonic()
        done = thinkq(*profile_args(llama_server, benchmarks_dir, out, **options), timeout=60)
        assert time.monotonic() - started < 30, name
        assert done.returncode == code, (name, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (name, done.stderr)
        assert lines[0].startswith("error: "), (name, done.stderr)
        assert mentioned in lines[0], (name, lines[0])
        assert "Traceback" not in done.stderr
        assert not out.exists(), name


def test_a_server_that_dies_mid_run_is_a_failure_not_a_bad_option(
    benchmarks_dir: Path, tmp_path: Path
) -> None:
    server = llama_server_module.start()  # a private one: this test kills it
    out = tmp_path / "records.jsonl"
    args = profile_args(server, benchmarks_dir, out, **{"--budgets": "0,16,32", "--samples": 3})
    command = [sys.executable, "-m", "thinkq", *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and out.read_text("utf-8").count("\n") >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before the server could be stopped"
    finally:
        llama_server_module.stop(server)
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode()
    assert process.returncode == 1, text
    assert "Traceback" not in text
    assert "--base-url" not in text, text  # the option was right: the server went away
    assert len(records(out)) >= 2  # what was finished stays
