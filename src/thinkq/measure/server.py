"""An OpenAI-compatible LLM server as seen from thinkq: requests, errors, tokenizer.

:class:`Server` wraps an :class:`httpx.AsyncClient` around ``base_url`` (as in the
OpenAI client: ``http://host:port/v1``). Every failure becomes a one-line
:class:`~thinkq.errors.ServerError` that says whose fault it is (``field`` names the
option when it is the user's) and whether trying again may help (``transient``).

The tokenizer and template endpoints are not part of the OpenAI API; each server
family has its own, and :class:`Server` finds the one that answers
(:mod:`thinkq.measure.families`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
from pydantic_core import from_json, to_json

from thinkq.errors import ServerError, ServerUnreachableError
from thinkq.measure.families import find_tokenizer, render, tokenize_with
from thinkq.measure.templates import Message
from thinkq.measure.tokenizer import LocalTokenizer

__all__ = ["Server", "check_base_url"]

#: Seconds to wait for a connection: a server that is down fails fast.
CONNECT_TIMEOUT = 5.0
#: A JSON body's header: pydantic-core writes the bytes httpx's ``json=`` would, faster.
_JSON = {"Content-Type": "application/json"}


def check_base_url(base_url: str) -> None:
    """Raise :class:`ServerError` (field ``base_url``) unless it is an http(s) URL."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        url = httpx.URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise ServerError(
            f"base_url: {base_url!r} is not an http(s) URL such as http://localhost:8000/v1",
            field="base_url",
        )


def _json(response: httpx.Response) -> Any:
    """The response's JSON as ``json.loads`` reads it (a UTF-8 BOM too), by pydantic-core."""
    return from_json(response.content.removeprefix(b"\xef\xbb\xbf"))


def _reason(response: httpx.Response) -> str:
    """The server's own one-line reason for a failed request."""
    try:
        body = _json(response)
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        message = error.get("message") if isinstance(error, dict) else error
    text = str(message) if message else response.text or response.reason_phrase
    return " ".join(text.split())[:200]


