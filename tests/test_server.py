"""The server client: error translation, retries, streaming, tokenizer and template discovery.

Every test talks to a fake server of one family (``fakes.FakeServer``) or to a
handler written for it, through ``httpx.MockTransport``; none touches the network.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from fakes import BASE_URL, BOS, MODEL, FakeServer, chatml, encode
from thinkq.errors import ServerError, ThinkqError
from thinkq.measure.server import Server

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "2 + 2 = ?"},
]


def run(
    handler: Handler | FakeServer,
    action: Callable[[Server], Awaitable[T]],
    *,
    base_url: str = BASE_URL,
    model: str = MODEL,
    **options: Any,
) -> T:
    """Run ``action`` on a :class:`Server` over ``handler``, then close the server."""
    if isinstance(handler, FakeServer):
        transport = handler.transport()
    else:
        transport = httpx.MockTransport(handler)

    async def main() -> T:
        async with Server(base_url, model, transport=transport, **options) as server:
            return await action(server)

    return asyncio.run(main())


def fails(
    handler: Handler | FakeServer, action: Callable[[Server], Awaitable[object]], **options: Any
) -> ServerError:
    """The :class:`ServerError` that ``action`` raises."""
    with pytest.raises(ServerError) as info:
        run(handler, action, **options)
    return info.value


class Recorder:
    """A handler that answers every request with ``responses`` in turn (the last repeats)."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = responses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.responses[min(len(self.requests), len(self.responses)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)


def post() -> Callable[[Server], Awaitable[dict[str, Any]]]:
    """The action of one ``POST /completions``."""
    return lambda server: server.post("/completions", {"prompt": "x"})


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "url", ["localhost:8000/v1", "ftp://host/v1", "http://", "not a url", "http://[::1"]
)
def test_base_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ServerError, match=r"^base_url: .* is not an http") as info:
        Server(url, MODEL)
    assert info.value.field == "base_url"
    assert isinstance(info.value, ThinkqError)


@pytest.mark.parametrize(("option", "value"), [("retries", -1), ("backoff", -0.5)])
def test_negative_retry_options_are_refused(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{option}: "):
        Server(BASE_URL, MODEL, **{option: value})  # type: ignore[arg-type]


def test_server_closes_its_client() -> None:
    async def main() -> Server:
        async with Server(BASE_URL, MODEL, transport=FakeServer().transport()) as server:
            assert not server.http.is_closed
        return server

    assert asyncio.run(main()).http.is_closed


def test_paths_under_base_url_and_root() -> None:
    fake = FakeServer(family="llama.cpp")

    async def action(server: Server) -> None:
        await server.post("/completions", {"model": MODEL, "prompt": "x", "max_tokens": 1})
        await server.post("/tokenize", {"content": "x"}, root=True)

    run(fake, action, base_url="http://llm.test:8000/v1/")  # the trailing slash is dropped
    assert [(c.method, c.path) for c in fake.calls] == [
        ("POST", "/v1/completions"),
        ("POST", "/tokenize"),
    ]
    assert fake.calls[0].body == {"model": MODEL, "prompt": "x", "max_tokens": 1}


@pytest.mark.parametrize(("key", "expected"), [("sk-123", "Bearer sk-123"), (None, None)])
def test_api_key_is_sent_as_bearer(key: str | None, expected: str | None) -> None:
    fake = FakeServer()
    run(fake, lambda server: server.models(), api_key=key)
    assert fake.calls[0].headers.get("authorization") == expected


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("family", ["llama-cpp-python", "llama.cpp", "vllm", "openai"])
def test_models_and_check_model(family: Any) -> None:
    fake = FakeServer(family=family, models=["other", MODEL])
    assert run(fake, lambda server: server.models()) == ["other", MODEL]
    assert run(fake, lambda server: server.check_model()) is None
    assert fake.paths() == ["/v1/models", "/v1/models"]


def test_unknown_model_lists_the_available_ones() -> None:
    fake = FakeServer(models=["qwen3-8b", "smollm2"])
    error = fails(fake, lambda server: server.check_model(), model="qwen3")
    assert error.field == "model"
    assert str(error) == "model: the server has no model 'qwen3' (it has: qwen3-8b, smollm2)"


def test_unknown_model_list_is_shortened() -> None:
    fake = FakeServer(models=[f"m{i}" for i in range(8)])
    error = fails(fake, lambda server: server.check_model(), model="x")
    assert "(it has: m0, m1, m2, m3, m4, ...)" in str(error)
    assert (
        fails(FakeServer(models=[]), lambda s: s.check_model()).args[0].endswith("(it has: none)")
    )


def test_models_404_says_the_url_usually_ends_in_v1() -> None:
    handler = Recorder(httpx.Response(404, json={"detail": "Not Found"}))
    error = fails(handler, lambda server: server.models(), base_url="http://llm.test:8000")
    assert (error.field, error.status, error.transient) == ("base_url", 404, False)
    assert "no OpenAI API at http://llm.test:8000" in str(error)
    assert "the URL usually ends in /v1" in str(error)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>It works!</html>"),
        httpx.Response(200, json={"models": ["a"]}),
        httpx.Response(200, json={"data": [{"name": "a"}]}),
    ],
)
def test_models_that_are_not_a_model_list(response: httpx.Response) -> None:
    error = fails(Recorder(response), lambda server: server.models())
    assert error.field == "base_url"
    assert "is not an OpenAI model list" in str(error)


