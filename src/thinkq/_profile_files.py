"""Reading profile files: TOML or JSON into checked columns (keys and types only).

The values' ranges are checked by :mod:`thinkq._profile_checks` when the
:class:`~thinkq.profile.Profile` is built.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thinkq._profile_checks import (
    OPTIONAL_TASK_KEYS,
    ROUTING_TASK_KEYS,
    TASK_KEYS,
    is_number,
)
from thinkq.errors import ProfileError, ProfileFileError

__all__ = ["columns", "parse"]


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
