"""Fuzzing the command line: no command ends in a traceback, whatever its options.

Hypothesis draws every command's options from valid values, extreme but valid ones
(alpha = 1e300, rates just below the stability edge, all-zero t0, negative and huge
seeds, l_max of 10^9) and invalid ones (0, negative, NaN, infinity, words), together
with small generated profile and records files, some with a part that is unstable
(a uniform budget or a swept rate beyond the stability edge). Every run must end
with exit code 0, 1 or 2 and never print a traceback. The commands that talk to a
server (profile, serve, loadtest) are pointed at a refused loopback port and must
fail at once; none of them may wait for the load it would send.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from typer.testing import CliRunner, Result

from conftest import Document, write_document
from thinkq import cli


def fuzz(examples: int) -> settings:
    """Hypothesis settings of one command's test: ``examples`` runs (times the
    environment's THINKQ_FUZZ_SCALE, for a longer search by hand), no deadline."""
    return settings(
        max_examples=examples * int(os.environ.get("THINKQ_FUZZ_SCALE", "1")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


Draw = Callable[[st.SearchStrategy[Any]], Any]

_names = itertools.count()

# numpy's overflow and underflow warnings at extreme values (b = 1e300) are not
# failures of a command; tracebacks are
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich output on an 80-column pipe, whatever the environment of the test run."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("THINKQ_FUZZ_KEY", "secret")
    monkeypatch.delenv("THINKQ_FUZZ_UNSET", raising=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def refused_url() -> str:
    """The API root of a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def data_dir(workdir: Path) -> Path:
    """A benchmarks folder with three GSM8K items (no network, no shared copies)."""
    folder = workdir / "benchmarks"
    (folder / "gsm8k").mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"question": f"What is {k} + {k}?", "answer": f"{k} + {k}\n#### {2 * k}"})
        for k in range(1, 4)
    ]
    (folder / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def check(args: list[str]) -> Result:
    """Run ``thinkq args`` in-process: exit code 0, 1 or 2 and no traceback, ever."""
    if currently_in_test_context():  # under @given: shown with a failing example
        note(f"thinkq {shlex.join(args)}")
    result = CliRunner().invoke(cli.app, args, prog_name="thinkq")
    error = result.exception
    if error is not None and not isinstance(error, SystemExit):
        shown = "".join(traceback.format_exception(error))
        raise AssertionError(f"thinkq {shlex.join(args)} raised:\n{shown}")
    output = result.stdout + result.stderr
    assert result.exit_code in (0, 1, 2), (result.exit_code, output)
    assert "Traceback" not in output, output
    if result.exit_code == 2:  # a user error is one line that says what to fix
        assert result.stderr.lstrip().startswith("error: "), result.stderr
    return result


def file_name(workdir: Path, suffix: str) -> Path:
    return workdir / f"f{next(_names)}{suffix}"


# --------------------------------------------------------------------------- values

INVALID = ["0", "-1", "nan", "inf", "-inf", "abc", "", "1e999"]
TINY = ["5e-324", "1e-300", "1e-12"]
HUGE = ["1e300", "1.7e308"]


def mostly(
    usual: st.SearchStrategy[Any], *others: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``usual`` 7 times in 10, else one of ``others``: most runs get past the checks."""
    return st.integers(0, 9).flatmap(lambda i: usual if i < 7 else st.one_of(*others))


def numbers(*valid: float) -> st.SearchStrategy[str]:
    """A float option's value as typed: valid, extreme or invalid."""
    extreme, invalid = st.sampled_from(TINY + HUGE), st.sampled_from(INVALID)
    return mostly(st.sampled_from([repr(v) for v in valid]), extreme, invalid)


def counts(low: int, high: int) -> st.SearchStrategy[str]:
    """An integer option's value in [low, high], or an invalid one."""
    invalid = st.sampled_from(["-1", "0", "-9999999999999999999999", "1.5", "x", ""])
    return mostly(st.integers(low, high).map(str), invalid)


SEEDS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["-1", "0", "1", "18446744073709551616", "x"]),
)
MAX_TOKENS = st.sampled_from(["0", "1", "100", "4096", "32768", "1000000000", "-1", "1.5"])


def options(draw: Draw, table: dict[str, st.SearchStrategy[str] | None]) -> list[str]:
    """A random subset of ``table`` as command-line words (``None``: a flag)."""
    words: list[str] = []
    for name, values in table.items():
        if not draw(st.booleans()):
            continue
        words += [name] if values is None else [name, draw(values)]
    return words


# --------------------------------------------------------------------------- files


@st.composite
def profile_documents(draw: Draw) -> Document:
    """A small profile: 1-3 tasks, t0 possibly all zero, a rate up to the stability
    edge, extreme curves; now and then one broken field."""
    n = draw(st.integers(1, 3))
    zero_t0 = draw(st.booleans())
    tasks = []
    for k in range(n):
        A = draw(st.sampled_from([1e-6, 0.3, 0.7, 1.0]))
        task: dict[str, Any] = {
            "name": f"task{k}",
            "share": draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])),
            "A": A,
            "b": draw(st.sampled_from([1e-300, 1e-6, 2.5e-3, 0.2, 1e300])),
            "D": draw(st.sampled_from([0.0, (1 - A) / 2, 1 - A])),
            "t0": 0.0 if zero_t0 else draw(st.sampled_from([0.0, 1e-9, 0.1, 2.0])),
            "c": draw(st.sampled_from([1e-9, 1e-3, 0.013, 1.0])),
        }
        if draw(st.integers(0, 3)) == 0:  # around t0 = 0 it cannot be simulated: exit 2
            task["variance"] = draw(st.sampled_from([0.0, 1e-4, 1.0]))
        tasks.append(task)
    if not any(t["share"] for t in tasks):
        tasks[0]["share"] = 1.0
    total = sum(t["share"] for t in tasks)
    load = sum(t["share"] * t["t0"] for t in tasks) / total
    edge = draw(st.sampled_from([1e-3, 0.5, 0.9, 0.999999, 1 - 1e-12]))
    rate = edge / load if load > 0 else draw(st.sampled_from([1e-6, 0.2, 50.0, 1e6]))
    doc: Document = {
        "rate": rate,
        "alpha": draw(st.sampled_from([1e-6, 1.0, 30.0, 1e6, 1e300])),
        "max_tokens": draw(st.sampled_from([0, 1, 100, 4096, 32768, 10**9])),
        "tasks": tasks,
    }
    if draw(st.integers(0, 9)) == 0:  # a broken field: exit code 2
        key = draw(st.sampled_from(["A", "b", "c", "t0", "share"]))
        tasks[0][key] = draw(st.sampled_from([-1.0, 0.0, 2.0, float("nan"), "x"]))
    return doc


