"""A recording pass-through on a loopback port: what an upstream really receives.

A gateway under test (the LiteLLM proxy) sends its requests here; each POST body is
kept as parsed JSON (with its path) and the request is relayed as is to the real
server behind, whose reply goes back unchanged. llama.cpp's own log does not show
request bodies, so this is where the tests read the budget field a request carried.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

__all__ = ["Recorder", "recording"]

#: Request headers not relayed (the relay sets its own).
HOP = frozenset({"host", "content-length", "connection", "transfer-encoding", "accept-encoding"})


class Recorder:
    """The requests seen so far: ``(path, body)`` pairs, in arrival order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=120.0)

    def bodies(self, suffix: str) -> list[dict[str, Any]]:
        """The bodies of the requests whose path ends with ``suffix``."""
        with self.lock:
            return [body for path, body in self.seen if path.endswith(suffix)]


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.relay(b"")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {"unparsed": body.decode("utf-8", "replace")}
            with recorder.lock:
                recorder.seen.append((self.path.split("?")[0], parsed))
            self.relay(body)

        def relay(self, body: bytes) -> None:
            path = self.path.removeprefix("/v1")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            reply = recorder.client.request(
                self.command, f"{recorder.upstream}{path}", headers=headers, content=body
            )
            self.send_response(reply.status_code)
            self.send_header("Content-Type", reply.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Relay


@contextmanager
def recording(upstream: str) -> Iterator[tuple[str, Recorder]]:
    """Relay to ``upstream`` (an API root, ``http://HOST:PORT/v1``) from a free loopback
    port; yield this relay's API root and its :class:`Recorder`."""
    recorder = Recorder(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        recorder.client.close()