# ---------------------------------------------------------------- connection failures


def test_connection_refused_is_a_transient_base_url_error() -> None:
    handler = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    error = fails(handler, lambda server: server.check_model())
    assert (error.field, error.transient, error.status) == ("base_url", True, None)
    assert str(error) == (
        f"base_url: cannot connect to {BASE_URL}/models ([Errno 111] Connection refused)"
    )
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_connection_error_without_text_still_says_why() -> None:
    error = fails(Recorder(httpx.ConnectError("")), post())
    assert str(error) == f"base_url: cannot connect to {BASE_URL}/completions (connection refused)"


def test_connect_timeout_blames_the_base_url() -> None:
    error = fails(Recorder(httpx.ConnectTimeout("")), post())
    assert (error.field, error.transient) == ("base_url", True)
    assert "cannot connect to" in str(error)


def test_read_timeout_is_transient_and_the_servers_fault() -> None:
    error = fails(Recorder(httpx.ReadTimeout("timed out")), post())
    assert (error.field, error.transient) == (None, True)
    assert str(error) == f"server: no reply from {BASE_URL}/completions in time"


def test_other_transport_error_is_transient() -> None:
    error = fails(Recorder(httpx.RemoteProtocolError("peer closed")), post())
    assert (error.field, error.transient) == (None, True)
    assert "peer closed" in str(error)


# ---------------------------------------------------------------- HTTP errors and retries


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_names_the_api_key(status: int) -> None:
    handler = Recorder(httpx.Response(status, json={"error": {"message": "Invalid API key"}}))
    error = fails(handler, post(), retries=3, backoff=0)
    assert (error.field, error.status, error.transient) == ("api_key", status, False)
    assert str(error) == (
        f"api_key: {BASE_URL}/completions refused the key (HTTP {status}: Invalid API key)"
    )
    assert len(handler.requests) == 1  # never retried


def test_refused_key_on_models() -> None:
    handler = Recorder(httpx.Response(401, json={"detail": "Unauthorized"}))
    error = fails(handler, lambda server: server.check_model())
    assert error.field == "api_key"
    assert str(error).endswith("(HTTP 401: Unauthorized)")


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_5xx_is_retried_then_raised(retries: int) -> None:
    handler = Recorder(httpx.Response(503, json={"error": {"message": "Service Unavailable"}}))
    error = fails(handler, post(), retries=retries, backoff=0)
    assert len(handler.requests) == retries + 1
    assert (error.status, error.transient, error.field) == (503, True, None)
    assert str(error) == f"server: HTTP 503 from {BASE_URL}/completions: Service Unavailable"


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, text="oops"),
        httpx.Response(429, json={"error": "slow down"}),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
)
def test_transient_failure_then_success(failure: httpx.Response | Exception) -> None:
    handler = Recorder(failure, failure, httpx.Response(200, json={"ok": 1}))
    assert run(handler, post(), retries=2, backoff=0) == {"ok": 1}
    assert len(handler.requests) == 3
    assert all(json.loads(r.content) == {"prompt": "x"} for r in handler.requests)


