"""The Grafana board (deploy/grafana/thinkq.json) against a running gateway's metrics.

A gateway (two fake replicas, a latency objective, and a member of a fleet in a real
Redis, so every metric family exists) serves on loopback with an API key; a few
requests give its labelled series and histograms samples. The board's every query
must then name only metrics that ``/metrics`` exports, with labels those metrics
carry; and a real Prometheus, scraping the gateway with the scrape config of
deploy/prometheus/prometheus.yml, must evaluate every query to at least one series
that has the labels its legend shows.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import prometheus_server
from fakes import MODEL, FakeServer, profile
from redis_server import RedisServer
from thinkq.fleet import Member, Store
from thinkq.measure.server import Server
from thinkq.measure.templates import TEMPLATES
from thinkq.serve import Gateway, create_app

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "deploy" / "grafana" / "thinkq.json"
SCRAPE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
KEY = "grafana-test-key-0123456789abcdef"
#: Labels Prometheus attaches to every scraped series (the scrape job and target).
TARGET_LABELS = frozenset({"job", "instance"})
#: Grafana's variables, as the test gives them to Prometheus.
VARIABLES = {
    "$__rate_interval": "15s",
    "$job": "thinkq",
    "$instance": ".+",
    "$task": ".*",
    "$topk": "10",
}
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool"})
KEYWORDS |= {"and", "or", "unless", "offset", "inf", "nan"}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
NAME = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")

# ------------------------------------------------------------------ the board


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the board, where it is, and its legend."""

    where: str
    expr: str
    legend: str = ""


def _panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _panels(item.get("panels", []))


def board() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(BOARD.read_text("utf-8"))
    return document


def queries() -> list[Query]:
    """Every panel target's expression (variables' queries: :func:`variable_queries`)."""
    return [
        Query(f"panel {panel['title']!r} {target['refId']}", target["expr"], target["legendFormat"])
        for panel in _panels(board()["panels"])
        for target in panel.get("targets", [])
    ]


def variable_queries() -> list[tuple[str, str, str]]:
    """``(variable, series selector, label)`` of each ``label_values`` variable."""
    found = []
    for variable in board()["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"variable {variable['name']}: not label_values(...)"
            found.append((variable["name"], match[1], match[2]))
    return found


# ------------------------------------------------------------------ PromQL, enough of it


def _bare(expr: str) -> str:
    """``expr`` with its strings emptied, ranges dropped and variables as numbers."""
    expr = STRING.sub('""', expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return re.sub(r"\$\w+", "0", expr)


def selectors(expr: str) -> list[tuple[str, frozenset[str]]]:
    """The metric names ``expr`` selects, each with the labels its matchers name."""
    text = GROUPING.sub("", _bare(expr))
    found = []
    for name, matchers, call in NAME.findall(text):
        if call or name in KEYWORDS:
            continue
        found.append((name, frozenset(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))))
    return found


def groupings(expr: str) -> list[frozenset[str]]:
    """The label lists of ``expr``'s ``by``, ``without``, ``on``, ... clauses."""
    return [
        frozenset(label.strip() for label in labels.split(",") if label.strip())
        for labels in GROUPING.findall(_bare(expr))
    ]


def test_the_promql_reader_finds_names_labels_and_groupings() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, task) (rate(x_bucket{job=~"$job", a!="b"}[$i])))'
        ' / on (instance) max without (le) (y{c=~"sum(z)"}) + topk($topk, w)'
    )
    assert selectors(expr) == [
        ("x_bucket", frozenset({"job", "a"})),
        ("y", frozenset({"c"})),
        ("w", frozenset()),
    ]
    assert groupings(expr) == [
        frozenset({"le", "task"}),
        frozenset({"instance"}),
        frozenset({"le"}),
    ]


# ------------------------------------------------------------------ a running gateway


