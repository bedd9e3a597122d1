"""Shared fixtures: profile documents written as TOML or JSON files, good and broken.

``bad_profile`` is parametrised over every validation rule of a profile file, so the
same table drives the API tests (tests/test_profile.py) and the command-line tests
(tests/test_cli.py): each case says which exception, field and task it must name.
"""

from __future__ import annotations

import os

# LiteLLM fetches its model cost map from GitHub on import unless told not to; a test
# that imports it (tests/test_api.py walks every module) would otherwise print the
# failed fetch into the stderr another test captures
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import json
import math
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import llama_server as llama_server_module
from llama_server import LlamaServer
from thinkq import ProfileError, ProfileFileError, UnstableLoadError

Document = dict[str, Any]

# task order of the paper's Table I (the embedded profile)
AIME, GSM8K, GPQA, CRUXEVAL, BBH, ARC = range(6)


def paper_document() -> Document:
    """The embedded profile file (the paper's Table I) as a fresh dict."""
    text = resources.files("thinkq").joinpath("data/paper.toml").read_text("utf-8")
    return tomllib.loads(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(doc: Document) -> str:
    """A small TOML writer for profile documents (tomllib only reads)."""
    tasks = doc.get("tasks")
    table_array = (
        isinstance(tasks, list) and bool(tasks) and all(isinstance(t, dict) for t in tasks)
    )
    lines = [
        f"{key} = {_toml_value(value)}"
        for key, value in doc.items()
        if not (key == "tasks" and table_array)
    ]
    if table_array:
        assert isinstance(tasks, list)
        for task in tasks:
            lines += ["", "[[tasks]]", *(f"{k} = {_toml_value(v)}" for k, v in task.items())]
    return "\n".join(lines) + "\n"


def write_document(path: Path, doc: Document) -> Path:
    """Write ``doc`` as TOML or JSON (non-finite floats as NaN/Infinity) by suffix."""
    if path.suffix == ".toml":
        path.write_text(to_toml(doc), encoding="utf-8")
    else:
        path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def write_profile(tmp_path: Path) -> Callable[..., Path]:
    """Write a profile document to ``tmp_path/name`` (TOML or JSON by suffix)."""

    def write(doc: Document, name: str = "profile.toml") -> Path:
        return write_document(tmp_path / name, doc)

    return write


def many_tasks_document(n: int) -> Document:
    """A stable profile with ``n`` distinct task types (deterministic)."""
    tasks = [
        {
            "name": f"type-{k:03d}",
            "share": 1.0 + (k % 3),
            "A": 0.2 + 0.6 * ((k * 37) % 100) / 100,
            "b": 10 ** (-3.5 + 2.5 * ((k * 53) % 100) / 100),
            "D": 0.1 * (k % 2),
            "t0": 0.05 + 0.1 * ((k * 11) % 10) / 10,
            "c": 0.010 + 0.004 * ((k * 7) % 10) / 10,
        }
        for k in range(n)
    ]
    return {"rate": 0.1, "alpha": 30.0, "max_tokens": 32768, "tasks": tasks}


# --------------------------------------------------------------------------- bad files


@dataclass(frozen=True)
class BadProfile:
    """A profile file that must be rejected, and what the rejection must say.

    ``edit`` changes a copy of the paper's document (or returns raw file bytes);
    ``field`` and ``task`` are what the exception's attributes and message must
    name (``task`` as ``ProfileError.task``: a name or ``"#k"``); ``fragment`` is a
    further piece of the message.
    """

    id: str
    suffix: str
    edit: Callable[[Document], Document | bytes | None]
    error: type[ProfileError]
    field: str | None = None
    task: str | None = None
    fragment: str = ""

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.id}{self.suffix}"
        doc = paper_document()
        result = self.edit(doc)
        if result is None:  # the case is a missing file
            return path
        if isinstance(result, bytes):
            path.write_bytes(result)
            return path
        return write_document(path, result)

    @property
    def field_text(self) -> str:
        """How the message names the field."""
        return f"field '{self.field}'"

    @property
    def task_text(self) -> str | None:
        """How the message names the task."""
        if self.task is None:
            return None
        return f"task {self.task}" if self.task.startswith("#") else f"task '{self.task}'"


def _top(key: str, value: Any) -> Callable[[Document], Document]:
    def edit(doc: Document) -> Document:
        doc[key] = value
        return doc

    return edit


def _drop(key: str, k: int | None = None) -> Callable[[Document], Document]:
    def edit(doc: Document) -> Document:
        del (doc if k is None else doc["tasks"][k])[key]
        return doc

    return edit


def _task(k: int, **values: Any) -> Callable[[Document], Document]:
    def edit(doc: Document) -> Document:
        doc["tasks"][k].update(values)
        return doc

    return edit


def _shares_zero(doc: Document) -> Document:
    for task in doc["tasks"]:
        task["share"] = 0.0
    return doc


def _raw(data: bytes) -> Callable[[Document], bytes]:
    return lambda doc: data


NAN, INF = float("nan"), float("inf")