def profile_files(workdir: Path) -> st.SearchStrategy[str]:
    def write(doc: Document, suffix: str) -> str:
        return str(write_document(file_name(workdir, suffix), doc))

    written = st.builds(write, profile_documents(), st.sampled_from([".toml", ".json"]))
    return st.one_of(written, st.just(str(workdir / "missing.toml")))


@st.composite
def records_lines(draw: Draw) -> list[dict[str, Any]]:
    """Measurements of 1-2 tasks at 1-4 budgets, latency possibly all zero."""
    zero = draw(st.booleans())
    records = []
    for task in draw(st.lists(st.sampled_from(["math", "trivia"]), min_size=1, unique=True)):
        few = st.integers(0, 9).map(lambda i: 1 if i == 0 else 2)  # one budget: no fit
        budgets = draw(st.lists(st.sampled_from([0, 8, 64, 512]), min_size=draw(few), unique=True))
        for budget in budgets:
            for run in range(draw(st.integers(1, 4))):
                latency = 0.0 if zero else 0.1 + 0.01 * budget + draw(st.sampled_from([0, 0.05]))
                records.append(
                    {
                        "task": task,
                        "budget": budget,
                        "correct": draw(st.booleans()),
                        "latency_s": latency,
                        "item_id": f"{task}-{run}",
                    }
                )
    return records


def records_files(workdir: Path) -> st.SearchStrategy[str]:
    def write(records: list[dict[str, Any]]) -> str:
        path = file_name(workdir, ".jsonl")
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return str(path)

    return st.one_of(st.builds(write, records_lines()), st.just(str(workdir / "missing.jsonl")))