class Server:
    """One OpenAI-compatible server and model.

    Parameters
    ----------
    base_url:
        The API root, as in the OpenAI client: ``http://localhost:8000/v1``.
    model:
        The model name sent with every request.
    api_key:
        Sent as ``Authorization: Bearer <key>`` where given.
    timeout:
        Seconds to wait for a reply (a long generation included).
    retries:
        Further attempts after a transient failure (refused connection, timeout, 5xx,
        429), with exponential backoff from ``backoff`` seconds.
    transport:
        The ``httpx`` transport (default: httpx's own; the gateway uses
        :func:`thinkq.serve.upstream.upstream_transport`, tests a mock).
    tokenizer:
        A local tokenizer that :meth:`tokenize` uses instead of the server's.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        retries: int = 0,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        tokenizer: LocalTokenizer | None = None,
    ) -> None:
        check_base_url(base_url)
        if retries < 0:
            raise ValueError(f"retries: must be >= 0, not {retries}")
        if backoff < 0:
            raise ValueError(f"backoff: must be >= 0 seconds, not {backoff}")
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url.removesuffix("/v1")
        self.model = model
        self.retries = retries
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            transport=transport,
        )
        self.tokenizer = tokenizer
        self._urls: dict[str, httpx.URL] = {}  # parsed once: a parse is ~10 us a request
        self._tokenize_style: str | None = None
        self._bos: list[int] | None = None

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ requests

    def _failure(self, url: str, exc: httpx.HTTPError) -> ServerError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            why = str(exc) or (
                "connection refused"
                if isinstance(exc, httpx.ConnectError)
                else f"no connection in {CONNECT_TIMEOUT:g} s"
            )
            return ServerUnreachableError(
                f"base_url: cannot connect to {url} ({why})", field="base_url"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ServerError(f"server: no reply from {url} in time", transient=True)
        return ServerError(f"server: request to {url} failed: {exc}", transient=True)

    def _check(self, url: str, response: httpx.Response) -> None:
        code = response.status_code
        if code < 400:
            return
        reason = _reason(response)
        if code in (401, 403):
            raise ServerError(
                f"api_key: {url} refused the key (HTTP {code}: {reason})",
                field="api_key",
                status=code,
            )
        transient = code >= 500 or code == 429
        raise ServerError(
            f"server: HTTP {code} from {url}: {reason}", status=code, transient=transient
        )

    async def _attempt(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed = self._urls.get(url)
            if parsed is None:
                parsed = self._urls[url] = httpx.URL(url)
            response = await self.http.post(parsed, content=to_json(body), headers=_JSON)
        except httpx.HTTPError as exc:
            raise self._failure(url, exc) from exc
        self._check(url, response)
        try:
            reply = _json(response)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise ServerError(
                f"server: {url} did not reply with a JSON object", status=response.status_code
            )
        return reply

    async def post(self, path: str, body: dict[str, Any], *, root: bool = False) -> dict[str, Any]:
        """POST ``body`` to ``path`` (under ``base_url``, or the server root), retrying."""
        url = (self.root if root else self.base_url) + path
        for attempt in range(self.retries + 1):
            try:
                return await self._attempt(url, body)
            except ServerError as exc:
                if not exc.transient or attempt == self.retries:
                    raise
            await asyncio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any]]:
        """POST ``body`` with ``stream: true`` and yield each server-sent event's JSON."""
        url = self.base_url + path
        try:
            content = to_json({**body, "stream": True})
            async with self.http.stream("POST", url, content=content, headers=_JSON) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._check(url, response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except ValueError as exc:
                        raise ServerError(f"server: {url} sent an event that is not JSON") from exc
                    if isinstance(event, dict):
                        yield event
        except httpx.HTTPError as exc:
            raise self._failure(url, exc) from exc

    # ------------------------------------------------------------------ discovery

    async def _get(self, path: str) -> httpx.Response:
        url = self.base_url + path
        try:
            response = await self.http.get(url)
        except httpx.HTTPError as exc:
            raise self._failure(url, exc) from exc
        if response.status_code == 404 and path == "/models":
            raise ServerError(
                f"base_url: no OpenAI API at {self.base_url} (GET /models gave 404; "
                "the URL usually ends in /v1)",
                field="base_url",
                status=404,
            )
        self._check(url, response)
        return response

    async def get(self, path: str) -> dict[str, Any]:
        """GET ``path`` (under ``base_url``): its JSON object; failures as :class:`ServerError`."""
        response = await self._get(path)
        try:
            reply = _json(response)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise ServerError(
                f"server: {self.base_url + path} did not reply with a JSON object",
                status=response.status_code,
            )
        return reply

    async def models(self) -> list[str]:
        """The model names the server lists at ``GET /models``."""
        response = await self._get("/models")
        try:
            data = _json(response)["data"]
            return [str(entry["id"]) for entry in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(
                f"base_url: {self.base_url}/models is not an OpenAI model list", field="base_url"
            ) from exc

    async def check_model(self) -> None:
        """Fail with a one-line error unless the server lists :attr:`model`."""
        names = await self.models()
        if self.model not in names:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise ServerError(
                f"model: the server has no model {self.model!r} (it has: {shown or 'none'})",
                field="model",
            )

    async def tokenize(self, text: str) -> list[int]:
        """The token ids of ``text`` by the server's tokenizer, special tokens parsed.

        The first call finds the server's endpoint (in the order of
        :mod:`~thinkq.measure.families`) and the ids it puts before every text (a
        beginning-of-sequence token, which llama-cpp-python adds); later calls reuse
        both. The ids returned never start with that beginning of sequence.
        """
        if self.tokenizer is not None:
            return self.tokenizer.encode(text)
        if self._tokenize_style is None:
            self._tokenize_style, tokens, self._bos = await find_tokenizer(self, text)
        else:
            style = self._tokenize_style
            found = await tokenize_with(self, style, text, missing=())
            if found is None:
                raise ServerError(f"server: the {style} tokenizer replied without token ids")
            tokens = found
        bos = self._bos or []
        return tokens[len(bos) :] if bos and tokens[: len(bos)] == bos else tokens

    async def apply_template(self, messages: Sequence[Message]) -> str:
        """``messages`` rendered by the model's own chat template, on the server.

        A leading beginning-of-sequence text is dropped: the completions endpoint adds
        its own when it tokenizes the prompt.
        """
        return await render(self, messages)