BAD_PROFILES: tuple[BadProfile, ...] = (
    # missing and unknown fields
    BadProfile("missing-alpha", ".toml", _drop("alpha"), ProfileError, "alpha", None, "missing"),
    BadProfile("missing-tasks", ".json", _drop("tasks"), ProfileError, "tasks", None, "missing"),
    BadProfile("missing-task-b", ".toml", _drop("b", GSM8K), ProfileError, "b", "GSM8K", "missing"),
    BadProfile("missing-task-name", ".json", _drop("name", GPQA), ProfileError, "name", "#3"),
    BadProfile(
        "unknown-top", ".toml", _top("lambda", 0.1), ProfileError, "lambda", None, "unknown"
    ),
    BadProfile("unknown-task", ".json", _task(BBH, B=1e-3), ProfileError, "B", "BBH", "unknown"),
    # wrong types
    BadProfile("string-rate", ".toml", _top("rate", "0.1"), ProfileError, "rate", None, "number"),
    BadProfile("string-b", ".json", _task(GSM8K, b="3.2e-3"), ProfileError, "b", "GSM8K", "number"),
    BadProfile("bool-alpha", ".toml", _top("alpha", True), ProfileError, "alpha", None, "number"),
    BadProfile("bool-c", ".json", _task(AIME, c=True), ProfileError, "c", "AIME", "number"),
    BadProfile(
        "float-max-tokens",
        ".toml",
        _top("max_tokens", 32768.5),
        ProfileError,
        "max_tokens",
        None,
        "integer",
    ),
    BadProfile(
        "integral-float-max-tokens",
        ".json",
        _top("max_tokens", 4096.0),
        ProfileError,
        "max_tokens",
        None,
        "integer",
    ),
    BadProfile("number-name", ".json", _task(GPQA, name=3), ProfileError, "name", "#3", "string"),
    BadProfile("empty-name", ".toml", _task(GPQA, name=""), ProfileError, "name", "#3"),
    BadProfile("tasks-not-list", ".json", _top("tasks", 3), ProfileError, "tasks"),
    BadProfile("task-not-table", ".json", _top("tasks", [1, 2]), ProfileError, "tasks", "#1"),
    BadProfile("no-tasks", ".toml", _top("tasks", []), ProfileError, "tasks", None, "at least"),
    # non-finite numbers: JSON NaN/Infinity tokens, TOML nan/inf
    BadProfile(
        "json-nan-A", ".json", _task(CRUXEVAL, A=NAN), ProfileError, "A", "CRUXEval", "finite"
    ),
    BadProfile("json-inf-rate", ".json", _top("rate", INF), ProfileError, "rate", None, "finite"),
    BadProfile(
        "toml-nan-t0", ".toml", _task(ARC, t0=NAN), ProfileError, "t0", "ARC-Challenge", "finite"
    ),
    BadProfile(
        "toml-inf-alpha", ".toml", _top("alpha", INF), ProfileError, "alpha", None, "finite"
    ),
    BadProfile(
        "toml-minus-inf-c", ".toml", _task(GPQA, c=-INF), ProfileError, "c", "GPQA", "finite"
    ),
    # ranges
    BadProfile("A-zero", ".toml", _task(AIME, A=0.0), ProfileError, "A", "AIME", "(0, 1]"),
    BadProfile("A-above-one", ".json", _task(AIME, A=1.01), ProfileError, "A", "AIME", "(0, 1]"),
    BadProfile("D-negative", ".toml", _task(GPQA, D=-0.1), ProfileError, "D", "GPQA", "[0, 1]"),
    BadProfile("D-above-one", ".json", _task(AIME, D=1.5), ProfileError, "D", "AIME", "[0, 1]"),
    BadProfile("A-plus-D", ".toml", _task(GSM8K, A=0.75), ProfileError, "D", "GSM8K", "A + D"),
    BadProfile("b-zero", ".toml", _task(BBH, b=0.0), ProfileError, "b", "BBH", "> 0"),
    BadProfile("b-negative", ".json", _task(BBH, b=-1e-3), ProfileError, "b", "BBH", "> 0"),
    BadProfile("t0-negative", ".toml", _task(AIME, t0=-0.1), ProfileError, "t0", "AIME", ">= 0"),
    BadProfile("c-zero", ".json", _task(ARC, c=0), ProfileError, "c", "ARC-Challenge", "> 0"),
    BadProfile("c-negative", ".toml", _task(ARC, c=-0.01), ProfileError, "c", "ARC-Challenge"),
    # the optional service-time variance (s^2)
    BadProfile(
        "variance-negative",
        ".toml",
        _task(BBH, variance=-0.5),
        ProfileError,
        "variance",
        "BBH",
        ">= 0",
    ),
    BadProfile(
        "variance-string",
        ".json",
        _task(AIME, variance="1"),
        ProfileError,
        "variance",
        "AIME",
        "number",
    ),
    BadProfile(
        "variance-nan",
        ".toml",
        _task(GPQA, variance=NAN),
        ProfileError,
        "variance",
        "GPQA",
        "finite",
    ),
    BadProfile(
        "share-negative", ".toml", _task(GPQA, share=-1.0), ProfileError, "share", "GPQA", ">= 0"
    ),
    BadProfile(
        "shares-all-zero", ".json", _shares_zero, ProfileError, "share", None, "positive sum"
    ),
    BadProfile(
        "max-tokens-negative",
        ".toml",
        _top("max_tokens", -1),
        ProfileError,
        "max_tokens",
        None,
        ">= 0",
    ),
    BadProfile("rate-zero", ".toml", _top("rate", 0.0), ProfileError, "rate", None, "> 0"),
    BadProfile("rate-negative", ".json", _top("rate", -0.1), ProfileError, "rate", None, "> 0"),
    BadProfile("alpha-zero", ".json", _top("alpha", 0), ProfileError, "alpha", None, "> 0"),
    BadProfile("alpha-negative", ".toml", _top("alpha", -30.0), ProfileError, "alpha", None),
    BadProfile(
        "duplicate-name",
        ".toml",
        _task(CRUXEVAL, name="GSM8K"),
        ProfileError,
        "name",
        "GSM8K",
        "duplicate",
    ),
    # the queue is unstable even at zero budgets: rate * sum pi t0 = 10 * 0.1224 >= 1
    BadProfile(
        "unstable", ".toml", _top("rate", 10.0), UnstableLoadError, "rate", None, "unstable"
    ),
    BadProfile(
        "unstable-t0", ".json", _task(BBH, t0=60.0), UnstableLoadError, "rate", None, "unstable"
    ),
    # files
    BadProfile(
        "missing-file",
        ".toml",
        lambda doc: None,
        ProfileFileError,
        None,
        None,
        "no such profile file",
    ),
    BadProfile(
        "bad-toml", ".toml", _raw(b"rate = = 0.1\n"), ProfileFileError, None, None, "invalid TOML"
    ),
    BadProfile(
        "bad-json", ".json", _raw(b'{"rate": 0.1,'), ProfileFileError, None, None, "invalid JSON"
    ),
    BadProfile(
        "not-utf8", ".toml", _raw(b"rate = 0.1 # \xff\xfe\n"), ProfileFileError, None, None, "UTF-8"
    ),
    BadProfile(
        "unknown-extension",
        ".yaml",
        lambda doc: to_toml(doc).encode(),
        ProfileFileError,
        None,
        None,
        "unknown profile format",
    ),
    BadProfile("not-a-table", ".json", _raw(b"[1, 2, 3]"), ProfileError, None, None, "table"),
)


