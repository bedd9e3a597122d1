"""``thinkq explore`` without a browser: the endpoint against ``thinkq solve``, its errors,
the page's assets (``thinkq.web``) and the command's one-line errors.

The page's acceptance line is that the rate slider at a value shows exactly the budgets
``thinkq solve --rate VALUE`` prints; here the endpoint behind the slider is held to
it (and to ``--alpha``, ``--max-tokens`` and a profile's ``[server]`` slots);
``tests/test_explore_browser.py`` holds the page itself to it in a real browser.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from conftest import many_tasks_document, paper_document, write_document
from thinkq import cli
from thinkq.explore import create_app
from thinkq.profile import load_profile, paper_profile
from thinkq.web import ASSETS, asset, asset_route, page

PAPER_SATURATION = 1.0 / 0.12238333333333333  # 1 / E[S(0)] of the paper's Table I
SERVER = {"slots": 4, "tau0": 0.01, "tau1": 0.002}


def cli_solve(*args: str | Path) -> dict[str, Any]:
    """``thinkq solve ARGS --json``, run as the command line runs it."""
    result = CliRunner().invoke(cli.app, ["solve", *map(str, args), "--json"])
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def budgets_of(data: dict[str, Any]) -> list[int]:
    return [task["budget"] for task in data["tasks"]]


@pytest.fixture(scope="module")
def paper() -> Iterator[TestClient]:
    with TestClient(create_app(paper_profile())) as client:
        yield client


def batched_file(directory: Path, slots: int) -> Path:
    """The paper's profile with a ``[server]`` table of ``slots`` slots."""
    doc = paper_document() | {"server": SERVER | {"slots": slots}}
    return write_document(directory / f"batched-{slots}.json", doc)


def profile_shares(path: Path) -> list[float]:
    return [float(s) for s in load_profile(path).share]


def ask(client: TestClient, body: Any) -> dict[str, Any]:
    response = client.post("/api/solve", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


# --------------------------------------------------------------------------- thinkq solve


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.37, 1.3, 4.2, 7.9])
def test_the_rate_gives_the_budgets_thinkq_solve_prints(paper: TestClient, rate: float) -> None:
    answer = ask(paper, {"rate": rate, "frontier": False})
    printed = cli_solve("--rate", repr(rate))
    assert answer["settings"]["rate"] == rate
    assert answer["budgets"] == budgets_of(printed)
    assert [row["budget"] for row in answer["rows"]] == budgets_of(printed)
    for key in ("accuracy", "objective", "mean_system_time", "utilization"):
        assert answer[key] == printed[key], key
    # the same law; thinkq solve inverts p50, p95 and p99 together, the page p95 alone
    assert answer["p95_system_time"] == pytest.approx(printed["p95_system_time"], rel=1e-9)
    assert answer["percentile_method"] == printed["percentile_method"] == "pk-transform"
    assert answer["mean_batch"] is None
    assert "frontier" not in answer


def test_the_budgets_move_with_the_rate(paper: TestClient) -> None:
    # the check above cannot pass by a constant answer: the budgets fall as load rises
    low, high = (ask(paper, {"rate": r, "frontier": False})["budgets"] for r in (0.05, 4.0))
    assert sum(high) < sum(low)


@pytest.mark.parametrize(
    ("body", "options"),
    [
        ({"alpha": 5.5}, ["--alpha", "5.5"]),
        ({"alpha": 120.0, "rate": 0.2}, ["--alpha", "120.0", "--rate", "0.2"]),
        ({"max_tokens": 100}, ["--max-tokens", "100"]),
        ({"max_tokens": 0, "rate": 2.5}, ["--max-tokens", "0", "--rate", "2.5"]),
    ],
)
def test_alpha_and_l_max_give_what_thinkq_solve_prints(
    paper: TestClient, body: dict[str, Any], options: list[str]
) -> None:
    answer = ask(paper, body | {"frontier": False})
    printed = cli_solve(*options)
    assert answer["budgets"] == budgets_of(printed)
    assert answer["objective"] == printed["objective"]


@pytest.mark.parametrize("slots", [1, 2, 8])
def test_slots_give_what_thinkq_solve_prints_for_that_server(tmp_path: Path, slots: int) -> None:
    profile = load_profile(batched_file(tmp_path, SERVER["slots"]))
    with TestClient(create_app(profile)) as client:
        answer = ask(client, {"slots": slots, "rate": 1.5, "frontier": False})
    printed = cli_solve(batched_file(tmp_path, slots), "--rate", "1.5")
    assert answer["settings"]["slots"] == slots
    assert answer["budgets"] == budgets_of(printed)
    assert answer["mean_system_time"] == printed["mean_system_time"]
    # the same law (a simulation with seed 0 on a batched server)
    assert answer["p95_system_time"] == pytest.approx(printed["p95_system_time"], rel=1e-9)
    if slots > 1:
        assert answer["mean_batch"] == pytest.approx(printed["server"]["mean_batch"], rel=1e-12)
        assert answer["percentile_method"] == "simulation"