def outputs(workdir: Path, *suffixes: str) -> st.SearchStrategy[str]:
    """A fresh output path with one of ``suffixes``, or one in a missing folder."""
    fresh = st.sampled_from(suffixes).map(lambda s: str(file_name(workdir, s)))
    return st.one_of(fresh, st.just(str(workdir / "no-such-folder" / f"x{suffixes[0]}")))


# --------------------------------------------------------------------------- solve


@st.composite
def solve_args(draw: Draw, workdir: Path) -> list[str]:
    args = ["solve"]
    if draw(st.booleans()):
        args.append(draw(profile_files(workdir)))
    return args + options(
        draw,
        {
            "--rate": numbers(0.05, 0.1, 8.0),
            "--alpha": numbers(0.5, 30.0, 1e4),
            "--max-tokens": MAX_TOKENS,
            "--method": st.sampled_from(["auto", "newton", "fixed-point", "gradient", "x"]),
            "--integer": st.sampled_from(["best", "round", "x"]),
            "--tol": numbers(1e-7, 1e-3, 10.0),
            "--max-iter": counts(1, 50),
            "--json": None,
            "--uncertainty": counts(1, 3),
            "--slo": SLOS,
        },
    )


@fuzz(150)
@given(data=st.data())
def test_solve_never_ends_in_a_traceback(data: st.DataObject, workdir: Path) -> None:
    check(data.draw(solve_args(workdir)))


# --------------------------------------------------------------------------- frontier

SLOS = st.sampled_from(
    ["mean<=2s", "p95<=8s", "p99.9<=1min", "task0:p95<=500ms", "TASK1:mean<=3s", "nope:p95<=1s",
     "p100<=1s", "p0<=1s", "p95<=8", "p95<=8m", "mean<=0s", "mean<=-1s", "p95<=nans", "x", ""]
)  # fmt: skip


@st.composite
def frontier_args(draw: Draw, workdir: Path) -> list[str]:
    args = ["frontier", "--points", draw(counts(2, 6))]
    if draw(st.booleans()):
        args.append(draw(profile_files(workdir)))
    if draw(st.integers(0, 9)) == 0:  # drawing takes a second: now and then
        args += ["--plot", draw(outputs(workdir, ".png", ".svg", ".txt"))]
    return args + options(
        draw,
        {
            "--slo": SLOS,
            "--rate": numbers(0.05, 0.1, 8.0),
            "--alpha": numbers(0.5, 30.0),
            "--max-tokens": MAX_TOKENS,
            "--queries": counts(1000, 3000),
            "--seed": SEEDS,
            "--json": None,
        },
    )


@fuzz(60)
@given(data=st.data())
def test_frontier_never_ends_in_a_traceback(data: st.DataObject, workdir: Path) -> None:
    check(data.draw(frontier_args(workdir)))


# --------------------------------------------------------------------------- simulate


@st.composite
def budgets_specs(draw: Draw, workdir: Path) -> str:
    kind = draw(st.sampled_from(["optimal", "uniform", "file", "other"]))
    if kind == "uniform":
        return "uniform:" + draw(st.sampled_from(["0", "1", "100", "2.5", "1e300", "-1", "x"]))
    if kind == "file":
        path = file_name(workdir, ".json")
        budgets = {f"task{k}": draw(st.sampled_from([0, 3, 2.5, -1, 1e300])) for k in range(3)}
        path.write_text(json.dumps(budgets), encoding="utf-8")
        return str(path)
    return draw(st.sampled_from(["optimal", "uniform:", "nothing.json"]))


@st.composite
def simulate_args(draw: Draw, workdir: Path) -> list[str]:
    args = ["simulate", "--queries", draw(counts(20, 2000))]
    if draw(st.booleans()):
        args.append(draw(profile_files(workdir)))
    return args + options(
        draw,
        {
            "--budgets": budgets_specs(workdir),
            "--seed": SEEDS,
            "--rate": numbers(0.05, 0.1, 8.0),
            "--alpha": numbers(0.5, 30.0),
            "--max-tokens": MAX_TOKENS,
            "--json": None,
        },
    )


@fuzz(120)
@given(data=st.data())
def test_simulate_never_ends_in_a_traceback(data: st.DataObject, workdir: Path) -> None:
    check(data.draw(simulate_args(workdir)))


