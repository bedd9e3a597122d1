"""A fake server of :mod:`fakes` on a loopback port, for a ``thinkq`` subprocess.

:class:`fakes.FakeServer` answers in-process (an ``httpx.MockTransport``); a command run
as a subprocess needs a real socket. :func:`serving` relays each HTTP request on
127.0.0.1 to the fake's handler, one at a time, and writes back its reply.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from fakes import FakeServer

__all__ = ["serving"]


def _handler(fake: FakeServer, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.relay()

        def do_POST(self) -> None:
            self.relay()

        def relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = httpx.Request(
                self.command, f"http://127.0.0.1{self.path}", headers=dict(self.headers),
                content=body,
            )  # fmt: skip
            with lock:
                reply = asyncio.run(self.answer(request))
            self.send_response(reply.status_code)
            self.send_header("Content-Type", reply.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)

        @staticmethod
        async def answer(request: httpx.Request) -> httpx.Response:
            reply = await fake.handle(request)
            await reply.aread()
            return reply

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Relay


@contextmanager
def serving(fake: FakeServer) -> Iterator[str]:
    """Serve ``fake`` on a free loopback port; yield its API root (``.../v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake, threading.Lock()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
