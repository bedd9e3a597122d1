"""The local tokenizer (a tokenizer.json) standing in for a server's tokenize endpoint."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from thinkq.errors import ServerError
from thinkq.measure.forcing import Forcer
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.measure.tokenizer import LocalTokenizer

VOCAB = {"[UNK]": 0, "hello": 1, "world": 2}
SPECIALS = ["<|im_end|>", "<|endoftext|>", "</think>"]


@pytest.fixture
def tokenizer_json(tmp_path: Path) -> Path:
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(SPECIALS)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_encode_reads_special_tokens_and_adds_none(tokenizer_json: Path) -> None:
    local = LocalTokenizer(tokenizer_json)
    assert local.encode("<|im_end|>") == [3]
    assert local.encode("</think>") == [5]
    assert local.encode("hello world") == [1, 2]
    assert local.encode("") == []


def test_the_server_uses_it_instead_of_asking(tokenizer_json: Path) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(404)

    async def prepare() -> tuple[int, ...] | None:
        local = LocalTokenizer(tokenizer_json)
        transport = httpx.MockTransport(handler)
        async with Server("http://x/v1", "m", transport=transport, tokenizer=local) as server:
            forcer = Forcer(server, template=TEMPLATES["qwen3"])
            await forcer.prepare()
            return forcer.suppress_ids

    assert asyncio.run(prepare()) == (3, 4, 5)  # <|im_end|>, <|endoftext|>, </think>
    assert asked == []


def test_a_missing_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="no such file") as caught:
        LocalTokenizer(tmp_path / "absent.json")
    assert caught.value.field == "tokenizer"


def test_a_file_that_is_not_a_tokenizer(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ServerError, match=r"not a tokenizer\.json") as caught:
        LocalTokenizer(bad)
    assert caught.value.field == "tokenizer"


def test_without_the_package_the_error_says_what_to_install(
    tokenizer_json: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ServerError, match=r"pip install 'thinkq\[tokenizer\]'"):
        LocalTokenizer(tokenizer_json)
