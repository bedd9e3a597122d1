"""The gateway's HTTP face: a Starlette app over a :class:`~thinkq.serve.gateway.Gateway`.

==========================  ==============================================================
endpoint                    what it does
==========================  ==============================================================
POST /v1/chat/completions   a chat request with its type's budget (streamed or not)
POST /v1/completions        a completion request with its type's budget
GET  /v1/models             the upstream's model list, passed through
GET  /thinkq/state          budgets, estimates, predicted and measured mean system time
GET  /thinkq/               the live page (``docs/dashboard.md``; a browser signs in with
                            ``?key=``, see :mod:`thinkq.serve.dashboard.auth`)
GET  /thinkq/dashboard.json what the page shows: figures, budgets, history, frontier
GET  /metrics               Prometheus metrics
GET  /healthz               ``{"status": "ok"}``; the only endpoint open without the key
==========================  ==============================================================

Statuses, all mapped in one place (:func:`_failure`): a
:class:`~thinkq.errors.GatewayError` answers with its own ``status`` and ``kind``
(400 for a bad request, an unknown task or a prompt the upstream says is longer than
its context, 413 for a body over the limit, 503 with ``Retry-After`` when the
gateway protects the server, 499 for a client that left, which it never sees); a
:class:`~thinkq.errors.ServerError` of the upstream is 502 with the upstream's
reason; 401 for a missing or wrong key. Every request to the generation endpoints
is counted once in ``thinkq_requests_total`` (see :func:`create_app`). The app does
not start or stop the gateway: run it inside ``async with gateway:``.
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from thinkq.errors import (
    BadRequestError,
    BodyTooLargeError,
    DisconnectedError,
    GatewayError,
    OverloadedError,
    RoutingError,
    ServerError,
)
from thinkq.measure.generation import Sampling
from thinkq.measure.prompts import Cue
from thinkq.serve.dashboard import SignIn, dashboard_routes
from thinkq.serve.events import EventStream
from thinkq.serve.gateway import Gateway
from thinkq.serve.metrics import Metrics
from thinkq.serve.openai import ChatRequest, CompletionRequest, Kind, Reply, error_body, parse
from thinkq.serve.request import Job
from thinkq.serve.routing import TASK_HEADER, last_user_text

__all__ = ["DEFAULT_BODY_LIMIT", "DEFAULT_MAX_TOKENS", "create_app"]

#: Largest request body accepted, bytes.
DEFAULT_BODY_LIMIT = 1 << 20
#: Largest answer (``max_tokens``) a request may ask for, tokens.
DEFAULT_MAX_TOKENS = 32_768
#: The endpoints open without the API key.
OPEN_PATHS = frozenset({"/healthz"})
#: The endpoints whose requests are counted in ``thinkq_requests_total``.
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
#: The sampling of a request that sets neither temperature nor top_p (frozen: shared).
_DEFAULT_SAMPLING = Sampling()


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(message, kind), status_code=status, headers=headers)


def _failure(exc: GatewayError | ServerError) -> Response:
    """The response to a request the gateway refused or the upstream failed."""
    if isinstance(exc, ServerError):
        return _error(502, f"upstream: {exc}", "upstream_error")
    if isinstance(exc, DisconnectedError):
        return Response(status_code=exc.status)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, OverloadedError) else None
    return _error(exc.status, str(exc), exc.kind, headers)


class _Auth:
    """Requires ``Authorization: Bearer <key>`` (constant-time compare) except on /healthz.

    The scheme's case does not matter (``bearer`` too: RFC 7235, section 2.1).
    """

    def __init__(self, app: ASGIApp, *, api_key: str, metrics: Metrics) -> None:
        self.app = app
        self.expected = api_key.encode()
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            scheme, _, key = given.partition(b" ")
            matches = hmac.compare_digest(key.lstrip(b" "), self.expected)
            if not (matches and scheme.lower() == b"bearer"):
                if scope["path"] in GENERATION_PATHS:
                    self.metrics.outcome("", "unauthorized")
                message = "unauthorized: send the gateway's key as Authorization: Bearer <key>"
                response = _error(401, message, "authentication_error")
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _body(request: Request, limit: int) -> bytes:
    """The request's body; :class:`BodyTooLargeError` past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    digits = declared.lstrip("0")  # (int() of 5,000 digits is an error of its own)
    if declared.isascii() and declared.isdigit() and int(digits[:19] or "0") > limit:
        raise BodyTooLargeError(f"body: larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"body: larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise DisconnectedError("the client left while sending its request") from None
    return b"".join(chunks)


def _admit(
    gateway: Gateway, request: Request, kind: Kind, body: bytes, max_tokens: int
) -> tuple[Job, Reply, ChatRequest | CompletionRequest]:
    """Parse, route and admit a request (see :meth:`Gateway.admit`)."""
    query = parse(kind, body)
    if query.answer_tokens > max_tokens:
        raise BadRequestError(f"max_tokens: must be at most {max_tokens}")
    if isinstance(query, ChatRequest):
        messages = query.chat()
        text = last_user_text(messages)
    else:
        text = query.text()
        messages = [{"role": "user", "content": text}]
    task = gateway.router.route(
        header=request.headers.get(TASK_HEADER), metadata=query.metadata, text=text
    )
    sampling = _DEFAULT_SAMPLING
    if query.temperature is not None or query.top_p is not None:
        sampling = Sampling(
            temperature=sampling.temperature if query.temperature is None else query.temperature,
            top_p=sampling.top_p if query.top_p is None else query.top_p,
        )
    cue = Cue("", query.answer_tokens, query.stops)
    job = gateway.admit(
        task, kind=kind, messages=messages, text=text, cue=cue, sampling=sampling, seed=query.seed
    )
    reply = Reply(kind, model=gateway.server.model, answer_tokens=query.answer_tokens)
    return job, reply, query


async def _generate(
    gateway: Gateway, request: Request, kind: Kind, body_limit: int, max_tokens: int
) -> Response:
    """Serve one generation request, from its body to its response."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    # Each request is counted once: here until it is admitted (under task ""),
    # by admission when refused, by its books (request.served) once in the queue.
    try:
        body = await _body(request, body_limit)
        job, reply, query = _admit(gateway, request, kind, body, max_tokens)
    except DisconnectedError as exc:
        gateway.metrics.outcome("", "disconnected")
        return _failure(exc)
    except (BadRequestError, RoutingError) as exc:
        gateway.metrics.outcome("", "bad_request")
        return _failure(exc)
    except GatewayError as exc:
        return _failure(exc)
    try:
        if query.stream:
            source = gateway.stream(job, disconnected)
            first = await anext(source)  # waiting and the first upstream reply
            return EventStream(
                reply, first, source, usage=query.usage_in_stream,
                activity=gateway.books.activity,
            )  # fmt: skip
        generation = await gateway.complete(job, disconnected)
    except (GatewayError, ServerError) as exc:
        return _failure(exc)
    # the bytes Starlette's JSONResponse would write, by pydantic-core's encoder (faster)
    return Response(to_json(reply.response(generation)), media_type="application/json")


def create_app(
    gateway: Gateway,
    *,
    api_key: str | None = None,
    body_limit: int = DEFAULT_BODY_LIMIT,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ASGIApp:
    """The ASGI app of ``gateway``; with ``api_key``, every endpoint but /healthz needs it.

    ``body_limit`` is the largest body (bytes; 413 beyond), ``max_tokens`` the largest
    answer a request may ask for (``max_tokens`` or ``max_completion_tokens``; 400
    beyond). The generation requests in progress are counted in the gateway's
    ``books.activity`` (:mod:`thinkq.serve.collector`).
    """
    quiet = gateway.books.activity

    async def generate(request: Request, kind: Kind) -> Response:
        quiet.enter()
        try:
            return await _generate(gateway, request, kind, body_limit, max_tokens)
        finally:
            quiet.leave()

    async def chat(request: Request) -> Response:
        return await generate(request, "chat")

    async def completions(request: Request) -> Response:
        return await generate(request, "completion")

    async def models(request: Request) -> Response:
        try:
            return JSONResponse(await gateway.server.get("/models"))
        except ServerError as exc:
            return _failure(exc)

    async def state(request: Request) -> Response:
        return JSONResponse(gateway.state())

    async def metrics(request: Request) -> Response:
        gateway.publish()
        return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app: ASGIApp = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/thinkq/state", state, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            *dashboard_routes(gateway),
        ]
    )
    if api_key is None:
        return app
    return SignIn(_Auth(app, api_key=api_key, metrics=gateway.metrics), app, api_key=api_key)
