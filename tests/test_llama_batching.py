"""llama.cpp's own ``llama-server``, built portably from source: it runs and it batches."""

from __future__ import annotations

import asyncio
import re
import subprocess

import httpx

from llama_build import llama_server_binary
from llama_server import LlamaServer, free_port, gguf_path

FORCED = 48  # tokens each request must generate (the end of sequence is ignored)


def _system_info() -> str:
    """The ``system_info`` line ``llama-server -v`` logs at start (the build's CPU features)."""
    command = [
        str(llama_server_binary()), "-m", str(gguf_path()), "--host", "127.0.0.1",
        "--port", str(free_port()), "-c", "512", "-v",
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:  # logged before the model loads
                if "system_info" in line:
                    return line
            raise AssertionError("llama-server logged no system_info line")
        finally:
            process.kill()


def test_llama_server_is_built_without_native_cpu_tuning() -> None:
    info = _system_info()
    features = dict(re.findall(r"(\w+) = (\d)", info))
    assert features.get("AVX2") == "1", info  # the portable baseline ...
    tuned = [k for k, on in features.items() if on == "1" and ("AVX512" in k or "AMX" in k)]
    assert tuned == [], info  # ... and nothing of the build machine's own CPU


async def _busy_slots(client: httpx.AsyncClient, root: str, done: asyncio.Event) -> int:
    """The most slots seen processing at once while the requests run."""
    most = 0
    while not done.is_set():
        slots = (await client.get(f"{root}/slots")).json()
        most = max(most, sum(1 for slot in slots if slot.get("is_processing")))
        await asyncio.sleep(0.02)
    return most


def test_llama_server_decodes_several_requests_at_once(
    llama_batching_server: LlamaServer,
) -> None:
    base = llama_batching_server.base_url
    root = base.removesuffix("/v1")
    body = {
        "model": llama_batching_server.model,
        "prompt": "Write a long story about a lighthouse keeper.",
        "max_tokens": FORCED,
        "ignore_eos": True,
        "temperature": 0,
    }

    async def main() -> tuple[list[httpx.Response], int]:
        async with httpx.AsyncClient(timeout=120) as client:
            done = asyncio.Event()
            watcher = asyncio.create_task(_busy_slots(client, root, done))
            replies = await asyncio.gather(
                *(client.post(f"{base}/completions", json=body) for _ in range(4))
            )
            done.set()
            return list(replies), await watcher

    replies, most = asyncio.run(main())
    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] == FORCED
    assert most >= 2  # continuous batching: more than one slot decoding at a time
