"""Profile and fit a real batching server with the command line, for the integration tests.

:func:`profile_and_fit` runs ``thinkq profile --slots`` (the accuracy phase, then the
server phase at concurrency 1, 2, 4, ...) and ``thinkq fit`` on a running server, as
a user would, and returns where everything went. It is small by default (two
budgets, two items of two datasets, eight queries a level): a minute or two against
``llama-server`` serving SmolLM2 on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_server import LlamaServer


@dataclass(frozen=True)
class Fitted:
    """The files of one profile-and-fit: records, server records, profile, fit report."""

    records: Path
    server_records: Path
    profile: Path
    report: dict[str, Any]


def thinkq(*args: object, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m thinkq ARGS``; its completed process."""
    command = [sys.executable, "-m", "thinkq", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def profile_and_fit(
    server: LlamaServer,
    data_dir: Path,
    directory: Path,
    *,
    slots: int = 4,
    budgets: str = "16,48",
    datasets: str = "gsm8k,arc_challenge",
    samples: int = 2,
    server_queries: int = 8,
    bootstrap: int = 50,
    name: str = "smollm2",
) -> Fitted:
    """Profile ``server`` with ``--slots``, fit the records; AssertionError if a step fails."""
    records = directory / f"{name}.jsonl"
    done = thinkq(
        "profile", "--base-url", server.base_url, "--model", server.model,
        "--dataset", datasets, "--budgets", budgets, "--samples", samples, "--runs", 1,
        "--data-dir", data_dir, "--template", "server", "--slots", slots,
        "--server-queries", server_queries, "-o", records,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    profile = directory / f"{name}.toml"
    server_records = directory / f"{name}.server.jsonl"
    fitted = thinkq(
        "fit", records, server_records, "-o", profile, "--bootstrap", bootstrap, "--json"
    )
    assert fitted.returncode == 0, fitted.stderr
    return Fitted(records, server_records, profile, json.loads(fitted.stdout))