def test_more_slots_take_more_load_and_allow_larger_budgets(tmp_path: Path) -> None:
    profile = load_profile(batched_file(tmp_path, 4))
    with TestClient(create_app(profile)) as client:
        one, many = (ask(client, {"slots": b, "rate": 3.0, "frontier": False}) for b in (1, 16))
    assert one["saturation_rate"] == pytest.approx(PAPER_SATURATION)
    assert many["saturation_rate"] > 2 * one["saturation_rate"]
    assert sum(many["budgets"]) > sum(one["budgets"])
    assert many["mean_batch"] > 1.0


def test_the_frontier_passes_through_the_operating_point(paper: TestClient) -> None:
    answer = ask(paper, {"rate": 0.37})
    frontier = answer["frontier"]
    here = frontier["operating_point"]
    assert here["alpha"] == 30.0
    assert here["accuracy"] == pytest.approx(answer["accuracy"], rel=1e-12)
    assert here["mean_system_time"] == pytest.approx(answer["mean_system_time"], rel=1e-12)
    points = frontier["points"]
    assert points[0]["alpha"] == 0.0
    assert len(points) >= 10
    accuracy = [p["accuracy"] for p in points]
    assert accuracy == sorted(accuracy)
    assert accuracy[0] < here["accuracy"] < accuracy[-1]


# --------------------------------------------------------------------------- answers, errors


