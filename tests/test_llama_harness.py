"""The harness of the real-server tests: a portable build, and a dead server told clearly."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import llama_build
import llama_server as llama_server_module


def test_the_real_server_is_built_without_native_cpu_tuning() -> None:
    python = llama_build.server_environment()
    probe = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    info = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    features = dict(part.strip().split(" = ") for part in info.split("|") if " = " in part)
    assert features.get("AVX2") == "1", info  # the baseline is there...
    tuned = [
        name for name, on in features.items() if on == "1" and ("AVX512" in name or "AMX" in name)
    ]
    assert tuned == [], info  # ...and nothing of the build machine's own CPU beyond it


def test_the_build_cache_is_keyed_by_version_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THINKQ_CACHE", str(tmp_path))
    assert llama_build.cache_root() == tmp_path
    a = llama_build._key("0.3.36", llama_build.PORTABLE_CMAKE_ARGS)
    assert a != llama_build._key("0.3.37", llama_build.PORTABLE_CMAKE_ARGS)
    assert a != llama_build._key("0.3.36", "-DGGML_NATIVE=ON")


def _dying_python(tmp_path: Path, signal_name: str) -> Path:
    """A stand-in interpreter that prints a line and dies of ``signal_name``."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\necho 'loading model'\nkill -{signal_name} $$\n")
    script.chmod(0o755)
    return script


def test_a_server_that_dies_at_start_fails_with_its_signal_and_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        llama_server_module, "server_environment", lambda: _dying_python(tmp_path, "ILL")
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError) as caught:
        llama_server_module.start()
    assert time.monotonic() - started < 30  # no hang until the start timeout
    message = str(caught.value)
    assert "signal SIGILL" in message
    assert "a llama.cpp build for another CPU" in message
    assert "loading model" in message  # the log's tail


def test_death_is_none_while_the_process_lives_and_says_why_after(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("slot 0: processing prompt\n")
    process = subprocess.Popen(["sleep", "30"])
    server = llama_server_module.LlamaServer("http://127.0.0.1:9/v1", "m", process, log)
    try:
        assert llama_server_module.death(server) is None
    finally:
        process.kill()
        process.wait()
    why = llama_server_module.death(server)
    assert why is not None
    assert "signal SIGKILL" in why
    assert "processing prompt" in why
