"""The request parser's fast way (pydantic's JSON parser) takes what the checked way takes.

:func:`thinkq.serve.openai.parse` first hands the body to pydantic's own JSON parser
and only where that fails goes step by step (UTF-8, JSON, lone surrogates, fields)
for its messages. So every body the fast way accepts must be accepted by the checked
way too, as the same request; the hostile corpus and hypothesis's bodies check it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_serve_hostile import _FIELDS, _JSON, CORPUS, _hostile_body
from thinkq.errors import BadRequestError
from thinkq.serve.openai import ChatRequest, CompletionRequest, _checked, parse

MODELS = {"chat": ChatRequest, "completion": CompletionRequest}

#: Bodies at the edges of JSON and UTF-8 where two parsers could part ways.
EDGES = [
    b'{"messages":[{"role":"user","content":"a\xff"}]}',  # not UTF-8
    b'{"messages":[{"role":"user","content":"\xed\xa0\x80"}]}',  # a surrogate in UTF-8
    b'{"messages":[{"role":"user","content":"\xc0\xaf"}]}',  # an overlong encoding
    b'{"messages":[{"role":"user","content":"a\nb"}]}',  # a raw control character
    b'\xef\xbb\xbf{"messages":[{"role":"user","content":"x"}]}',  # a byte-order mark
    b'{"messages":[{"role":"user","content":"x"}],}',  # a trailing comma
    b'{"messages":[{"role":"user","content":"x"}],"temperature":NaN}',
    b'{"messages":[{"role":"user","content":"x"}],"metadata":{"n":Infinity}}',
    b'{"messages":[{"role":"user","content":"x"}],"metadata":{"n":1e400}}',
    b'{"messages":[{"role":"user","content":"x"}],"metadata":{"n":-0.0}}',
    b'{"messages":[{"role":"user","content":"x"}],"metadata":{"a":1,"a":2}}',
    b'{"messages":[{"role":"user","content":"x"}],"metadata":{"n":123456789012345678901234567890}}',
    b'{"messages":[{"role":"user","content":"\\u00e9\\ud83d\\ude00"}]}',  # a pair: fine
    b'{"messages":[{"role":"user","content":"\\ud800"}]}',  # a lone one: refused
    b' {"messages":[{"role":"user","content":"x"}]} \n',
    b'{"messages":[{"role":"user","content":"x"}]} x',
    b'{"messages":[{"role":"user","content":"x"}],"max_tokens":"5","seed":1.0,"n":1.0}',
    b'{"messages":[{"role":"user","content":"x"}],"max_tokens":true}',
    b'{"messages":[{"role":"user","content":"x"}],"temperature":"0.5","stop":"\\u0000"}',
    b'{"prompt":["a"],"max_tokens":5.0}',
    b'{"prompt":"a","stream":"true","stream_options":{"include_usage":1}}',
    b'{"prompt":' + b"[" * 300 + b"]" * 300 + b"}",
    b'{"messages":[{"role":"user","content":"x"}],"metadata":' + b'{"a":' * 300 + b"1" + b"}" * 301,
]


def same_either_way(kind: str, body: bytes) -> None:
    """``parse`` and the checked way agree on ``body``: the same request, or both refuse
    it with the same message."""

    def outcome(way: Any) -> Any:
        try:
            return way()
        except BadRequestError as exc:
            return f"BadRequestError: {exc}"

    checked = outcome(lambda: _checked(MODELS[kind], body))
    fast = outcome(lambda: parse(kind, body))  # type: ignore[arg-type]
    if isinstance(checked, str):
        assert fast == checked  # refused by both, with the same message
        return
    assert type(fast) is type(checked)
    assert fast.model_dump() == checked.model_dump()
    assert repr(fast.model_dump()) == repr(checked.model_dump())  # -0.0, NaN


@pytest.mark.parametrize("kind", ["chat", "completion"])
@pytest.mark.parametrize("body", EDGES, ids=range(len(EDGES)))
def test_the_edges_of_json_parse_alike_either_way(kind: str, body: bytes) -> None:
    same_either_way(kind, body)


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_the_hostile_corpus_parses_alike_either_way(kind: str) -> None:
    for case in CORPUS.values():
        same_either_way(kind, case.body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=_FIELDS, value=_JSON, ascii_only=st.booleans(), kind=st.sampled_from(list(MODELS)))
def test_generated_bodies_parse_alike_either_way(
    where: str, value: Any, ascii_only: bool, kind: str
) -> None:
    same_either_way(kind, _hostile_body(where, value, ascii_only))


def test_a_plain_request_takes_the_fast_way() -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    request = parse("chat", body.encode())
    assert isinstance(request, ChatRequest)
    assert request.answer_tokens == 3
    assert request.chat() == [{"role": "user", "content": "hi"}]
