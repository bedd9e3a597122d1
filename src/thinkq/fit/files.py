"""Writing a fit: the profile file and, beside it, the fit report with its replicates.

``thinkq fit ... -o NAME.toml`` writes two files, each atomically:

* ``NAME.toml`` (or ``.json``): an ordinary profile that :func:`thinkq.load_profile`
  and ``thinkq solve`` read; the TOML form notes each parameter's interval in a
  comment;
* ``NAME.fit.json``: the fit report (:meth:`FitResult.to_dict`) with the bootstrap
  replicates, which ``thinkq solve NAME.toml --uncertainty R`` reads.

The profile stays the one source of the operating point and the shares (edit them
freely); :func:`read_replicates` refuses a report whose curve parameters are no longer
the profile's, so a stale report is never propagated silently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from thinkq._files import write_atomic
from thinkq._json import finite
from thinkq.fit.result import FitResult
from thinkq.fit.uncertainty import PARAMETERS, Replicates
from thinkq.profile import Profile

__all__ = ["profile_text", "read_replicates", "report_path", "write_fit"]

_UNITS = {
    "A": "",
    "b": "per token",
    "D": "",
    "t0": "s",
    "c": "s per token",
    "variance": "s^2",
}


def report_path(profile_path: Path) -> Path:
    """Where the fit report of ``profile_path`` lives: ``NAME.fit.json`` beside it."""
    return profile_path.with_name(f"{profile_path.stem}.fit.json")


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string (with \\u escapes) is also a valid TOML basic string


def profile_text(result: FitResult, *, suffix: str = ".toml") -> str:
    """The profile file's text, TOML (commented) or JSON."""
    p = result.profile
    if suffix == ".json":
        return json.dumps(p.to_dict(), indent=2) + "\n"
    level = f"{result.level:.0%}"
    lines = [
        f"# Fitted by thinkq fit from {', '.join(result.files)}"
        + (f" (model {result.model})" if result.model else ""),
        "# accuracy p(l) = A (1 - exp(-b l)) + D (eq. 2), service time t(l) = t0 + c l (eq. 1);",
        f"# comments give {level} bootstrap intervals; the fit report is in "
        "the .fit.json file beside this one.",
        f"rate = {p.rate!r}  # queries per second (thinkq fit --rate)",
        f"alpha = {p.alpha!r}  # weight of accuracy against one second of system time",
        f"max_tokens = {p.max_tokens}  # l_max (largest measured budget: {result.measured_max})",
        *_server_lines(result),
    ]
    for k, task in enumerate(result.tasks):
        lines += [
            "",
            "[[tasks]]",
            f"name = {_toml_string(task.name)}",
            f"share = {float(p.share[k])!r}  # {task.data.queries} queries measured",
        ]
        lift = result.prompt.lift(k) if result.prompt is not None else 0.0
        for key in PARAMETERS:
            value = float(getattr(p, key)[k])
            shift = lift if key == "t0" else 0.0
            note = []
            if key in task.intervals:
                low, high = task.intervals[key]
                note.append(f"[{low + shift:.4g}, {high + shift:.4g}]")
            if _UNITS[key]:
                note.append(_UNITS[key])
            if shift:
                note.append(
                    f"(the line's {task.latency.t0:.4g} s + {shift:.4g} s: a new prompt; "
                    "the line was measured with prompts held)"
                )
            comment = f"  # {' '.join(note)}" if note else ""
            lines.append(f"{key} = {value!r}{comment}")
    return "\n".join(lines) + "\n"


def _prompt_lines(result: FitResult) -> list[str]:
    """The ``[server]`` table's ``prompt`` line (a comment where it was left out)."""
    fit = result.prompt
    if fit is None:
        return []
    if not fit.applied:
        return [f"# prompt not written ({fit.probes} probes): {fit.why}"]
    interval = f"[{fit.interval[0]:.4g}, {fit.interval[1]:.4g}] " if fit.interval else ""
    return [
        f"prompt = {fit.prompt!r}  # {interval}s: a new prompt computed alone while the batch "
        f"waits ({fit.probes} probes)"
    ]