# --------------------------------------------------------------------------- sweep


@st.composite
def sweep_args(draw: Draw, workdir: Path) -> list[str]:
    args = ["sweep", "--over", draw(mostly(st.sampled_from(["rate", "alpha"]), st.just("beta")))]
    args += ["--from", draw(numbers(0.01, 0.1, 1.0, 8.0))]
    args += ["--to", draw(numbers(0.2, 5.0, 10.0, 100.0))]
    args += ["--points", draw(counts(2, 5)), "--queries", draw(counts(0, 300))]
    if draw(st.booleans()):
        args.append(draw(profile_files(workdir)))
    if draw(st.integers(0, 9)) == 0:  # drawing takes a second: now and then
        args += ["--plot", draw(outputs(workdir, ".svg", ".txt"))]
    return args + options(draw, {"--seed": SEEDS, "--json": None})


@fuzz(100)
@given(data=st.data())
def test_sweep_never_ends_in_a_traceback(data: st.DataObject, workdir: Path) -> None:
    check(data.draw(sweep_args(workdir)))


# --------------------------------------------------------------------------- plan


@st.composite
def plan_args(draw: Draw, workdir: Path) -> list[str]:
    args = ["plan"]
    if draw(st.booleans()):
        args.append(draw(profile_files(workdir)))
    slos = st.sampled_from(["p95<=8s", "mean<=3s", "p99<=1ms", "p95<8s", "p100<=1s", "x"])
    args += [word for _ in range(draw(st.integers(0, 2))) for word in ("--slo", draw(slos))]
    if draw(st.integers(0, 9)) == 0:  # drawing takes a second: now and then
        args += ["--plot", draw(outputs(workdir, ".png", ".txt"))]
    return args + options(
        draw,
        {
            "--rate": numbers(0.5, 2.0),
            "--min-accuracy": numbers(0.3, 0.39, 1.0),
            "--json": None,
        },
    )


@fuzz(12)
@given(data=st.data())
def test_plan_never_ends_in_a_traceback(data: st.DataObject, workdir: Path) -> None:
    check(data.draw(plan_args(workdir)))


# --------------------------------------------------------------------------- reproduce


@fuzz(6)
@given(data=st.data())
def test_reproduce_never_ends_in_a_traceback(data: st.DataObject, workdir: Path) -> None:
    a_file = workdir / "a-file"
    a_file.touch()
    out = data.draw(st.one_of(outputs(workdir, ""), st.just(str(a_file))))
    check(["reproduce", "--out", out, data.draw(profile_files(workdir))])


# --------------------------------------------------------------------------- fit


@st.composite
def fit_args(draw: Draw, workdir: Path) -> list[str]:
    files = draw(st.lists(records_files(workdir), min_size=1, max_size=2))
    args = ["fit", *files, "--bootstrap", draw(counts(0, 4))]
    if draw(st.integers(0, 9)) == 0:
        args += ["--plots", str(file_name(workdir, ""))]
    return args + options(
        draw,
        {
            "-o": outputs(workdir, ".toml", ".json", ".txt"),
            "--rate": numbers(0.1, 1.0),
            "--alpha": numbers(30.0),
            "--shares": st.sampled_from(["empirical", "uniform", "x"]),
            "--max-tokens": MAX_TOKENS,
            "--seed": SEEDS,
            "--json": None,
        },
    )


@fuzz(80)
@given(data=st.data())
def test_fit_never_ends_in_a_traceback(data: st.DataObject, workdir: Path) -> None:
    args = data.draw(fit_args(workdir))
    result = check(args)
    out = args[args.index("-o") + 1] if "-o" in args else ""
    if result.exit_code == 0 and out.endswith((".toml", ".json")):  # its replicates, any rate
        more = options(data.draw, {"--rate": numbers(0.05, 0.5), "--alpha": numbers(1.0, 30.0)})
        check(["solve", out, "--uncertainty", data.draw(counts(1, 3)), *more])


# --------------------------------------------------------------------------- servers


def urls(refused: str) -> st.SearchStrategy[str]:
    return st.sampled_from([refused, refused, refused.removesuffix("/v1"), "ftp://x", "x", ""])


