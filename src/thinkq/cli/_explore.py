"""``thinkq explore``: the what-if page on a local port (:mod:`thinkq.explore`)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Annotated

import typer
import uvicorn

from thinkq.cli._app import app, fail, load
from thinkq.cli._law import with_law
from thinkq.cli._options import ProfileArgument, Tau0Option, Tau1Option
from thinkq.explore import create_app

__all__ = ["explore_command"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a one-line error naming the option."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        fail(f"option --host: cannot resolve {host!r}: {getattr(exc, 'strerror', None) or exc}")
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        fail(f"option --port: cannot listen on {where}: {exc.strerror or exc}")
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


@app.command("explore")
def explore_command(
    profile_path: ProfileArgument = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (no key: loopback).")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option("--port", help="Port to bind (0: any free one).", min=0, max=65535)
    ] = 8050,
    tau0: Tau0Option = None,
    tau1: Tau1Option = None,
) -> None:
    """A what-if page: drag rate, alpha, l_max and slots; see the budgets re-solved."""
    profile = with_law(load(profile_path, rate=None, alpha=None, max_tokens=None), tau0, tau1, None)
    application = create_app(profile)
    sock = _bind(host, port)
    if not _loopback(host):
        sys.stderr.write(
            f"warning: --host {host}: the page has no key; anyone who can reach this "
            "address can use it\n"
        )
    sys.stdout.write(f"thinkq explore: open {_url(host, sock)} (Ctrl-C stops it)\n")
    sys.stdout.flush()
    config = uvicorn.Config(application, lifespan="off", access_log=False, log_level="warning")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # pragma: no cover - uvicorn handles the signal itself
        pass
    finally:
        sock.close()
