"""Reading profiles: TOML or JSON files, decoded documents, the embedded Table I.

Here the keys and types of a document are checked and turned into columns; the
values' ranges are checked by :mod:`thinkq.profile.checks` when the
:class:`~thinkq.profile.Profile` is built.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from thinkq.batching.server import Server
from thinkq.errors import ProfileError, ProfileFileError
from thinkq.profile.checks import (
    COLUMNS,
    OPTIONAL_TASK_KEYS,
    OPTIONAL_TOP_KEYS,
    ROUTING_TASK_KEYS,
    SERVER_KEYS,
    TASK_KEYS,
    TOP_KEYS,
    is_number,
)
from thinkq.profile.instance import Profile

__all__ = [
    "columns",
    "load_profile",
    "paper_profile",
    "parse",
    "profile_from_dict",
    "server_from_table",
]


def parse(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise ProfileFileError(f"{path}: no such profile file") from exc
    except OSError as exc:
        raise ProfileFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise ProfileFileError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileFileError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileFileError(f"{path}: not UTF-8 text") from exc
    raise ProfileFileError(f"{path}: unknown profile format '{suffix}' (use .toml or .json)")


def columns(tasks: Sequence[Any]) -> dict[str, list[Any]]:
    """Check each task table's keys and types and turn them into columns."""
    columns: dict[str, list[Any]] = {key: [] for key in TASK_KEYS}
    for k, entry in enumerate(tasks):
        # the task as messages and ProfileError.task name it: by name, else by position
        label, task = f"task #{k + 1}", f"#{k + 1}"
        if not isinstance(entry, Mapping):
            raise ProfileError(
                f"{label}: field 'tasks': expected a table of fields", field="tasks", task=task
            )
        name = entry.get("name")
        if isinstance(name, str) and name.strip():
            label, task = f"task '{name}'", name
        known = TASK_KEYS + OPTIONAL_TASK_KEYS + ROUTING_TASK_KEYS
        unknown = [key for key in entry if key not in known]
        if unknown:
            raise ProfileError(
                f"{label}: field '{unknown[0]}': unknown field (expected {', '.join(known)})",
                field=str(unknown[0]),
                task=task,
            )
        for key in TASK_KEYS:
            if key not in entry:
                raise ProfileError(f"{label}: field '{key}': missing", field=key, task=task)
            value = entry[key]
            if key == "name":
                if not isinstance(value, str):
                    raise ProfileError(
                        f"{label}: field 'name': expected a string, got {value!r}",
                        field="name",
                        task=task,
                    )
            elif not is_number(value):
                raise ProfileError(
                    f"{label}: field '{key}': expected a number, got {value!r}",
                    field=key,
                    task=task,
                )
            columns[key].append(value)
        for key in OPTIONAL_TASK_KEYS:
            value = entry.get(key, 0.0)
            if not is_number(value):
                raise ProfileError(
                    f"{label}: field '{key}': expected a number, got {value!r}",
                    field=key,
                    task=task,
                )
            columns.setdefault(key, []).append(value)
        patterns = entry.get("match", [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ProfileError(
                f"{label}: field 'match': expected a list of regular expressions, got {patterns!r}",
                field="match",
                task=task,
            )
        columns.setdefault("match", []).append(tuple(patterns))
    return columns


def server_from_table(table: Any) -> Server | None:
    """The ``[server]`` table (``slots``, ``tau0``, ``tau1``) as a Server, or ``None``."""
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ProfileError(
            f"field 'server': expected a table with {', '.join(SERVER_KEYS)}, got {table!r}",
            field="server",
        )
    unknown = [key for key in table if key not in SERVER_KEYS]
    if unknown:
        raise ProfileError(
            f"field 'server.{unknown[0]}': unknown field (expected {', '.join(SERVER_KEYS)})",
            field=f"server.{unknown[0]}",
        )
    if "slots" not in table:
        raise ProfileError("field 'server.slots': missing", field="server.slots")
    slots = table["slots"]
    several = isinstance(slots, int) and not isinstance(slots, bool) and slots > 1
    keys = dict(table)
    if "steps" in keys and ("tau0" not in keys or "tau1" not in keys):
        keys = _line_of_steps(keys)  # the measured steps are the law; the line is theirs
    for key in ("tau0", "tau1") if several else ():
        if key not in keys:
            raise ProfileError(
                f"field 'server.{key}': missing (the step time is tau0 + tau1 n seconds "
                "with n sequences in the batch, or give the measured steps)",
                field=f"server.{key}",
            )
    return Server(**{key: keys[key] for key in SERVER_KEYS if key in keys})


def _line_of_steps(table: dict[str, Any]) -> dict[str, Any]:
    """tau0 and tau1 from the first and last measured steps, where the table omits them."""
    points = Server(slots=table["slots"], steps=table["steps"]).steps  # checked here
    if not points:
        return table
    (n1, t1), (n2, t2) = points[0], points[-1]
    slope = max((t2 - t1) / (n2 - n1), 0.0) if n2 != n1 else 0.0
    return {"tau0": max(t1 - slope * n1, 0.0), "tau1": slope} | table


def profile_from_dict(data: Any, *, source: str = "<memory>") -> Profile:
    """Validate a decoded profile document (the TOML/JSON structure) into a Profile."""
    if not isinstance(data, Mapping):
        raise ProfileError("the profile must be a table with rate, alpha, max_tokens and tasks")
    unknown = [key for key in data if key not in TOP_KEYS + OPTIONAL_TOP_KEYS]
    if unknown:
        raise ProfileError(
            f"field '{unknown[0]}': unknown field "
            f"(expected {', '.join(TOP_KEYS + OPTIONAL_TOP_KEYS)})",
            field=str(unknown[0]),
        )
    for key in TOP_KEYS:
        if key not in data:
            raise ProfileError(f"field '{key}': missing", field=key)
    tasks = data["tasks"]
    if not isinstance(tasks, list):
        raise ProfileError("field 'tasks': expected a list of task tables", field="tasks")
    task_columns = columns(tasks)
    default_task = data.get("default_task")
    if default_task is not None and not isinstance(default_task, str):
        raise ProfileError(
            f"field 'default_task': expected a task name, got {default_task!r}",
            field="default_task",
        )
    return Profile.from_arrays(
        names=task_columns["name"],
        server=server_from_table(data.get("server")),
        **{key: task_columns[key] for key in COLUMNS if key in task_columns},
        rate=data["rate"],
        alpha=data["alpha"],
        max_tokens=data["max_tokens"],
        source=source,
        match=task_columns["match"] if any(task_columns.get("match", ())) else (),
        default_task=default_task,
    )


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile from a ``.toml`` or ``.json`` file.

    Raises
    ------
    ProfileFileError
        The file is missing, unreadable, or does not parse.
    ProfileError
        A field is missing, unknown, of the wrong type, or out of range; the message
        names the task and the field. :class:`UnstableLoadError` if
        ``rate * E[S(0)] >= 1``.
    """
    path = Path(path)
    data = parse(path)
    try:
        return profile_from_dict(data, source=str(path))
    except ProfileError as exc:
        raise type(exc)(f"{path}: {exc}", field=exc.field, task=exc.task) from exc


def paper_profile() -> Profile:
    """The paper's Table I (section IV): six datasets, rate 0.1, alpha 30, l_max 32768."""
    text = resources.files("thinkq").joinpath("data/paper.toml").read_text("utf-8")
    return profile_from_dict(tomllib.loads(text), source="paper (Table I)")
