"""Waiting for a ``thinkq serve`` process started by a test to answer."""

from __future__ import annotations

import subprocess
import time

import httpx

__all__ = ["wait_healthy"]


def wait_healthy(process: subprocess.Popen[str], base: str, timeout: float) -> None:
    """Return once ``GET base/healthz`` answers 200; fail with the process's stderr if
    it ends first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.1)