def _server_lines(result: FitResult) -> list[str]:
    """The ``[server]`` table with its intervals in comments (none without a server fit)."""
    fit = result.server
    if fit is None:
        return []
    s, iv = fit.server, fit.intervals

    def note(key: str, unit: str) -> str:
        if key not in iv:
            return f"  # {unit}"
        low, high = iv[key]
        return f"  # [{low:.4g}, {high:.4g}] {unit}"

    check = (
        f"a level left out is predicted within {fit.held_out:.1%}"
        if fit.held_out is not None
        else "too few levels to leave one out"
    )
    return [
        "",
        "# step time tau(n) = tau0 + tau1 n seconds per decode step with n queries in the batch,",
        f"# from {fit.data.requests} requests at concurrency "
        f"{', '.join(str(int(n)) for n in fit.data.levels)} ({check}"
        + ("" if fit.linear else "; NOT linear on these data, see the .fit.json")
        + ")",
        "[server]",
        f"slots = {s.slots}  # the most queries decoded at once (thinkq profile --slots)",
        f"tau0 = {s.tau0!r}{note('tau0', 's per step')}",
        f"tau1 = {s.tau1!r}{note('tau1', 's per step per query in the batch')}",
        *(
            [
                f"# steps (n, s per step), interpolated: {fit.steps_text}",
                f"steps = [{', '.join(f'[{n}, {t!r}]' for n, t in s.steps)}]",
            ]
            if s.steps
            else []
        ),
        *_prompt_lines(result),
    ]


def write_fit(result: FitResult, path: Path) -> list[Path]:
    """Write the profile to ``path`` (.toml or .json) and its report beside it.

    Each file is written atomically; the report goes first, and is removed again if
    the profile cannot be written, so no half pair is left behind.
    """
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ValueError(f"path: {path}: a profile file ends in .toml or .json")
    report = report_path(path)
    payload = finite(result.to_dict(replicates=True))
    write_atomic(report, json.dumps(payload, indent=1, allow_nan=False) + "\n")
    try:
        write_atomic(path, profile_text(result, suffix=suffix))
    except BaseException:
        report.unlink(missing_ok=True)
        raise
    return [path, report]


def read_replicates(profile: Profile, profile_path: Path) -> Replicates:
    """The bootstrap replicates of the fit that wrote ``profile_path``.

    Raises ``ValueError`` (one line, naming the report file) when the report is
    missing, malformed, has no replicates, or no longer matches the profile's tasks
    and curve parameters.
    """
    report = report_path(profile_path)
    try:
        data = json.loads(report.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(
            f"{report}: no fit report beside the profile (thinkq fit -o {profile_path} writes one)"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{report}: not a fit report: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != "thinkq-fit/1":
        raise ValueError(f"{report}: not a thinkq fit report (format thinkq-fit/1)")
    if "replicates" not in data:
        raise ValueError(f"{report}: the fit stored no replicates (it ran with --bootstrap 0)")
    try:
        replicates = Replicates.from_dict(data["replicates"])
    except ValueError as exc:
        raise ValueError(f"{report}: {exc}") from exc
    fitted = data.get("profile", {}).get("tasks", [])
    if [t.get("name") for t in fitted if isinstance(t, dict)] != list(profile.names):
        raise ValueError(f"{report}: the fit's tasks are not those of {profile_path}")
    for key in PARAMETERS:
        values = np.array([float(t.get(key, 0.0)) for t in fitted])
        if not np.allclose(values, getattr(profile, key), rtol=1e-9, atol=0.0):
            raise ValueError(
                f"{report}: {profile_path} was edited after the fit (its '{key}' differs "
                "from the fitted one); refit, or propagate without --uncertainty"
            )
    return replicates