@st.composite
def profile_args(draw: Draw, workdir: Path, refused: str, data_dir: Path) -> list[str]:
    args = ["profile", "--base-url", draw(urls(refused)), "--model", "m"]
    args += ["--dataset", draw(st.sampled_from(["gsm8k", "gsm8k,gsm8k", "nope", ",", "aime"]))]
    args += ["--budgets", draw(st.sampled_from(["0,32", "0", "-1", "1,1", "x", ""]))]
    args += ["-o", draw(outputs(workdir, ".jsonl", ".txt"))]
    args += ["--data-dir", draw(st.sampled_from([str(data_dir), str(workdir / "none")]))]
    return args + options(
        draw,
        {
            "--samples": counts(1, 3),
            "--runs": counts(1, 2),
            "--concurrency": counts(1, 4),
            "--seed": SEEDS,
            "--mode": st.sampled_from(["force", "cap", "x"]),
            "--template": st.sampled_from(["server", "chatml", "x"]),
            "--thinking": st.sampled_from(["tags", "free", "x"]),
            "--temperature": numbers(0.0, 0.6, 2.0),
            "--top-p": numbers(0.5, 1.0),
            "--suppress-ids": st.sampled_from(["1,2", "-1", "x"]),
            "--tokenizer": st.just(str(workdir / "missing-tokenizer.json")),
            "--api-key-env": st.sampled_from(["THINKQ_FUZZ_KEY", "THINKQ_FUZZ_UNSET"]),
            "--retries": counts(0, 1),
            "--timeout": numbers(0.5, 2.0),
        },
    )


@fuzz(60)
@given(data=st.data())
def test_profile_never_ends_in_a_traceback(
    data: st.DataObject, workdir: Path, refused_url: str, data_dir: Path
) -> None:
    result = check(data.draw(profile_args(workdir, refused_url, data_dir)))
    assert result.exit_code != 0  # nothing answers


@st.composite
def serve_args(draw: Draw, workdir: Path, refused: str) -> list[str]:
    args = ["serve", "--upstream", draw(urls(refused)), "--profile"]
    args += [draw(profile_files(workdir)), "--timeout", draw(numbers(0.5, 2.0))]
    return args + options(
        draw,
        {
            "--model": st.sampled_from(["m", ""]),
            "--port": counts(0, 65535),
            "--mode": st.sampled_from(["force", "cap", "x"]),
            "--template": st.sampled_from(["server", "chatml", "x"]),
            "--concurrency": counts(1, 4),
            "--resolve-every": numbers(0.5, 5.0),
            "--window": numbers(1.0, 60.0),
            "--max-body": counts(1, 10**6),
            "--max-queue": counts(0, 64),
            "--api-key-env": st.sampled_from(["THINKQ_FUZZ_KEY", "THINKQ_FUZZ_UNSET"]),
            "--upstream-key-env": st.sampled_from(["THINKQ_FUZZ_KEY", "THINKQ_FUZZ_UNSET"]),
            "--suppress-ids": st.sampled_from(["1,2", "-1", "x"]),
            "--tokenizer": st.just(str(workdir / "missing-tokenizer.json")),
            "--refit": None,
            "--log-prompts": None,
        },
    )


@fuzz(60)
@given(data=st.data())
def test_serve_never_ends_in_a_traceback(
    data: st.DataObject, workdir: Path, refused_url: str
) -> None:
    result = check(data.draw(serve_args(workdir, refused_url)))
    assert result.exit_code != 0  # the upstream is down: the gateway never starts


@st.composite
def loadtest_args(draw: Draw, refused: str, data_dir: Path) -> list[str]:
    args = ["loadtest", "--target", draw(urls(refused))]
    args += ["--rate", draw(numbers(1e-9, 1.0, 1e6)), "--queries", draw(counts(1, 5))]
    args += ["--data-dir", str(data_dir)]
    return args + options(
        draw,
        {
            "--mix": st.sampled_from(["gsm8k=1", "gsm8k=0.5,aime=0.5", "gsm8k=-1", "x", "a=1"]),
            "--max-tokens": counts(1, 64),
            "--seed": SEEDS,
            "--api-key-env": st.sampled_from(["THINKQ_FUZZ_KEY", "THINKQ_FUZZ_UNSET"]),
            "--json": None,
        },
    )


