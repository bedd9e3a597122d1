"""A real Prometheus on a free loopback port, for the Grafana board's test.

:func:`start` runs Debian's ``prometheus`` with a given configuration and a fresh
storage directory on a free port of 127.0.0.1 and waits until it is ready;
:func:`promtool` is Debian's ``promtool`` from the same package. When they are missing
they are installed with ``apt-get install -y --no-install-recommends prometheus`` if
this process runs as root (as CI does; the tests never use the package's own service),
otherwise the test fails with a message naming the package. :meth:`PrometheusServer.query`
evaluates PromQL through the HTTP API.

Run as a script (``python tests/prometheus_server.py``, as ``.ci/run`` does), it
installs the package if needed and prints its path and version.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from apt_packages import ensure
from ports import free_port

__all__ = ["PrometheusServer", "ensure_installed", "promtool", "start"]

PACKAGE = "prometheus"


def _found() -> str | None:
    found = shutil.which("prometheus")
    return found if found is not None and shutil.which("promtool") is not None else None


def ensure_installed() -> str:
    """The path of ``prometheus``, installed with apt-get when missing and root."""
    return ensure(PACKAGE, _found, recommends=False)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS`` (installing the package when missing); its result."""
    ensure_installed()
    binary = shutil.which("promtool")
    assert binary is not None
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


@dataclass
class PrometheusServer:
    """A running ``prometheus``: its port, process and log file."""

    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/PATH`` with ``params``: the ``data`` of a successful answer."""
        reply = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = reply.json()
        if reply.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {reply.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (its series)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        series: list[dict[str, Any]] = data["result"]
        return series

    def kill(self) -> None:
        """Stop it and wait for it to go."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start(directory: Path, config: Path) -> PrometheusServer:
    """A new ``prometheus`` with ``config`` on a free loopback port, its storage and
    log in ``directory``; returned once ready."""
    binary = ensure_installed()
    server = PrometheusServer(free_port(), directory / "prometheus.log")
    command = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{server.port}", "--log.level=warn",
    ]  # fmt: skip
    with server.log.open("ab") as out:
        server.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {server.log.read_text()[-800:]}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"prometheus was not ready in 60 s: {server.log.read_text()[-800:]}")


if __name__ == "__main__":
    binary = ensure_installed()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    print(binary, version.stdout.splitlines()[0])
