"""Budget forcing and cap mode against fake servers: request bodies, exactness, streaming.

The fake server (``fakes.FakeServer``) honours ``max_tokens`` when the end
tokens are suppressed and records every request, so each test checks both what
thinkq sent and what it made of the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from fakes import (
    ANSWER,
    ANSWER_TOKENS,
    BASE_URL,
    BOS,
    MODEL,
    PROMPT_TOKENS,
    Body,
    FakeServer,
    chat_script,
    chatml,
    completion,
    sse,
    thinking_words,
)
from thinkq.errors import ForcingError, ServerError
from thinkq.measure.cap import Capper
from thinkq.measure.forcing import Forcer
from thinkq.measure.generation import Generation, Piece, Sampling
from thinkq.measure.prompts import Cue
from thinkq.measure.server import Server
from thinkq.measure.templates import END_TEXTS, FREE, TAGS, TEMPLATES, Template

T = TypeVar("T")

QUESTION = [{"role": "user", "content": "What is 6 * 7?"}]
CUE = Cue("The answer is", 16, ("\n",))
QWEN3 = TEMPLATES["qwen3"]
IM_END, ENDOFTEXT, THINK_END = 151645, 151643, 151668


def run(fake: FakeServer, action: Callable[[Server], Awaitable[T]]) -> T:
    """Run ``action`` on a :class:`Server` over ``fake``, then close the server."""

    async def main() -> T:
        async with Server(BASE_URL, MODEL, transport=fake.transport()) as server:
            return await action(server)

    return asyncio.run(main())


def force(
    fake: FakeServer,
    budget: int,
    *,
    template: Template | None = QWEN3,
    cue: Cue = CUE,
    seed: int | None = 7,
    **options: Any,
) -> Generation:
    """Prepare a :class:`Forcer` on ``fake`` and generate once."""

    async def action(server: Server) -> Generation:
        forcer = Forcer(server, template=template, **options)
        await forcer.prepare()
        return await forcer.generate(QUESTION, budget, cue=cue, seed=seed)

    return run(fake, action)


def completions(fake: FakeServer) -> list[Body]:
    return fake.bodies("/v1/completions")


# ---------------------------------------------------------------- suppressed tokens


def test_prepare_suppresses_the_single_token_end_texts() -> None:
    fake = FakeServer(family="vllm")

    async def action(server: Server) -> tuple[int, ...] | None:
        forcer = Forcer(server, template=QWEN3)
        await forcer.prepare()
        return forcer.suppress_ids

    assert run(fake, action) == (IM_END, ENDOFTEXT, THINK_END)
    prompts = [b["prompt"] for b in fake.bodies("/tokenize") if "prompt" in b]
    assert prompts == ["<|im_end|>", "", "<|endoftext|>", "</think>"]  # "" is the BOS probe


def test_logit_bias_keys_are_the_tokenizers_ids() -> None:
    fake = FakeServer(family="llama-cpp-python")  # ids come with a BOS, stripped
    force(fake, 4)
    think = completions(fake)[0]
    assert think["logit_bias"] == {str(IM_END): -100, str(ENDOFTEXT): -100, str(THINK_END): -100}
    assert str(BOS) not in think["logit_bias"]


def test_multi_token_texts_are_not_suppressed() -> None:
    # this model has no special "<|endoftext|>": the text is many ordinary tokens
    fake = FakeServer(family="llama.cpp", specials={"<|im_end|>": 7, "</think>": 9})
    force(fake, 3)
    assert completions(fake)[0]["logit_bias"] == {"7": -100, "9": -100}


def test_server_template_tries_every_known_end_text() -> None:
    fake = FakeServer(family="llama.cpp", specials={"<|eot_id|>": 128009, "</s>": 2})
    force(fake, 2, template=None)
    asked = [b["content"] for b in fake.bodies("/tokenize") if b["content"]]
    assert asked == list(END_TEXTS)  # free thinking: no end-of-thinking text of its own
    assert completions(fake)[0]["logit_bias"] == {"128009": -100, "2": -100}


def test_raw_template_falls_back_to_every_known_end_text() -> None:
    fake = FakeServer(family="vllm", specials={"<|endoftext|>": 50256})
    force(fake, 2, template=TEMPLATES["raw"])
    assert completions(fake)[0]["logit_bias"] == {"50256": -100}


def test_no_single_token_end_text_is_an_error() -> None:
    fake = FakeServer(family="vllm", specials={})
    with pytest.raises(ServerError, match="--suppress-ids") as info:
        force(fake, 2)
    assert info.value.field == "suppress_ids"
    assert "<|im_end|>, <|endoftext|>, </think>" in str(info.value)
    assert completions(fake) == []


def test_no_tokenizer_endpoint_is_an_error_naming_suppress_ids() -> None:
    fake = FakeServer(family="openai")
    with pytest.raises(ServerError, match="--suppress-ids") as info:
        force(fake, 2)
    assert info.value.field == "suppress_ids"
    assert completions(fake) == []


def test_given_suppress_ids_skip_the_tokenizer() -> None:
    fake = FakeServer(family="openai")  # no tokenizer at all
    force(fake, 2, suppress_ids=[5, 6])
    assert fake.paths() == ["/v1/completions", "/v1/completions"]
    assert completions(fake)[0]["logit_bias"] == {"5": -100, "6": -100}


def test_generate_before_prepare_is_a_programming_error() -> None:
    async def action(server: Server) -> Generation:
        return await Forcer(server, template=QWEN3).generate(QUESTION, 4, cue=CUE)

    with pytest.raises(RuntimeError, match=r"prepare\(\)"):
        run(FakeServer(), action)


# ---------------------------------------------------------------- the two phases


def test_request_bodies_of_both_phases() -> None:
    fake = FakeServer(family="vllm")
    sampling = Sampling(temperature=0.3, top_p=0.8)
    generation = force(fake, 5, sampling=sampling, seed=11)
    think, answer = completions(fake)
    prompt = QWEN3.render(QUESTION) + "<think>\n"
    assert prompt == (
        "<|im_start|>user\nWhat is 6 * 7?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    bias = {str(IM_END): -100, str(ENDOFTEXT): -100, str(THINK_END): -100}
    assert think == {
        "model": MODEL,
        "prompt": prompt,
        "max_tokens": 5,
        "logit_bias": bias,
        "temperature": 0.3,
        "top_p": 0.8,
        "seed": 11,
    }
    thinking = "".join(thinking_words(5))
    assert answer == {
        "model": MODEL,
        "prompt": prompt + thinking + "\n</think>\n\n" + "The answer is",
        "max_tokens": 16,
        "stop": ["\n"],
        "temperature": 0.3,
        "top_p": 0.8,
        "seed": 11,
    }
    assert generation.thinking == thinking


def test_generation_fields() -> None:
    generation = force(FakeServer(), 6)
    assert generation.budget == 6
    assert generation.thinking_tokens == 6
    assert generation.thinking == " w0 w1 w2 w3 w4 w5"
    assert generation.answer == "The answer is" + ANSWER
    assert generation.answer_tokens == ANSWER_TOKENS
    assert generation.prompt_tokens == PROMPT_TOKENS
    assert generation.mode == "force"
    assert generation.latency_s >= 0


def test_free_thinking_has_no_tags() -> None:
    fake = FakeServer(family="llama.cpp")
    cue = Cue("Answer:", 4, ())
    force(fake, 2, template=TEMPLATES["chatml"], cue=cue, seed=None)
    think, answer = completions(fake)
    assert think["prompt"] == TEMPLATES["chatml"].render(QUESTION)
    assert answer["prompt"] == think["prompt"] + " w0 w1" + "\n\n" + "Answer:"
    assert "stop" not in answer  # a cue without stop strings sends none
    assert "seed" not in think
    assert "seed" not in answer


def test_thinking_can_be_chosen_apart_from_the_template() -> None:
    fake = FakeServer(family="llama.cpp")
    force(fake, 1, template=TEMPLATES["chatml"], thinking=TAGS)
    think, answer = completions(fake)
    assert think["prompt"].endswith("<|im_start|>assistant\n<think>\n")
    assert answer["prompt"].endswith(" w0\n</think>\n\nThe answer is")


@pytest.mark.parametrize("family", ["llama.cpp", "vllm"])
def test_server_rendered_template(family: Any) -> None:
    fake = FakeServer(family=family)
    force(fake, 2, template=None)
    think, answer = completions(fake)
    assert think["prompt"] == chatml(QUESTION)  # free thinking opens with nothing
    assert answer["prompt"] == chatml(QUESTION) + " w0 w1" + FREE.close + CUE.text


def test_budget_zero_sends_one_request() -> None:
    fake = FakeServer()
    generation = force(fake, 0)
    (answer,) = completions(fake)
    assert "logit_bias" not in answer
    assert answer["prompt"] == QWEN3.render(QUESTION) + "<think>\n" + "\n</think>\n\n" + CUE.text
    assert answer["max_tokens"] == CUE.max_tokens
    assert (generation.thinking, generation.thinking_tokens) == ("", 0)
    assert generation.answer == CUE.text + ANSWER
    assert generation.prompt_tokens == PROMPT_TOKENS  # from the answer phase


def test_negative_budget_is_refused() -> None:
    fake = FakeServer()
    with pytest.raises(ValueError, match=r"^budget: "):
        force(fake, -1)
    assert completions(fake) == []


def thinking_reply(text: str, finish: str | None, tokens: int | None) -> Callable[[Body], Body]:
    def complete(body: Body) -> Body:
        if "logit_bias" in body:
            return completion(text, finish, tokens=tokens)
        return completion(ANSWER, "stop", tokens=ANSWER_TOKENS)

    return complete


@pytest.mark.parametrize(
    ("finish", "tokens", "said"),
    [
        ("length", 7, "stopped at 7 of 8 tokens (finish_reason 'length')"),  # fewer tokens
        ("stop", 8, "stopped at 8 of 8 tokens (finish_reason 'stop')"),  # ended by itself
        ("length", None, "stopped at None of 8 tokens"),  # no usage to check
        ("length", 9, "stopped at 9 of 8 tokens"),
        (None, 8, "(finish_reason None)"),
    ],
)
def test_inexact_thinking_raises(finish: str | None, tokens: int | None, said: str) -> None:
    fake = FakeServer(complete=thinking_reply(" w" * 8, finish, tokens))
    with pytest.raises(ForcingError, match="the budget was not enforced") as info:
        force(fake, 8)
    assert said in str(info.value)
    assert isinstance(info.value, ServerError)
    assert len(completions(fake)) == 1  # no answer is asked for


def test_usage_with_a_non_integer_count_raises() -> None:
    def complete(body: Body) -> Body:
        reply = completion(" w", "length", tokens=4)
        reply["usage"]["completion_tokens"] = "4"
        return reply

    with pytest.raises(ForcingError):
        force(FakeServer(complete=complete), 4)


def test_reply_without_choices() -> None:
    fake = FakeServer(complete=lambda body: {"usage": {"completion_tokens": 4}})
    with pytest.raises(ServerError, match="has no choices"):
        force(fake, 4)


def test_server_failure_in_phase_two_propagates() -> None:
    def complete(body: Body) -> Body | httpx.Response:
        if "logit_bias" in body:
            return completion(" w" * 3, "length", tokens=3)
        return httpx.Response(500, json={"error": {"message": "context overflow"}})

    with pytest.raises(ServerError, match="context overflow") as info:
        force(FakeServer(complete=complete), 3)
    assert not isinstance(info.value, ForcingError)


def test_missing_answer_usage_is_counted_by_the_tokenizer() -> None:
    def complete(body: Body) -> Body:
        if "logit_bias" in body:
            return completion(" w", "length", tokens=1)
        return completion(" 42", "stop", tokens=None)

    fake = FakeServer(complete=complete)
    generation = force(fake, 1)
    assert (generation.answer, generation.answer_tokens) == (CUE.text + " 42", 3)
    assert " 42" in [b.get("prompt") for b in fake.bodies("/tokenize")]  # not the cue


@pytest.mark.parametrize("family", ["llama-cpp-python", "vllm"])
def test_plain_and_streamed_count_the_same_answer_tokens_without_usage(family: Any) -> None:
    answer = ("The", " answer", " is", " 42")

    def complete(body: Body) -> Body | httpx.Response:  # the answer phase has no usage
        streamed = body.get("stream")
        if "logit_bias" in body:
            words = thinking_words(body["max_tokens"])
            if not streamed:
                return completion("".join(words), "length", tokens=len(words))
            events = [{"choices": [{"text": w, "finish_reason": None}]} for w in words]
            events[-1]["choices"][0]["finish_reason"] = "length"
            return sse(events)
        if not streamed:
            return completion("".join(answer), "stop", tokens=None)
        return sse([{"choices": [{"text": t, "finish_reason": None}]} for t in answer])

    fake = FakeServer(family=family, complete=complete)
    whole = force(fake, 2)
    pieces = stream(fake, 2)[-1].generation
    assert pieces is not None
    assert whole.answer == pieces.answer == CUE.text + "The answer is 42"
    # the fake's tokenizer: one token per character, whichever path
    assert whole.answer_tokens == pieces.answer_tokens == len("The answer is 42")


def test_sampling_is_passed_per_call() -> None:
    fake = FakeServer()

    async def action(server: Server) -> None:
        forcer = Forcer(server, template=QWEN3, sampling=Sampling(0.1, 0.5))
        await forcer.prepare()
        await forcer.generate(QUESTION, 1, cue=CUE, sampling=Sampling(0.9, 0.7))
        await forcer.generate(QUESTION, 1, cue=CUE)

    run(fake, action)
    sent = [(b["temperature"], b["top_p"]) for b in completions(fake)]
    assert sent == [(0.9, 0.7), (0.9, 0.7), (0.1, 0.5), (0.1, 0.5)]


def test_a_prompt_given_as_text_is_continued_as_it_is() -> None:
    fake = FakeServer()

    async def action(server: Server) -> Generation:
        forcer = Forcer(server, template=QWEN3)
        await forcer.prepare()
        return await forcer.generate("2 + 3 =", 1, cue=CUE)

    run(fake, action)
    think, answer = completions(fake)
    assert think["prompt"] == "2 + 3 =" + "<think>\n"
    assert answer["prompt"] == "2 + 3 =<think>\n w0\n</think>\n\nThe answer is"


# ---------------------------------------------------------------- streaming


def stream(fake: FakeServer, budget: int, *, template: Template | None = QWEN3) -> list[Piece]:
    async def action(server: Server) -> list[Piece]:
        forcer = Forcer(server, template=template)
        await forcer.prepare()
        return [piece async for piece in forcer.stream(QUESTION, budget, cue=CUE, seed=3)]

    return run(fake, action)


def test_stream_pieces_and_final_generation() -> None:
    fake = FakeServer()
    pieces = stream(fake, 3)
    assert [(p.kind, p.text) for p in pieces] == [
        ("thinking", " w0"),
        ("thinking", " w1"),
        ("thinking", " w2"),
        ("answer", CUE.text),
        ("answer", " 4"),
        ("answer", "2"),
        ("done", ""),
    ]
    generation = pieces[-1].generation
    assert generation is not None
    assert generation.thinking == " w0 w1 w2"
    assert generation.answer == CUE.text + ANSWER
    assert (generation.thinking_tokens, generation.answer_tokens) == (3, ANSWER_TOKENS)
    assert generation.prompt_tokens == PROMPT_TOKENS
    assert generation.mode == "force"
    think, answer = completions(fake)
    assert think["stream"] is True
    assert think["stream_options"] == {"include_usage": True}
    assert think["max_tokens"] == 3
    assert set(think["logit_bias"]) == {str(IM_END), str(ENDOFTEXT), str(THINK_END)}
    assert answer["stream"] is True
    assert answer["prompt"] == think["prompt"] + " w0 w1 w2" + TAGS.close + CUE.text
    assert "logit_bias" not in answer


def test_stream_budget_zero_sends_one_request() -> None:
    fake = FakeServer()
    pieces = stream(fake, 0)
    assert [p.kind for p in pieces] == ["answer", "answer", "answer", "done"]
    (answer,) = completions(fake)
    assert answer["prompt"].endswith("<think>\n\n</think>\n\nThe answer is")
    generation = pieces[-1].generation
    assert generation is not None
    assert (generation.thinking, generation.prompt_tokens) == ("", PROMPT_TOKENS)


def streamed_thinking(finish: str | None, usage: int | None) -> Callable[[Body], httpx.Response]:
    def complete(body: Body) -> httpx.Response:
        if "logit_bias" not in body:
            return sse([{"choices": [{"text": " 42", "finish_reason": "stop"}]}])
        events: list[Body] = [{"choices": [{"text": " w", "finish_reason": finish}]}]
        if usage is not None:
            events.append({"choices": [], "usage": {"completion_tokens": usage}})
        return sse(events)

    return complete


@pytest.mark.parametrize(("finish", "usage"), [("stop", 4), ("length", 2), (None, None)])
def test_stream_inexact_thinking_raises(finish: str | None, usage: int | None) -> None:
    fake = FakeServer(complete=streamed_thinking(finish, usage))
    with pytest.raises(ForcingError, match="the budget was not enforced"):
        stream(fake, 4)
    assert len(completions(fake)) == 1


def test_stream_without_usage_trusts_the_finish_reason() -> None:
    fake = FakeServer(complete=streamed_thinking("length", None))
    generation = stream(fake, 4)[-1].generation
    assert generation is not None
    assert generation.thinking_tokens == 4
    assert generation.answer_tokens == 3  # " 42" by the tokenizer: the server sent no usage
    assert generation.prompt_tokens is None


# ---------------------------------------------------------------- cap mode


def chat_reply(
    *,
    reasoning: str = "",
    content: str = " 42",
    usage: Body | None = None,
    key: str = "reasoning_content",
) -> Callable[[Body], Body | httpx.Response]:
    """A chat endpoint that thinks ``reasoning`` in one delta and answers ``content``."""
    return chat_script((reasoning,) if reasoning else (), (content,), usage, keys=(key,))


def cap(fake: FakeServer, budget: int, **options: Any) -> Generation:
    async def action(server: Server) -> Generation:
        capper = Capper(server, **options)
        await capper.prepare()
        return await capper.generate(QUESTION, budget, cue=CUE, seed=5)

    return run(fake, action)


def test_cap_request_body() -> None:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    fake = FakeServer(chat=chat_reply(reasoning="Six sevens.", usage=usage))
    cap(fake, 32, field="thinking_budget_tokens", sampling=Sampling(0.0, 1.0))
    (body,) = fake.bodies("/v1/chat/completions")
    assert body == {
        "model": MODEL,
        "messages": QUESTION,
        "max_tokens": 32 + CUE.max_tokens,
        "thinking_budget_tokens": 32,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }  # the cue's stop ("\n") is applied to the answer by thinkq, not sent


def test_cap_reasoning_tokens_from_usage() -> None:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    fake = FakeServer(chat=chat_reply(reasoning="Six sevens are 42.", usage=usage))
    generation = cap(fake, 32)
    assert generation.thinking_tokens == 20
    assert generation.answer_tokens == 10
    assert generation.prompt_tokens == 12
    assert (generation.thinking, generation.answer) == ("Six sevens are 42.", " 42")
    assert (generation.mode, generation.budget) == ("cap", 32)
    assert "thinking_token_budget" in fake.bodies("/v1/chat/completions")[0]
    assert fake.bodies("/tokenize") == []  # usage was enough


@pytest.mark.parametrize("family", ["llama-cpp-python", "llama.cpp", "vllm"])
@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_cap_counts_the_thinking_by_tokenizer(family: Any, key: str) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 9, "completion_tokens_details": None}
    fake = FakeServer(family=family, chat=chat_reply(reasoning="abc</think>", usage=usage, key=key))
    generation = cap(fake, 8)
    assert generation.thinking == "abc</think>"
    assert generation.thinking_tokens == 4  # a, b, c and the special token; no BOS
    assert generation.answer_tokens == 5


def test_cap_without_thinking_counts_zero() -> None:
    fake = FakeServer(chat=chat_reply(reasoning="", usage=None))
    generation = cap(fake, 0)
    assert (generation.thinking_tokens, generation.answer_tokens) == (0, 3)  # answer tokenized
    assert fake.paths()[0] == "/v1/chat/completions"
    assert {b.get("prompt") for b in fake.bodies("/tokenize")} <= {" 42", "", None}


@pytest.mark.parametrize(
    "usage",
    [
        {"completion_tokens": 70, "completion_tokens_details": {"reasoning_tokens": 65}},
        None,  # counted: 65 characters
    ],
)
def test_cap_over_the_cap_is_an_error(usage: Body | None) -> None:
    fake = FakeServer(chat=chat_reply(reasoning="x" * 65, usage=usage))
    with pytest.raises(ForcingError, match="over a cap of 64") as info:
        cap(fake, 64)
    assert "'thinking_token_budget'" in str(info.value)
    assert "thought for 65 tokens" in str(info.value)


def test_cap_at_the_cap_is_fine() -> None:
    fake = FakeServer(chat=chat_reply(reasoning="x" * 64))
    assert cap(fake, 64).thinking_tokens == 64


def test_cap_on_a_server_without_chat() -> None:
    with pytest.raises(ServerError) as info:
        cap(FakeServer(chat=lambda body: None), 8)
    assert info.value.status == 404


# ---------------------------------------------------------------- latency (a fake clock)


@pytest.mark.parametrize(("budget", "expected"), [(4, 3.0), (0, 1.5)])
@pytest.mark.parametrize("streamed", [False, True])
def test_latency_is_the_time_of_the_generation_requests(
    monkeypatch: pytest.MonkeyPatch, budget: int, expected: float, streamed: bool
) -> None:
    """Each completion takes 1.5 s on the clock; rendering the template 100 s, not counted."""
    clock = [0.0]
    fake = FakeServer(family="llama.cpp")
    served = fake.handle
    costs = {"/apply-template": 100.0, "/v1/completions": 1.5}

    def handle(request: httpx.Request) -> httpx.Response:
        clock[0] += costs.get(request.url.path, 0.0)
        return served(request)

    fake.handle = handle  # type: ignore[method-assign]
    monkeypatch.setattr("thinkq.measure.forcing.time.perf_counter", lambda: clock[0])
    if streamed:
        generation = stream(fake, budget, template=None)[-1].generation
        assert generation is not None
    else:
        generation = force(fake, budget, template=None)
    assert generation.latency_s == expected
    assert fake.paths().count("/apply-template") == 1