@fuzz(60)
@given(data=st.data())
def test_loadtest_never_ends_in_a_traceback(
    data: st.DataObject, refused_url: str, data_dir: Path
) -> None:
    result = check(data.draw(loadtest_args(refused_url, data_dir)))
    assert result.exit_code != 0  # nothing answers


# --------------------------------------------------------------------------- any words


COMMANDS = ["profile", "fit", "solve", "frontier", "simulate", "sweep", "reproduce", "serve",
            "loadtest"]  # fmt: skip
COMMANDS.append("plan")
WORDS = st.sampled_from(
    [*COMMANDS, "-h", "--help", "--json", "--rate", "--seed", "-1", "1e300", "x", "--", "-"]
)


@fuzz(100)
@given(words=st.lists(WORDS, max_size=4))
def test_any_words_end_in_help_or_one_error_line(words: list[str]) -> None:
    if set(words) & {"serve", "loadtest", "profile", "reproduce"}:
        words = [*words, "--help"]  # these would wait for a server or write files here
    check(words)


# --------------------------------------------------------------------------- regressions
# Each traceback the fuzz (or issue 12) found, with what the command does now.


def zero_t0_profile(workdir: Path, **top: Any) -> Path:
    """Two tasks whose every t0 is 0 (a valid profile: the queue never saturates)."""
    task = {"share": 1.0, "A": 0.7, "b": 2.5e-3, "D": 0.25, "t0": 0.0, "c": 0.013}
    doc: Document = {"rate": 0.2, "alpha": 30.0, "max_tokens": 4096}
    doc |= top
    doc["tasks"] = [{"name": "math", **task}, {"name": "trivia", **task, "A": 0.3, "D": 0.6}]
    return write_document(file_name(workdir, ".toml"), doc)


def test_sweep_over_rate_with_every_t0_zero(workdir: Path) -> None:
    # was: ZeroDivisionError in the saturation rate 1 / E[S(0)]
    path = str(zero_t0_profile(workdir))
    args = ["sweep", path, "--over", "rate", "--from", "0.1", "--to", "1", "--points", "2"]
    table = check([*args, "--queries", "0"])
    assert table.exit_code == 0
    assert "zero budgets are stable at every rate (every t0 is 0)" in table.stdout
    data = json.loads(check([*args, "--queries", "100", "--json"]).stdout)
    assert data["saturation_rate"] is None  # infinite
    assert all(point["stable"] for point in data["points"])


@pytest.mark.parametrize(
    "args",
    [
        ["solve", "--alpha", "1e300"],  # was: ZeroDivisionError (a slack of 0 in Lemma 2)
        ["solve", "--alpha", "1.7e308", "--max-iter", "1"],
        ["solve", "--rate", "5e-324"],  # was: ZeroDivisionError (L_J = 0 in 2 / L_J)
    ],
)
def test_extreme_operating_points_solve_or_warn(args: list[str]) -> None:
    result = check(args)
    assert result.exit_code in (0, 1)  # 1: the solver says it stopped short
    assert "Optimal budgets" in result.stdout


def test_a_rate_near_the_largest_float_with_every_t0_zero(workdir: Path) -> None:
    # was: OverflowError of rate**3 in the Hessian
    path = str(zero_t0_profile(workdir))
    result = check(["solve", path, "--rate", "1.7e308", "--json"])
    assert result.exit_code in (0, 1)
    assert json.loads(result.stdout)["rate"] == 1.7e308


def test_reproduce_with_unstable_parts_finishes_the_rest(workdir: Path) -> None:
    # was: ValueError from simulating Fig. 4's budgets beyond the stability edge
    out = file_name(workdir, "")
    result = check(["reproduce", "--out", str(out), str(zero_t0_profile(workdir))])
    assert result.exit_code == 0
    skipped = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert skipped == [
        "warning: skipped Fig. 3: the simulation of uniform 500 (rate * E[S] >= 1 at these "
        "budgets)",
        "warning: skipped Fig. 4: the simulations at math budgets 750, 800, 850, 900, 950, 1000 "
        "(rate * E[S] >= 1 there)",
    ]
    report = (out / "report.md").read_text("utf-8")
    assert "## Skipped (the queue is unstable there)" in report
    assert "of 15 simulated points" in report  # 21 points, 6 of them unstable
    assert (out / "fig4_sensitivity.svg").exists()


