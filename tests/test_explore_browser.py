"""``thinkq explore`` in a real browser (headless Debian ``chromium``, ``tests/browser.py``).

The command runs as a user runs it (a subprocess on a free loopback port); the page is
driven as a user drives it: a value typed in the rate's number box, the rate slider
dragged with the mouse, slots moved on a batched server. Each time the budgets the
page shows must be those ``thinkq solve`` prints at that value, and the page must
fetch nothing but its own server. The screenshot ``docs/screenshots/explore.png``
is taken here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from browser import Browser, chromium, free_port, screenshot
from conftest import paper_document, write_document

#: Seconds the page may take to show an answer (a solve and a frontier: well under 1 s).
ANSWER_TIMEOUT = 60


def thinkq(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "thinkq", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def solve_budgets(*args: str | Path) -> list[int]:
    """The budgets ``thinkq solve ARGS --json`` prints."""
    done = thinkq("solve", *args, "--json")
    assert done.returncode == 0, done.stderr
    return [task["budget"] for task in json.loads(done.stdout)["tasks"]]


@contextmanager
def start(*args: str | Path) -> Iterator[str]:
    """``thinkq explore ARGS`` on a free loopback port; its URL while it runs."""
    port = free_port()
    command = [sys.executable, "-m", "thinkq", "explore", *map(str, args), "--port", str(port)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert f"http://127.0.0.1:{port}/" in line, (line, process.stderr)
            yield f"http://127.0.0.1:{port}/"
        finally:
            process.terminate()
            process.wait(30)


@pytest.fixture(scope="module")
def paper_url() -> Iterator[str]:
    with start() as url:
        yield url


def shown(page: Page, state: str = "ok", **settings: str) -> None:
    """Wait until the page shows an answer in ``state`` for exactly ``settings``
    (values as the status element carries them: data-rate, data-slots, ...)."""
    page.wait_for_function(
        """([state, settings]) => {
            const s = document.getElementById("status");
            return s.dataset.state === state &&
                Object.entries(settings).every(([k, v]) => Number(s.dataset[k]) === Number(v));
        }""",
        arg=[state, settings],
        timeout=ANSWER_TIMEOUT * 1000,
    )


def budgets_shown(page: Page) -> list[int]:
    rows = page.query_selector_all("#budgets tbody tr")
    return [int(row.get_attribute("data-budget") or "-1") for row in rows]


def names_shown(page: Page) -> list[str]:
    return [
        row.get_attribute("data-task") or ""
        for row in page.query_selector_all("#budgets tr[data-task]")
    ]


def drag(page: Page, selector: str, fraction: float) -> str:
    """Drag the slider ``selector`` with the mouse to ``fraction`` of its width; the
    value it took (the number box beside it mirrors it)."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.5 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + fraction * box["width"], y, steps=8)
    page.mouse.up()
    value: str = page.locator(selector).input_value()
    return value


def opened(b: Browser, url: str) -> Page:
    b.page.goto(url)
    shown(b.page)
    assert b.errors == []
    return b.page


def test_the_rate_slider_shows_the_budgets_thinkq_solve_prints(paper_url: str) -> None:
    with chromium(width=1280, height=900) as b:
        page = opened(b, paper_url)
        assert budgets_shown(page) == solve_budgets()  # the profile's own rate, 0.1
        assert names_shown(page)[:2] == ["AIME", "GSM8K"]

        page.fill("#rate-number", "0.37")  # the exact value, typed beside the slider
        shown(page, rate="0.37")
        expected = solve_budgets("--rate", "0.37")
        assert budgets_shown(page) == expected
        assert expected != solve_budgets()  # the check can fail: the budgets moved
        assert page.locator("#rate-slider").input_value() == "0.37"
        screenshot(page, "explore")

        value = drag(page, "#rate-slider", 0.45)  # the slider itself, with the mouse
        assert float(value) > 1.0
        assert page.locator("#rate-number").input_value() == value
        shown(page, rate=value)
        assert budgets_shown(page) == solve_budgets("--rate", value)

        page.goto(f"{paper_url}#rate=0.37&alpha=30&max_tokens=32768")  # a link to a what-if
        page.reload()
        shown(page, rate="0.37")
        assert budgets_shown(page) == expected
        assert page.url.endswith("#rate=0.37&alpha=30&max_tokens=32768")
        assert b.outside(paper_url) == []
        assert b.errors == []


def test_unstable_and_invalid_settings_show_a_message(paper_url: str) -> None:
    with chromium(width=1280, height=900) as b:
        page = opened(b, paper_url)
        page.fill("#rate-number", "9")
        shown(page, "unstable", rate="9")
        assert "Unstable" in page.inner_text("#message")
        assert "unstable even at zero budgets" in page.inner_text("#message")
        assert page.query_selector("#frontier svg") is None
        assert budgets_shown(page) == []

        page.fill("#rate-number", "-1")
        page.wait_for_function("document.getElementById('status').dataset.state === 'invalid'")
        assert page.inner_text("#message").startswith("rate: must be > 0")

        page.fill("#rate-number", "")
        page.wait_for_selector("#status[data-state=invalid]:has-text('rate: enter a number')")

        page.click("#reset")
        shown(page, rate="0.1", alpha="30", maxTokens="32768")
        assert page.query_selector("#frontier svg .tq-marker") is not None
        assert b.outside(paper_url) == []
        assert b.errors == []


def test_slots_on_a_batched_server_show_what_thinkq_solve_prints(tmp_path: Path) -> None:
    server = {"slots": 2, "tau0": 0.01, "tau1": 0.002}
    profile = write_document(tmp_path / "batched.json", paper_document() | {"server": server})
    four = write_document(
        tmp_path / "four.json", paper_document() | {"server": server | {"slots": 4}}
    )
    with start(profile) as url, chromium(width=1280, height=900) as b:
        page = opened(b, url)
        assert page.inner_text("#stats").count("mean batch") == 1
        page.fill("#slots-number", "4")
        page.fill("#rate-number", "2.5")
        shown(page, rate="2.5", slots="4")
        assert budgets_shown(page) == solve_budgets(four, "--rate", "2.5")
        assert b.outside(url) == []
        assert b.errors == []


def test_plot_js_ticks_and_numbers_in_the_browser(paper_url: str) -> None:
    with chromium() as b:
        page = opened(b, paper_url)
        found: Any = page.evaluate(
            """() => [ThinkqPlot.niceTicks(0.013, 0.87), ThinkqPlot.logTicks(0.03, 200),
                      [1234, 12345, 0.000031, 2.5e6, 0.1234567].map(v => ThinkqPlot.format(v))]"""
        )
        assert found == [
            [0, 0.2, 0.4, 0.6, 0.8, 1],
            [0.01, 0.1, 1, 10, 100, 1000],
            ["1234", "12.3k", "3.1e-5", "2.5M", "0.123"],
        ]
        svg = page.evaluate(
            """() => { const d = document.createElement("div"); document.body.appendChild(d);
                       ThinkqPlot.lineChart(d, {series: []});
                       return d.textContent; }"""
        )
        assert svg == "no data"
        assert page.inner_text("#status") == "solved"
        assert re.fullmatch(r"solved in \d+ ms", page.get_attribute("#status", "title") or "")
