"""Build the real LLM server of the integration tests portably, once, outside the repository.

llama-cpp-python compiles llama.cpp when it installs. Left to itself it tunes the build
for the CPU it compiles on (``GGML_NATIVE``), and on Intel Xeon machines with AMX such
a build dies with "Illegal instruction" on its first real prompt. pip's wheel cache
keys on the sdist, not on ``CMAKE_ARGS``, so a native wheel once cached would be
reused silently. Here the server gets its own virtual environment, built with
:data:`PORTABLE_CMAKE_ARGS` and ``--no-cache-dir --no-binary llama-cpp-python`` (no
wheel is read from or written to any cache), under a directory named by the version
and the build flags. The first build takes about 12 minutes on 2 cores; later runs
find it done. A lock makes concurrent test sessions wait for one build.

Run it as a script to build ahead of the tests; it prints the interpreter to use::

    python tests/llama_build.py
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

#: The llama-cpp-python release the tests run (its sdist carries llama.cpp's source).
LLAMA_CPP_PYTHON = "0.3.36"
#: A baseline every x86-64 CPU of the last decade runs: no native tuning, no AMX.
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
BUILD_TIMEOUT_S = 3600.0


def cache_root() -> Path:
    """``$THINKQ_CACHE``, else ``$XDG_CACHE_HOME/thinkq``, else ``~/.cache/thinkq``."""
    if explicit := os.environ.get("THINKQ_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "thinkq"


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def server_environment(version: str = LLAMA_CPP_PYTHON) -> Path:
    """The interpreter of a virtual environment with ``llama-cpp-python[server]``.

    Built on first use with :data:`PORTABLE_CMAKE_ARGS`; a failed build leaves nothing
    behind but its log, and raises ``RuntimeError`` with the log's tail.
    """
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    name = f"llama-cpp-python-{version}-py{tag}-{_key(version, PORTABLE_CMAKE_ARGS)}"
    root = cache_root()
    target = root / name
    python = target / "bin" / "python"
    if python.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it
        if not python.exists():
            _build(target, version)
    return python


def _build(target: Path, version: str) -> None:
    partial = target.with_name(target.name + ".partial")
    log = target.with_name(target.name + ".log")
    shutil.rmtree(partial, ignore_errors=True)
    venv.create(partial, with_pip=True)
    env = {
        **os.environ,
        "CMAKE_ARGS": PORTABLE_CMAKE_ARGS,
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
        "FORCE_CMAKE": "1",
    }
    command = [
        str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet",
        "--disable-pip-version-check", "--no-cache-dir", "--no-binary", "llama-cpp-python",
        f"llama-cpp-python[server]=={version}",
    ]  # fmt: skip
    # sys.__stderr__: pytest captures sys.stderr during a fixture, and a silent
    # 12-minute pause would look like a hang
    terminal = sys.__stderr__ or sys.stderr
    terminal.write(
        f"\nbuilding llama-cpp-python {version} portably for the real-server tests "
        f"(about 12 minutes the first time, then cached; log: {log})\n"
    )
    terminal.flush()
    with log.open("wb") as out:
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=BUILD_TIMEOUT_S
        )
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"building llama-cpp-python {version} failed:\n{tail}")
    # a venv's interpreter finds its site-packages from where it is: renaming is safe
    partial.rename(target)


if __name__ == "__main__":
    print(server_environment())
