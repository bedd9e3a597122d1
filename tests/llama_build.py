"""Build the real LLM servers of the integration tests portably, once, outside the repository.

Two servers, both from llama.cpp's source and both built for a portable x86-64
baseline (:data:`PORTABLE_CMAKE_ARGS`):

* :func:`server_environment`: llama-cpp-python's server (``python -m llama_cpp.server``)
  in its own virtual environment;
* :func:`llama_server_binary`: llama.cpp's own C++ ``llama-server``, which decodes up
  to ``--parallel N`` requests at once (continuous batching), built from the
  llama.cpp source that ships inside the llama-cpp-python sdist.

Left to itself llama.cpp tunes the build for the CPU it compiles on
(``GGML_NATIVE``), and on Intel Xeon machines with AMX such a build dies with
"Illegal instruction" on its first real prompt. pip's wheel cache keys on the sdist,
not on ``CMAKE_ARGS``, so a native wheel once cached would be reused silently: here
nothing is read from or written to pip's cache (``--no-cache-dir --no-binary``). Each
build lives in a directory named by the version and the build flags under
:func:`cache_root`; it is built in a ``.partial`` directory and renamed when whole, so
an interrupted build leaves nothing that looks done. A lock makes concurrent test
sessions wait for one build. The first builds take several minutes on 2 cores; later
runs find them done.

Run it as a script to build both ahead of the tests; it prints where they are::

    python tests/llama_build.py
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import venv
from collections.abc import Callable
from pathlib import Path

#: The llama-cpp-python release the tests run (its sdist carries llama.cpp's source).
LLAMA_CPP_PYTHON = "0.3.36"
#: A baseline every x86-64 CPU of the last decade runs: no native tuning, no AMX.
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
#: llama.cpp's own server only: static, no tests or examples, nothing downloaded at
#: build time (the prebuilt web UI would be), no TLS.
SERVER_CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
    "-DLLAMA_BUILD_SERVER=ON -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF "
    "-DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF"
)
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
    """The interpreter of a virtual environment with ``llama-cpp-python[server]``."""
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    name = f"llama-cpp-python-{version}-py{tag}-{_key(version, PORTABLE_CMAKE_ARGS)}"
    built = _once(name, f"llama-cpp-python {version}", lambda d, log: _build_env(d, log, version))
    return built / "bin" / "python"


def llama_server_binary(version: str = LLAMA_CPP_PYTHON) -> Path:
    """llama.cpp's ``llama-server``, from the llama-cpp-python ``version`` sdist."""
    name = f"llama-server-{version}-{_key(version, PORTABLE_CMAKE_ARGS, SERVER_CMAKE_ARGS)}"
    built = _once(name, f"llama-server {version}", lambda d, log: _build_server(d, log, version))
    return built / "llama-server"


def _once(name: str, what: str, build: Callable[[Path, Path], None]) -> Path:
    """``cache_root() / name``, built by ``build(partial_dir, log)`` unless already there.

    A failed build leaves nothing behind but its log and raises ``RuntimeError`` with
    the log's tail.
    """
    root = cache_root()
    target = root / name
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it
        if target.is_dir():
            return target
        partial = root / f"{name}.partial"
        log = root / f"{name}.log"
        shutil.rmtree(partial, ignore_errors=True)
        # sys.__stderr__: pytest captures sys.stderr during a fixture, and a silent
        # pause of minutes would look like a hang
        terminal = sys.__stderr__ or sys.stderr
        terminal.write(
            f"\nbuilding {what} portably for the real-server tests "
            f"(minutes the first time, then cached; log: {log})\n"
        )
        terminal.flush()
        try:
            build(partial, log)
        except (OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"building {what} failed ({exc}):\n{tail}") from exc
        partial.rename(target)  # a venv finds its site-packages from where it is
    return target


def _run(command: list[str], log: Path, **env: str) -> None:
    with log.open("ab") as out:
        subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, check=True,
            env={**os.environ, **env}, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip


def _build_env(directory: Path, log: Path, version: str) -> None:
    venv.create(directory, with_pip=True)
    _run(
        [
            str(directory / "bin" / "python"), "-m", "pip", "install", "--quiet",
            "--disable-pip-version-check", "--no-cache-dir", "--no-binary",
            "llama-cpp-python", f"llama-cpp-python[server]=={version}",
        ],
        log,
        CMAKE_ARGS=PORTABLE_CMAKE_ARGS,
        CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2),
        FORCE_CMAKE="1",
    )  # fmt: skip


def _build_server(directory: Path, log: Path, version: str) -> None:
    work = directory / "work"
    work.mkdir(parents=True)
    _run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-cache-dir", "--no-deps", "--no-binary", ":all:", "-d", str(work),
            f"llama-cpp-python=={version}",
        ],
        log,
    )  # fmt: skip
    (sdist,) = work.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    source = work / sdist.name.removesuffix(".tar.gz") / "vendor" / "llama.cpp"
    build = work / "build"
    flags = [*SERVER_CMAKE_ARGS.split(), *PORTABLE_CMAKE_ARGS.split()]
    _run(["cmake", "-S", str(source), "-B", str(build), *flags], log)
    jobs = str(os.cpu_count() or 2)
    _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], log)
    shutil.copy2(build / "bin" / "llama-server", directory / "llama-server")
    shutil.rmtree(work)


if __name__ == "__main__":
    print(server_environment())
    print(llama_server_binary())