def test_reproduce_where_every_simulation_has_a_zero_width_interval(workdir: Path) -> None:
    # was: ValueError from matplotlib, an error bar of -1e-22 (an interval of width 0
    # rounding below its centre) at rate 1e-6 with t0 = 0, c = 1e-9 and l_max = 0
    task = {"name": "x", "share": 1.0, "A": 1e-6, "b": 1e-300, "D": 0.0, "t0": 0.0, "c": 1e-9}
    doc = {"rate": 1e-6, "alpha": 1e-6, "max_tokens": 0, "tasks": [task]}
    path = write_document(file_name(workdir, ".toml"), doc)
    out = file_name(workdir, "")
    result = check(["reproduce", "--out", str(out), str(path)])
    assert result.exit_code == 0
    assert (out / "fig3_policies.svg").exists()


def test_reproduce_refuses_a_profile_it_cannot_simulate_before_writing(workdir: Path) -> None:
    # was: ValueError (a variance around t0 = 0) after half the files were written
    doc = {"rate": 0.2, "alpha": 30.0, "max_tokens": 100, "tasks": [
        {"name": "x", "share": 1, "A": 0.5, "b": 0.01, "D": 0, "t0": 0.0, "c": 0.01,
         "variance": 1.0},
    ]}  # fmt: skip
    out = file_name(workdir, "")
    result = check(
        ["reproduce", "--out", str(out), str(write_document(file_name(workdir, ".json"), doc))]
    )
    assert result.exit_code == 2
    assert "variance" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", [["simulate"], ["fit", "x.jsonl"], ["sweep", "--over", "rate"]])
def test_a_negative_seed_is_an_option_error(command: list[str]) -> None:
    # was: ValueError from numpy's generator (fit), an error that named no option (simulate)
    result = check([*command, "--seed", "-1"])
    assert result.exit_code == 2
    assert "'--seed'" in result.stderr


def test_sweep_with_too_few_queries_names_the_option() -> None:
    args = ["sweep", "--over", "rate", "--from", "0.1", "--to", "1", "--queries", "1"]
    result = check(args)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: option --queries: expected an integer >= 20, got 1"


def test_loadtest_against_a_refused_port_fails_at_once(refused_url: str, data_dir: Path) -> None:
    # was: waiting out the schedule of its queries (1e9 s at --rate 1e-9) before failing
    args = ["loadtest", "--target", refused_url, "--rate", "1e-9", "--queries", "2"]
    result = check([*args, "--mix", "gsm8k=1", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: option --target: cannot connect to {refused_url}")


def test_simulate_json_budgets_are_integers_where_they_are() -> None:
    data = json.loads(check(["simulate", "--queries", "100", "--json"]).stdout)
    assert [t["budget"] for t in data["tasks"]] == [0, 341, 0, 0, 346, 30]
    assert all(isinstance(t["budget"], int) for t in data["tasks"])
    assert (data["format"], type(data["seed"])) == ("thinkq-simulate/1", int)
    half = json.loads(
        check(["simulate", "--queries", "100", "--budgets", "uniform:2.5", "--json"]).stdout
    )
    assert {t["budget"] for t in half["tasks"]} == {2.5}


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["sweep", "--over", "rate", "--from", "1", "--to", "2", "--points", "10**12"], "--points"),
        (["fit", "x.jsonl", "--bootstrap", "10**12"], "--bootstrap"),
        (["loadtest", "--target", "http://127.0.0.1:9/v1", "--rate", "1", "--queries", "10**12"],
         "--queries"),
    ],
)  # fmt: skip
def test_sizes_beyond_memory_are_option_errors(args: list[str], option: str) -> None:
    # was: MemoryError (7 TiB for the sweep's values, 146 TiB for the replicates)
    args = [str(10**12) if a == "10**12" else a for a in args]
    result = check(args)
    assert result.exit_code == 2
    assert f"'{option}'" in result.stderr


def test_running_out_of_memory_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from thinkq.cli import _solve

    def exhausted(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(_solve, "solve", exhausted)
    result = check(["solve"])
    assert result.exit_code == 1
    assert result.stderr == "error: not enough memory for this run; ask for less\n"