def _lifespan(app: Any, gateway: Gateway) -> Any:
    """``app`` whose ASGI lifespan runs ``gateway`` (``async with gateway``)."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        await receive()  # startup
        async with gateway:
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
        await send({"type": "lifespan.shutdown.complete"})

    return asgi


@contextmanager
def running_gateway(redis_url: str) -> Iterator[str]:
    """A gateway over two fake replicas, with an objective, in a fleet in Redis, served
    on a free loopback port with :data:`KEY`, after a few requests; yield its base URL."""
    servers = [
        Server(f"http://replica-{n}.test:8000/v1", MODEL, transport=FakeServer().transport())
        for n in range(2)
    ]
    gateway = Gateway(
        profile(), servers, template=TEMPLATES["chatml"], resolve_every=1.0,
        objectives=["p95<=30s"],
    )  # fmt: skip
    Member.joining(Store(redis_url), gateway)
    app = _lifespan(create_app(gateway, api_key=KEY), gateway)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the gateway's thread ended"
            assert time.monotonic() < deadline, "the gateway did not start in 30 s"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        _traffic(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


def _traffic(base: str) -> None:
    """Served requests of both types, one of an unknown type, one without the key."""
    chat = {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8}
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, timeout=60) as client:
        for task in ("math", "chat", "math"):
            reply = client.post(
                "/v1/chat/completions", json=chat, headers=auth | {"X-Thinkq-Task": task}
            )
            assert reply.status_code == 200, reply.text
        unknown = client.post(
            "/v1/chat/completions", json=chat, headers=auth | {"X-Thinkq-Task": "poetry"}
        )
        assert unknown.status_code == 400
        assert client.post("/v1/chat/completions", json=chat).status_code == 401


def exported(base: str) -> dict[str, set[str]]:
    """Each sample name of ``/metrics`` (with its ``_total``, ``_bucket``, ... suffix)
    and the labels its samples carry."""
    assert httpx.get(f"{base}/metrics", timeout=30).status_code == 401  # the key is needed
    reply = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert reply.status_code == 200
    names: dict[str, set[str]] = {}
    for line in reply.text.splitlines():
        if line and not line.startswith("#"):
            match = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})? ", line)
            assert match, line
            names.setdefault(match[1], set()).update(re.findall(r'(\w+)="', match[2] or ""))
    return names


@pytest.fixture
def gateway_url(redis_server: RedisServer) -> Iterator[str]:
    with running_gateway(redis_server.url) as base:
        yield base


# ------------------------------------------------------------------ the tests


def test_every_metric_the_board_queries_is_one_the_gateway_exports(gateway_url: str) -> None:
    names = exported(gateway_url)
    used = [(q.where, name) for q in queries() for name, _ in selectors(q.expr)]
    used += [(f"variable {v}", name) for v, s, _ in variable_queries() for name, _ in selectors(s)]
    assert len({where for where, _ in used}) == len(queries()) + len(variable_queries())
    missing = [f"{where}: {name}" for where, name in used if name not in names]
    assert missing == [], f"the gateway does not export: {missing}"
    family = re.compile(r"_(total|created|bucket|sum|count)$")
    on_board = {family.sub("", name) for _, name in used}
    off_board = {family.sub("", name) for name in names if name.startswith("thinkq_")} - on_board
    assert off_board == set(), "metrics the board does not show"


def test_every_label_the_board_uses_is_on_its_metric(gateway_url: str) -> None:
    names = exported(gateway_url)
    wrong = []
    for q in queries():
        found = selectors(q.expr)
        labels = {name: names.get(name, set()) | TARGET_LABELS for name, _ in found}
        for name, matched in found:
            wrong += [f"{q.where}: {name}{{{label}}}" for label in matched - labels[name]]
        for grouping in groupings(q.expr):
            for name, have in labels.items():
                wrong += [f"{q.where}: by {label} on {name}" for label in grouping - have]
        anywhere = set().union(*labels.values())
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", q.legend))
        wrong += [f"{q.where}: legend {{{{{label}}}}}" for label in shown - anywhere]
    for variable, selector, label in variable_queries():
        ((name, matched),) = selectors(selector)
        have = names[name] | TARGET_LABELS
        wrong += [f"variable {variable}: {name}{{{x}}}" for x in ({label} | matched) - have]
    assert wrong == []


def test_the_board_is_an_importable_dashboard() -> None:
    document = board()
    (source,) = document["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS", "datasource", "prometheus",
    )  # fmt: skip
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    everything = list(_panels(document["panels"]))
    panels = [p for p in everything if p["type"] != "row"]
    assert len({p["id"] for p in everything}) == len(everything), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in everything:
        box = panel["gridPos"]
        assert box["x"] >= 0, panel["title"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        area = {(box["x"] + i, box["y"] + j) for i in range(box["w"]) for j in range(box["h"])}
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
    defined = {v["name"] for v in document["templating"]["list"]}
    assert {"job", "instance", "task", "topk"} <= defined
    for panel in panels:
        assert panel["datasource"] == datasource, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == datasource for t in panel["targets"]), panel["title"]
    for q in queries():
        assert set(re.findall(r"\$(\w+)", q.expr)) <= defined | {"__rate_interval"}, q.where
        for name, matched in selectors(q.expr):  # every series is filtered by the variables
            assert {"job", "instance"} <= matched, f"{q.where}: {name}"


def _scrape_config(directory: Path, target: str, *, interval: str = "15s") -> Path:
    """deploy/prometheus/prometheus.yml with its key file, target and interval replaced."""
    text = SCRAPE.read_text("utf-8")
    (directory / "thinkq.key").write_text(KEY + "\n", encoding="utf-8")
    for old, new in (
        (
            "credentials_file: /etc/prometheus/thinkq.key",
            f"credentials_file: {directory}/thinkq.key",
        ),
        ("- 127.0.0.1:8000", f"- {target}"),
        ("scrape_interval: 15s", f"scrape_interval: {interval}"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = directory / "prometheus.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    assert "type: Bearer" in SCRAPE.read_text("utf-8")
    done = prometheus_server.promtool(
        "check", "config", str(_scrape_config(tmp_path, "127.0.0.1:8000"))
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def _substituted(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, expr
    return expr


def test_a_real_prometheus_evaluates_every_board_query(gateway_url: str, tmp_path: Path) -> None:
    config = _scrape_config(tmp_path, gateway_url.removeprefix("http://"), interval="1s")
    prometheus = prometheus_server.start(tmp_path, config)
    try:
        deadline = time.monotonic() + 60
        while not prometheus.query('count_over_time(up{job="thinkq"}[15s]) >= 4'):
            assert time.monotonic() < deadline, prometheus.api("targets")
            time.sleep(0.25)
        assert [s["value"][1] for s in prometheus.query('up{job="thinkq"}')] == ["1"]
        empty, unlabelled = [], []
        for q in queries():
            series = prometheus.query(_substituted(q.expr))
            if not series:
                empty.append(q.where)
            shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", q.legend))
            unlabelled += [
                f"{q.where}: {s['metric']}" for s in series if shown - s["metric"].keys()
            ]
        for variable, selector, label in variable_queries():
            found = prometheus.api("series", **{"match[]": _substituted(selector)})
            if not found or any(label not in s for s in found):
                empty.append(f"variable {variable}")
        assert empty == [], "no series for these queries"
        assert unlabelled == [], "series without the labels their legend shows"
    finally:
        prometheus.kill()