@pytest.fixture(params=BAD_PROFILES, ids=[case.id for case in BAD_PROFILES])
def bad_profile(request: pytest.FixtureRequest) -> BadProfile:
    """Every way a profile file can be invalid (one test per case)."""
    case: BadProfile = request.param
    return case


@pytest.fixture
def paper_doc() -> Document:
    """A fresh copy of the paper's profile document."""
    return paper_document()


# ------------------------------------------------------------------ the real LLM server


def _running(start: Callable[[], LlamaServer]) -> Iterator[LlamaServer]:
    server = start()
    try:
        yield server
    finally:
        llama_server_module.stop(server)


def _alive(server: LlamaServer) -> Iterator[LlamaServer]:
    """``server`` for one test, which fails with the exit status and the end of the
    log if it finds the process dead or leaves it dead (not with a chain of refused
    connections or 502s)."""
    if (why := llama_server_module.death(server)) is not None:
        pytest.fail(f"before this test: {why}", pytrace=False)
    yield server
    if (why := llama_server_module.death(server)) is not None:
        pytest.fail(f"during this test: {why}", pytrace=False)


@pytest.fixture(scope="session")
def _llama_process() -> Iterator[LlamaServer]:
    yield from _running(llama_server_module.start)


@pytest.fixture
def llama_server(_llama_process: LlamaServer) -> Iterator[LlamaServer]:
    """llama.cpp serving SmolLM2-135M-Instruct on a free loopback port (one per session)."""
    yield from _alive(_llama_process)


@pytest.fixture(scope="session")
def _llama_batching_process() -> Iterator[LlamaServer]:
    yield from _running(lambda: llama_server_module.start_batching(parallel=4))


@pytest.fixture
def llama_batching_server(_llama_batching_process: LlamaServer) -> Iterator[LlamaServer]:
    """llama.cpp's ``llama-server`` with 4 slots (continuous batching), one per session."""
    yield from _alive(_llama_batching_process)


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The local benchmark copies (``shared/data/benchmarks`` beside the repository)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"
    if not path.is_dir():
        pytest.skip(f"the local benchmark copies are absent ({path.name}/ beside the repo)")
    return path


# ------------------------------------------------------------------ a real Redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A fresh ``redis-server`` on a free loopback port (installed with apt-get when
    missing and root; otherwise the test fails naming the package), killed after:
    a :class:`redis_server.RedisServer`."""
    import redis_server as redis_server_module

    try:
        server = redis_server_module.start(tmp_path)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.kill()
