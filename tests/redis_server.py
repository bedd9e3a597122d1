"""A real ``redis-server`` on a free loopback port, for the shared-state tests.

:func:`start` runs Debian's ``redis-server`` without persistence (``--save ''
--appendonly no``) on a free port of 127.0.0.1 and waits until it answers. When the
binary is missing it is installed with ``apt-get install -y redis-server`` if this
process runs as root (as CI does); otherwise the test fails with a message naming
the package. :meth:`RedisServer.kill` stops it the hard way (an outage), and
:meth:`RedisServer.restart` starts it again on the same port, empty.

Run as a script (``python tests/redis_server.py``, as ``.ci/run`` does), it installs
the server if needed and prints its path and version.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from apt_packages import ensure
from ports import free_port

__all__ = ["RedisServer", "ensure_installed", "start"]

PACKAGE = "redis-server"


def ensure_installed() -> str:
    """The path of ``redis-server``, installed with apt-get when missing and root."""
    return ensure(PACKAGE, lambda: shutil.which("redis-server"))


@dataclass
class RedisServer:
    """A running ``redis-server``: its port, process, and log file."""

    binary: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def run(self) -> None:
        """Start it (on :attr:`port`) and wait until it answers PING."""
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--protected-mode", "no",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text()[-800:]}")
            if _answers(self.port):
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer in 20 s: {self.log.read_text()[-800:]}")

    def kill(self) -> None:
        """Stop it at once (SIGKILL) and wait for it to go."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """Freeze it (SIGSTOP): it keeps its connections and answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze it (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill it and start it again on the same port, empty."""
        self.kill()
        self.run()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(directory: Path) -> RedisServer:
    """A new ``redis-server`` on a free loopback port, logging into ``directory``."""
    server = RedisServer(ensure_installed(), free_port(), directory / "redis.log")
    server.run()
    return server


if __name__ == "__main__":
    binary = ensure_installed()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    print(binary, version.stdout.strip())