def test_backoff_doubles_between_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    fails(Recorder(httpx.Response(502)), post(), retries=3, backoff=0.25)
    assert slept == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    handler = Recorder(httpx.Response(status, json={"detail": "bad"}))
    error = fails(handler, post(), retries=3, backoff=0)
    assert (error.status, error.transient) == (status, False)
    assert len(handler.requests) == 1


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            httpx.Response(500, json={"error": {"message": "CUDA  out\nof memory"}}),
            "CUDA out of memory",
        ),
        (httpx.Response(500, json={"error": "plain error"}), "plain error"),
        (httpx.Response(500, json={"detail": "from FastAPI"}), "from FastAPI"),
        (httpx.Response(500, text="Bad Gateway page"), "Bad Gateway page"),
        (httpx.Response(500), "Internal Server Error"),
        (httpx.Response(500, text="x" * 500), "x" * 200),
    ],
)
def test_error_message_carries_the_servers_reason(response: httpx.Response, reason: str) -> None:
    error = fails(Recorder(response), post())
    assert str(error) == f"server: HTTP 500 from {BASE_URL}/completions: {reason}"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>hello</html>"),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, text=""),
    ],
)
def test_reply_that_is_not_a_json_object(response: httpx.Response) -> None:
    handler = Recorder(response)
    error = fails(handler, post(), retries=2, backoff=0)
    assert str(error) == f"server: {BASE_URL}/completions did not reply with a JSON object"
    assert (error.status, error.transient) == (200, False)
    assert len(handler.requests) == 1


BODIES = [
    {"prompt": "x"},
    {"prompt": 'Größe — 2 + 2 = ? 🙂\n\t"q"', "max_tokens": 16, "stop": ["\n", "</s>"]},
    {"temperature": 0.6, "top_p": 1e-7, "seed": -(2**62), "n": None, "logit_bias": {"42": -100}},
    {"big": 1e16, "small": 5e-324, "nested": [[], {}, [True, False, None]]},
]


@pytest.mark.parametrize("body", BODIES)
def test_post_sends_the_bytes_of_json_dumps(body: dict[str, Any]) -> None:
    handler = Recorder(httpx.Response(200, json={"ok": 1}))
    run(handler, lambda server: server.post("/completions", body))
    (sent,) = handler.requests
    assert json.loads(sent.content) == body
    assert sent.headers["content-type"] == "application/json"
    assert int(sent.headers["content-length"]) == len(sent.content)
    if not any(isinstance(v, float) for v in body.values()):  # (1e16: 1e+16 or 1e16)
        assert sent.content == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "content", [b'{"a": "\\u00e9", "n": 12345678901234567890123}', b'\xef\xbb\xbf{"a": 1}']
)
def test_reply_is_read_as_json_loads_reads_it(content: bytes) -> None:
    handler = Recorder(httpx.Response(200, content=content))
    assert run(handler, post()) == json.loads(content)


# ---------------------------------------------------------------- streaming


