"""``thinkq serve`` (the gateway on uvicorn) and ``thinkq loadtest`` (Poisson load).

Startup problems print one line ``error: ...``: exit code 1 when an upstream cannot
be reached (trying again later may work), 2 for anything the user can fix (a bad
profile, an unknown model or template, an unset key variable). ``--upstream`` is
repeatable: replicas behind one queue (:mod:`thinkq.cli._upstreams`). ``--state`` shares
one plan with other gateways through Redis (:mod:`thinkq.fleet`); Redis down at start
is not an error (the gateway solves alone until it answers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from thinkq.cli import _slo
from thinkq.cli._app import api_key, app, fail, integers, load
from thinkq.cli._options import slo_option
from thinkq.cli._upstreams import checked_upstreams, started
from thinkq.errors import ServerError
from thinkq.fleet import Member, Store, check_url
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES, get_template
from thinkq.measure.tokenizer import LocalTokenizer
from thinkq.profile import Profile
from thinkq.serve import Gateway, create_app
from thinkq.serve.app import DEFAULT_BODY_LIMIT, DEFAULT_MAX_TOKENS
from thinkq.serve.connections import (
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_HEADER,
    DEFAULT_READ_TIMEOUT,
    GatewayServer,
    server_config,
    settle_heap,
)
from thinkq.serve.upstream import upstream_transport

__all__ = ["ModeChoice", "context_length", "serve_command"]

TEMPLATE_NAMES = ", ".join([*TEMPLATES, "server"])


class ModeChoice(StrEnum):
    """Values of ``--mode``: exact budgets (budget forcing) or the server's own cap."""

    force = "force"
    cap = "cap"


async def context_length(server: Server) -> int | None:
    """The model's context in tokens where the upstream lists it (``max_model_len`` in
    ``/v1/models``: vLLM, SGLang), else ``None``."""
    try:
        listing = await server.get("/models")
    except ServerError:
        return None
    entries = listing.get("data")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == server.model:
            length = entry.get("max_model_len")
            if isinstance(length, int) and not isinstance(length, bool) and length > 0:
                return length
    return None


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run the gateway on uvloop where it is installed (not on Windows), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