def test_an_unstable_rate_is_an_answer_not_an_error(paper: TestClient) -> None:
    answer = ask(paper, {"rate": 9.0})
    assert answer["stable"] is False
    assert "unstable even at zero budgets" in answer["message"]
    assert answer["saturation_rate"] == pytest.approx(PAPER_SATURATION)
    assert ask(paper, {"rate": 0.999 * PAPER_SATURATION, "frontier": False})["stable"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate": -1}, "rate"),
        ({"rate": 0}, "rate"),
        ({"rate": "fast"}, "rate"),
        ({"rate": True}, "rate"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": [1]}, "alpha"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": -3}, "max_tokens"),
        ({"slots": 2}, "slots"),  # the paper's profile has no step-time law
        ({"speed": 1}, "speed"),
        ({"frontier": "yes"}, "frontier"),
        ([1, 2], "body"),
    ],
)
def test_bad_values_are_400_with_one_line_naming_the_field(
    paper: TestClient, body: Any, field: str
) -> None:
    response = paper.post("/api/solve", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["field"] == field
    assert error["error"].startswith(f"{field}: ")
    assert "\n" not in error["error"]


def test_bad_slots_name_the_field(tmp_path: Path) -> None:
    with TestClient(create_app(load_profile(batched_file(tmp_path, 4)))) as client:
        for slots in (0, 2.5, "four", 1e300):
            response = client.post("/api/solve", json={"slots": slots})
            assert response.status_code == 400
            assert response.json()["error"].startswith("slots: "), slots


def test_a_body_that_is_not_json_or_too_large_is_refused(paper: TestClient) -> None:
    response = paper.post("/api/solve", content=b"{rate: 1")
    assert response.status_code == 400
    assert response.json()["error"].startswith("body: not JSON")
    response = paper.post("/api/solve", content=b"{" + b" " * 5000 + b"}")
    assert response.status_code == 413
    assert paper.get("/api/solve").status_code == 405


def test_many_types_show_a_summary_and_the_largest_budgets(tmp_path: Path) -> None:
    path = write_document(tmp_path / "many.json", many_tasks_document(400))
    with TestClient(create_app(load_profile(path))) as client:
        answer = ask(client, {"frontier": False})
    printed = cli_solve(path)
    assert answer["budgets"] == budgets_of(printed)
    assert answer["shown"] == "largest"
    rows = answer["rows"]
    assert len(rows) == 20
    share = dict(zip(answer["names"], profile_shares(path), strict=True))
    budget = dict(zip(answer["names"], answer["budgets"], strict=True))
    shown = [row["share"] for row in rows]
    assert shown == sorted(shown, reverse=True)
    assert min(shown) >= max(s for n, s in share.items() if n not in {r["name"] for r in rows})
    assert all(row["budget"] == budget[row["name"]] for row in rows)
    summary = answer["summary"]
    assert summary["types"] == 400
    assert summary["at_zero"] + summary["at_max"] + summary["in_between"] == 400
    assert summary["total_budget"] == sum(answer["budgets"])
    histogram = summary["histogram"]
    assert sum(b["types"] for b in histogram) == 400
    assert sum(b["share"] for b in histogram) == pytest.approx(1.0)
    zero_share = sum(s for n, s in share.items() if budget[n] == 0)
    assert histogram[0]["types"] == summary["at_zero"]
    assert histogram[0]["share"] == pytest.approx(zero_share)
    assert histogram[-1]["high"] == max(answer["budgets"])


def test_the_profile_endpoint_gives_defaults_and_slider_ranges(
    paper: TestClient, tmp_path: Path
) -> None:
    about = paper.get("/api/profile").json()
    assert about["defaults"] == {"rate": 0.1, "alpha": 30.0, "max_tokens": 32768, "slots": None}
    assert about["ranges"]["rate"]["max"] == pytest.approx(PAPER_SATURATION)
    assert set(about["ranges"]) == {"rate", "alpha", "max_tokens"}
    assert about["law"] is None
    assert about["types"] == 6
    with TestClient(create_app(load_profile(batched_file(tmp_path, 4)))) as client:
        about = client.get("/api/profile").json()
    assert about["defaults"]["slots"] == 4
    assert about["ranges"]["slots"]["min"] == 1
    assert about["ranges"]["rate"]["max"] > 2 * PAPER_SATURATION  # C(4) > 2


# --------------------------------------------------------------------------- the page


def test_the_page_is_one_document_with_the_packages_scripts_only(paper: TestClient) -> None:
    response = paper.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert asset("plot.js") in text
    assert asset("thinkq.css") in text
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    assert not re.search(r"https?://", text.replace("http://www.w3.org/2000/svg", ""))
    assert 'fetch("api/solve"' in text  # relative: the page works under any prefix


def test_assets_are_read_from_the_package_and_served_with_an_etag() -> None:
    assert set(ASSETS) == {"plot.js", "thinkq.css"}
    assert "ThinkqPlot.lineChart(target, spec)" in asset("plot.js")  # its API, documented
    with pytest.raises(ValueError, match=r"^name: no asset 'x\.js'"):
        asset("x.js")
    linked = page(title="<t>", body="<p>b</p>", inline=False, prefix="/s/")
    assert '<script src="/s/plot.js"></script>' in linked
    assert '<link rel="stylesheet" href="/s/thinkq.css">' in linked
    assert "<title>&lt;t&gt;</title>" in linked
    with TestClient(Starlette(routes=[asset_route("/s/{name}")])) as client:
        first = client.get("/s/plot.js")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/javascript")
        assert first.text == asset("plot.js")
        again = client.get("/s/plot.js", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert client.get("/s/nothing.js").status_code == 404
    with pytest.raises(ValueError, match=r"^path: "):
        asset_route("/static/")


# --------------------------------------------------------------------------- the command


def explore(*args: str | Path) -> Any:
    return CliRunner().invoke(cli.app, ["explore", *map(str, args)], prog_name="thinkq")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["missing.toml"], "missing.toml"),
        (["--port", "-1"], "--port"),
        (["--port", "http"], "--port"),
        (["--colour"], "--colour"),
        (["--tau0", "0.01"], "option --tau0/--tau1: give both"),
        (["--tau0", "-1", "--tau1", "0.1"], "option --tau0"),
        (["--host", "no-such-host.invalid", "--port", "0"], "option --host"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    result = explore(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = explore("--port", port)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: option --port: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_help_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = explore("--help").stdout
    assert "Usage: thinkq explore [OPTIONS] [PROFILE]" in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_a_host_beyond_loopback_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Any] = []
    monkeypatch.setattr("uvicorn.Server.run", lambda self, sockets=None: served.append(sockets))
    result = explore("--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("warning: --host 0.0.0.0: the page has no key")
    assert re.match(r"thinkq explore: open http://0\.0\.0\.0:\d+/", result.stdout)
    quiet = explore("--port", "0")
    assert quiet.stderr == ""
    assert len(served) == 2


def test_the_command_serves_the_page_and_prints_its_url() -> None:
    command = [sys.executable, "-m", "thinkq", "explore", "--port", "0"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            assert found, line
            with httpx.Client(base_url=found.group(0), timeout=60) as client:
                assert client.get("api/profile").json()["types"] == 6
                budgets = client.post("api/solve", json={"rate": 0.37}).json()["budgets"]
            assert budgets == budgets_of(cli_solve("--rate", "0.37"))
        finally:
            process.terminate()
            process.wait(30)
