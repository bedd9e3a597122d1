"""``thinkq serve``'s upstreams: the ``--upstream`` URLs checked, reached and started.

One ``--upstream`` is the gateway in front of one server; several are replicas of the
same model behind one central queue (``docs/fleet.md``). Startup problems print one
line ``error: ...``: exit code 1 when an upstream cannot be reached (trying again
later may work), 2 for anything the user can fix (a bad or repeated URL, an unknown
model, replicas of a batched server).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import typer

from thinkq.batching.fleet import replicated
from thinkq.cli._app import fail
from thinkq.errors import ProfileError, ServerError
from thinkq.measure.server import Server, check_base_url
from thinkq.profile import Profile
from thinkq.serve import Gateway

__all__ = ["checked_upstreams", "started"]

#: The options of ``thinkq serve`` behind the fields a ServerError names.
_OPTIONS = {"base_url": "--upstream", "model": "--model", "api_key": "--upstream-key-env"}


def checked_upstreams(urls: Sequence[str], profile: Profile) -> list[str]:
    """The ``--upstream`` URLs, each a valid API root and none twice, for a profile
    whose server can be replicated (one-line errors, exit 2)."""
    for url in urls:
        try:
            check_base_url(url)
        except ServerError as exc:
            fail(f"option --upstream: {str(exc).removeprefix('base_url: ')}")
    roots = [url.rstrip("/") for url in urls]
    twice = next((url for k, url in enumerate(roots) if url in roots[:k]), None)
    if twice is not None:
        fail(f"option --upstream: {twice} is given twice (each replica once)")
    try:
        replicated(profile.server, len(urls))
    except ProfileError as exc:
        fail(f"option --upstream: {str(exc).partition(': ')[2]}")
    return list(urls)


async def started(servers: Sequence[Server], build: Callable[[list[Server]], Gateway]) -> Gateway:
    """Check every upstream and the model (the first's unless named), then start the
    gateway; one-line errors."""
    first = servers[0]
    try:
        if first.model:
            await first.check_model()
        elif not (names := await first.models()):
            raise ServerError(f"model: {first.base_url} lists no model", field="model")
        else:
            first.model = names[0]
        for server in servers[1:]:
            server.model = first.model
            await server.check_model()
        gateway = build(list(servers))
        await gateway.start()
    except ServerError as exc:
        for server in servers:
            await server.aclose()
        message = " ".join(str(exc).splitlines())
        option = _OPTIONS.get(exc.field or "")
        if option is not None:  # name the option the user typed, not the library's field
            message = f"option {option}: {message.partition(': ')[2] or message}"
        sys.stderr.write(f"error: {message}\n")
        raise typer.Exit(1 if exc.transient else 2) from None
    return gateway