# long: the signature declares its 26 options (Typer) and the body
# the gateway's startup, which reads them all.
@app.command("serve")
def serve_command(
    upstream: Annotated[
        list[str],
        typer.Option(
            "--upstream",
            help="The server's API root: http://host:port/v1 (repeatable: replicas of it).",
        ),
    ],
    profile_path: Annotated[
        Path, typer.Option("--profile", help="The fitted profile (.toml or .json).")
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (default: the upstream's first).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.", min=0, max=65535)] = 8000,
    mode: Annotated[
        ModeChoice, typer.Option("--mode", help="force: exact budgets; cap: server's cap.")
    ] = ModeChoice.force,
    template: Annotated[
        str, typer.Option("--template", help=f"Chat template of force mode ({TEMPLATE_NAMES}).")
    ] = "server",
    budget_field: Annotated[
        str,
        typer.Option("--budget-field", help="Request field of cap mode (vLLM's by default)."),
    ] = "thinking_token_budget",
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            help="Requests served at once (default: the profile's server.slots, else 1).",
            min=1,
        ),
    ] = None,
    resolve_every: Annotated[
        float, typer.Option("--resolve-every", help="Seconds between re-solves.", min=0.01)
    ] = 5.0,
    window: Annotated[
        float, typer.Option("--window", help="Seconds of history of the estimates.", min=0.01)
    ] = 60.0,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body, bytes; larger get 413.", min=1)
    ] = DEFAULT_BODY_LIMIT,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            help="Largest max_tokens a request may ask; more get 400 "
            f"(default: the upstream's context where it says, else {DEFAULT_MAX_TOKENS}).",
            min=1,
        ),
    ] = None,
    max_header: Annotated[
        int,
        typer.Option("--max-header", help="Largest request head, bytes; larger get 431.", min=1),
    ] = DEFAULT_MAX_HEADER,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout", help="Seconds a request may take to arrive whole; then 408.", min=0.01
        ),
    ] = DEFAULT_READ_TIMEOUT,
    keep_alive: Annotated[
        int,
        typer.Option("--keep-alive", help="Seconds an idle connection stays open.", min=1),
    ] = DEFAULT_KEEP_ALIVE,
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Requests allowed to wait; more get 503.", min=0)
    ] = 64,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="Environment variable holding the gateway's key."),
    ] = None,
    upstream_key_env: Annotated[
        str | None,
        typer.Option("--upstream-key-env", help="Environment variable holding the upstream's key."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the upstream.", min=0.01)
    ] = 600.0,
    refit: Annotated[
        bool,
        typer.Option("--refit", help="Refit each type's latency line from live service times."),
    ] = False,
    log_prompts: Annotated[
        bool, typer.Option("--log-prompts", help="Log each request's last user message.")
    ] = False,
    suppress_ids: Annotated[
        str | None,
        typer.Option(
            "--suppress-ids",
            help="Token ids to suppress while thinking (default: from the upstream's tokenizer).",
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            help="The model's tokenizer.json, for an upstream without a tokenize endpoint.",
        ),
    ] = None,
    slo: Annotated[
        list[str] | None,
        slo_option("re-solve under it instead of alpha, and admit only what it allows."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="URL",
            help="Share one plan with the other gateways through Redis: redis://HOST:PORT/DB.",
        ),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible API that gives each request its optimal budget."""
    profile = load(profile_path, rate=None, alpha=None, max_tokens=None)
    concurrency = _concurrency(profile, concurrency)
    slo_objectives = _slo.objectives(slo, profile) if slo else ()
    key = api_key(api_key_env)
    upstream_key = api_key(upstream_key_env, option="--upstream-key-env")
    try:
        chat_template = get_template(template) if mode is ModeChoice.force else None
    except ValueError as exc:
        fail(f"option --template: {str(exc).removeprefix('template: ')}")
    ids = integers(suppress_ids, "--suppress-ids") if suppress_ids else None
    try:
        local = LocalTokenizer(tokenizer) if tokenizer is not None else None
    except ServerError as exc:
        fail(f"option --tokenizer: {str(exc).removeprefix('tokenizer: ')}")
    upstreams = checked_upstreams(upstream, profile)
    try:
        shared = None if state is None else check_url(state)
    except ValueError as exc:
        fail(f"option --state: {str(exc).removeprefix('state: ')}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    if profile.server is None and concurrency > 1:
        logging.getLogger("thinkq.serve").warning(
            "the profile has no [server] table: budgets and predictions are the one-at-a-time "
            "M/G/1 model's although %d requests are served at once (measure the server with "
            "thinkq profile --slots and fit it)", concurrency,
        )  # fmt: skip

    def build(servers: list[Server]) -> Gateway:
        gateway = Gateway(
            profile,
            servers,
            mode=mode.value,
            template=chat_template,
            budget_field=budget_field,
            concurrency=concurrency,
            max_queue=max_queue,
            window=window,
            resolve_every=resolve_every,
            refit=refit,
            log_prompts=log_prompts,
            suppress_ids=ids,
            objectives=slo_objectives,
        )
        if shared is not None:  # one plan for the fleet (Redis off the request path)
            Member.joining(Store(shared), gateway)
        return gateway

    async def main() -> None:
        servers = [
            Server(
                url, model or "", api_key=upstream_key, timeout=timeout, tokenizer=local,
                transport=upstream_transport(max(100, concurrency)),
            )
            for url in upstreams
        ]  # fmt: skip
        gateway = await started(servers, build)
        answer_limit = max_tokens or await context_length(servers[0]) or DEFAULT_MAX_TOKENS
        budgets = gateway.state()["budgets"]
        log = logging.getLogger("thinkq.serve")
        if profile.default_task is None:
            log.warning(
                "the profile has no default_task: requests that name no task (X-Thinkq-Task, "
                "metadata.task) and match no rule get 400"
            )
        log.info(
            "gateway for %s (%s mode) at http://%s:%d/v1, budgets %s",
            gateway.server.model, mode.value, host, port, budgets,
        )  # fmt: skip
        sign_in = " (sign in once with ?key=<the key>)" if key else ""
        log.info("live page at http://%s:%d/thinkq/%s", host, port, sign_in)
        app = create_app(gateway, api_key=key, body_limit=max_body, max_tokens=answer_limit)
        config = server_config(app, host=host, port=port, max_header=max_header,
                               read_timeout=read_timeout, keep_alive=keep_alive)  # fmt: skip
        settle_heap()  # the start's objects out of the collector's full passes
        gateway.books.activity.start()  # and its passes between requests
        try:
            await GatewayServer(config, before_exit=gateway.books.lines.flush).serve()
        finally:
            gateway.books.activity.stop()
            await gateway.stop()

    _run(main())


def _concurrency(profile: Profile, concurrency: int | None) -> int:
    """``--concurrency``: the profile's ``server.slots`` unless given; a different value
    is an error, since the model would describe another server than the one served."""
    server = profile.server
    if concurrency is None:
        return 1 if server is None else server.slots
    if server is not None and concurrency != server.slots:
        fail(
            f"option --concurrency: {concurrency} differs from the profile's server.slots = "
            f"{server.slots}: the batched model describes a server with {server.slots} slots; "
            f"pass --concurrency {server.slots} or change the profile's [server] table"
        )
    return concurrency