async def collect(server: Server, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [event async for event in server.stream("/completions", body)]


def test_stream_yields_each_event_until_done() -> None:
    stream = (
        ": keep-alive comment\n\n"
        'data: {"choices": [{"text": "a"}]}\n\n'
        "event: ignored\n"
        'data:{"choices": [{"text": "b"}]}\n\n'
        "data: [1, 2]\n\n"  # not an object: skipped
        "data: [DONE]\n\n"
        'data: {"choices": [{"text": "after done"}]}\n\n'
    )
    handler = Recorder(httpx.Response(200, text=stream))
    events = run(handler, lambda server: collect(server, {"prompt": "p"}))
    assert events == [{"choices": [{"text": "a"}]}, {"choices": [{"text": "b"}]}]
    assert json.loads(handler.requests[0].content) == {"prompt": "p", "stream": True}
    assert handler.requests[0].url.path == "/v1/completions"


def test_stream_of_the_fake_server() -> None:
    fake = FakeServer()
    body = {"model": MODEL, "prompt": "p", "max_tokens": 3, "logit_bias": {"5": -100}}
    events = run(fake, lambda server: collect(server, body))
    texts = [c["text"] for e in events for c in e["choices"]]
    assert texts == [" w0", " w1", " w2"]
    assert events[-1]["choices"][0]["finish_reason"] == "length"  # no usage unless asked
    asked = body | {"stream_options": {"include_usage": True}}
    events = run(fake, lambda server: collect(server, asked))
    usage = {"prompt_tokens": 17, "completion_tokens": 3, "total_tokens": 20}
    assert events[-1] == {"choices": [], "usage": usage}


def test_stream_error_status() -> None:
    handler = Recorder(httpx.Response(503, json={"error": {"message": "loading model"}}))
    error = fails(handler, lambda server: collect(server, {}))
    assert (error.status, error.transient) == (503, True)
    assert str(error).endswith(": loading model")


def test_stream_event_that_is_not_json() -> None:
    handler = Recorder(httpx.Response(200, text="data: {broken\n\n"))
    error = fails(handler, lambda server: collect(server, {}))
    assert str(error) == f"server: {BASE_URL}/completions sent an event that is not JSON"


def test_stream_connection_refused() -> None:
    error = fails(Recorder(httpx.ConnectError("refused")), lambda s: collect(s, {}))
    assert (error.field, error.transient) == ("base_url", True)


# ---------------------------------------------------------------- tokenizer discovery


TOKENIZE_REQUESTS = {
    "llama-cpp-python": [("/extras/tokenize", {"input": "</think>"})],
    "llama.cpp": [
        ("/extras/tokenize", {"input": "</think>"}),
        ("/tokenize", {"content": "</think>", "add_special": False, "parse_special": True}),
    ],
    "vllm": [
        ("/extras/tokenize", {"input": "</think>"}),
        ("/tokenize", {"content": "</think>", "add_special": False, "parse_special": True}),
        ("/tokenize", {"model": MODEL, "prompt": "</think>", "add_special_tokens": False}),
    ],
    "sglang": [
        ("/extras/tokenize", {"input": "</think>"}),
        ("/tokenize", {"content": "</think>", "add_special": False, "parse_special": True}),
        ("/tokenize", {"model": MODEL, "prompt": "</think>", "add_special_tokens": False}),
        ("/v1/tokenize", {"model": MODEL, "prompt": "</think>"}),
    ],
}


@pytest.mark.parametrize("family", list(TOKENIZE_REQUESTS))
def test_tokenizer_discovery_order(family: Any) -> None:
    fake = FakeServer(family=family)

    async def action(server: Server) -> list[list[int]]:
        return [await server.tokenize("</think>"), await server.tokenize("ab")]

    assert run(fake, action) == [[151668], [1000 + ord("a"), 1000 + ord("b")]]
    discovery = TOKENIZE_REQUESTS[family]
    found_path, found_body = discovery[-1]
    key = next(k for k in ("input", "content", "prompt") if k in found_body)
    expected = [
        *discovery,
        (found_path, {**found_body, key: ""}),  # the beginning-of-sequence probe
        (found_path, {**found_body, key: "ab"}),  # the endpoint is cached
    ]
    assert [(c.path, c.body) for c in fake.calls] == expected


def test_bos_is_stripped() -> None:
    fake = FakeServer(family="llama-cpp-python")

    async def action(server: Server) -> list[list[int]]:
        return [await server.tokenize(t) for t in ("<|im_end|>", "x", "")]

    assert run(fake, action) == [[151645], [1000 + ord("x")], []]
    # the empty text is tokenized once to learn the BOS, then once as asked
    assert [c.body["input"] for c in fake.calls] == ["<|im_end|>", "", "x", ""]


def test_bos_is_stripped_only_at_the_start() -> None:
    fake = FakeServer(family="llama-cpp-python", specials={"<s>": BOS, "</s>": 2})
    # the server's reply is [BOS, BOS, 2]: the text's own "<s>" stays
    assert run(fake, lambda server: server.tokenize("<s></s>")) == [BOS, 2]


def test_no_tokenizer_names_suppress_ids() -> None:
    fake = FakeServer(family="openai")
    error = fails(fake, lambda server: server.tokenize("</think>"))
    assert error.field == "suppress_ids"
    assert "--suppress-ids" in str(error)
    assert fake.paths() == ["/extras/tokenize", "/tokenize", "/tokenize", "/v1/tokenize"]


def test_tokenizer_reply_without_ids_is_not_a_tokenizer() -> None:
    handler = Recorder(httpx.Response(200, json={"tokens": [{"id": 5, "piece": "a"}]}))
    error = fails(handler, lambda server: server.tokenize("a"))
    assert error.field == "suppress_ids"
    assert len(handler.requests) == 4  # the four styles, none of which gave ids


def test_tokenizer_server_error_is_raised_not_skipped() -> None:
    handler = Recorder(httpx.Response(500, json={"error": {"message": "tokenizer crashed"}}))
    error = fails(handler, lambda server: server.tokenize("a"))
    assert (error.status, error.field) == (500, None)
    assert "tokenizer crashed" in str(error)
    assert len(handler.requests) == 1


def test_cached_tokenizer_that_stops_answering() -> None:
    fake = FakeServer(family="llama.cpp")

    async def action(server: Server) -> None:
        await server.tokenize("a")
        fake.family = "openai"  # the endpoint disappears
        await server.tokenize("b")

    error = fails(fake, action)
    assert error.status == 404
    assert fake.paths()[-1] == "/tokenize"


def test_encode_helper() -> None:
    assert encode("a<|im_end|>b", {"<|im_end|>": 7}) == [1000 + ord("a"), 7, 1000 + ord("b")]


# ---------------------------------------------------------------- chat template on the server


def test_apply_template_llama_cpp() -> None:
    fake = FakeServer(family="llama.cpp")
    assert run(fake, lambda server: server.apply_template(MESSAGES)) == chatml(MESSAGES)
    assert [(c.path, c.body) for c in fake.calls] == [("/apply-template", {"messages": MESSAGES})]


def test_apply_template_vllm_tokenizes_then_detokenizes() -> None:
    fake = FakeServer(family="vllm")
    assert run(fake, lambda server: server.apply_template(MESSAGES)) == chatml(MESSAGES)
    ids = encode(chatml(MESSAGES), fake.specials)
    assert [(c.path, c.body) for c in fake.calls] == [
        ("/apply-template", {"messages": MESSAGES}),
        ("/tokenize", {"model": MODEL, "messages": MESSAGES, "add_generation_prompt": True}),
        ("/detokenize", {"model": MODEL, "tokens": ids}),
    ]


@pytest.mark.parametrize("family", ["llama-cpp-python", "openai"])
def test_apply_template_without_a_template_endpoint(family: Any) -> None:
    fake = FakeServer(family=family)
    error = fails(fake, lambda server: server.apply_template(MESSAGES))
    assert error.field == "template"
    assert "--template (chatml, qwen3, deepseek-r1, llama3, raw)" in str(error)
    assert fake.paths() == ["/apply-template", "/tokenize"]


@pytest.mark.parametrize(
    "bos", ["<|begin_of_text|>", "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<bos>", "<s>"]
)
def test_apply_template_drops_a_leading_bos(bos: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"prompt": f"{bos}<|user|>hi{bos}<|assistant|>"})

    rendered = run(handler, lambda server: server.apply_template(MESSAGES))
    assert rendered == f"<|user|>hi{bos}<|assistant|>"  # only the leading one goes


def test_apply_template_reads_llama_cpp_detokenize_content() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/apply-template":
            return httpx.Response(404)
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": [5, 6]})
        return httpx.Response(200, json={"content": "<|user|>hi<|assistant|>"})

    assert run(handler, lambda server: server.apply_template(MESSAGES)) == "<|user|>hi<|assistant|>"


def test_apply_template_server_failure_is_raised() -> None:
    handler = Recorder(httpx.Response(500, json={"error": {"message": "template error"}}))
    error = fails(handler, lambda server: server.apply_template(MESSAGES))
    assert (error.status, error.field) == (500, None)
    assert len(handler.requests) == 1


def test_apply_template_tokenize_reply_without_tokens() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"count": 0})
        return httpx.Response(404, json={"detail": "Not Found"})

    error = fails(handler, lambda server: server.apply_template(MESSAGES))
    assert error.field == "template"
    assert paths == ["/apply-template", "/tokenize"]  # nothing to detokenize
