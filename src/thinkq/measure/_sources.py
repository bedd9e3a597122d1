"""Where benchmark rows come from: local files, or Hugging Face ``datasets`` by name.

Both paths return plain dict rows with the fields of the local copies (the layout of
``shared/data/benchmarks``, see :func:`thinkq.measure.load_dataset`), so that one
builder per benchmark turns either into items. Foreign errors (``OSError``, JSON and
CSV errors, anything ``datasets`` raises) become :class:`~thinkq.errors.DatasetError`
here. Messages name the file, line and field, never a row's content: GPQA's authors
ask that its items not be reposted in plain text.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import json
from pathlib import Path
from typing import Any

from thinkq.errors import DatasetError

__all__ = ["Row", "hub_rows", "locate", "read_csv_gz", "read_json_examples", "read_jsonl"]

Row = dict[str, Any]

#: Hugging Face name, configuration and split of each local file's online twin.
HUB: dict[str, tuple[str, str | None, str]] = {
    "gsm8k": ("openai/gsm8k", "main", "test"),
    "aime24": ("Maxwell-Jia/AIME_2024", None, "train"),
    "aime25": ("MathArena/aime_2025", None, "train"),
    "gpqa": ("Idavidrein/gpqa", "gpqa_diamond", "train"),
    "cruxeval": ("cruxeval-org/cruxeval", None, "test"),
    "bbh": ("SaylorTwift/bbh", None, "test"),  # the configuration is the task name
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge", "test"),
}


def locate(data_dir: Path, folder: str, filename: str) -> Path:
    """The file ``folder/filename`` under ``data_dir``, or ``data_dir`` itself.

    ``data_dir`` may be the benchmarks folder (``data_dir/folder/filename``), the
    benchmark's own folder (``data_dir/filename``) or the file itself.
    """
    if data_dir.is_file():
        return data_dir
    for candidate in (data_dir / folder / filename, data_dir / filename):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"data_dir: no {folder}/{filename} under {data_dir}", field="data_dir")


def read_jsonl(path: Path) -> list[Row]:
    """Every line of a JSON Lines file as a dict (blank lines skipped)."""
    rows: list[Row] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path.name} line {number}: not JSON ({exc.msg})", field=path.name
            ) from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path.name} line {number}: not a JSON object", field=path.name)
        rows.append(row)
    return rows


def read_json_examples(path: Path) -> list[Row]:
    """The ``examples`` list of a BIG-Bench Hard task file."""
    try:
        document = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path.name}: not JSON ({exc.msg})", field=path.name) from exc
    examples = document.get("examples") if isinstance(document, dict) else None
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise DatasetError(
            f"{path.name}: field 'examples' is not a list of objects", field=path.name
        )
    return examples


def read_csv_gz(path: Path) -> list[Row]:
    """The rows of a gzip-compressed CSV file with a header line."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as stream:
            return list(csv.DictReader(stream))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(
            f"{path.name}: not a readable gzip CSV file ({type(exc).__name__})", field=path.name
        ) from exc


def hub_rows(name: str, *, config: str | None = None) -> list[Row]:
    """The rows of benchmark ``name`` from the Hugging Face hub (needs the ``hf`` extra).

    ``config`` overrides the configuration (BBH: the task name). Rows keep the hub's
    field names; :mod:`thinkq.measure._loaders` adapts the few that differ.
    """
    try:
        hf = importlib.import_module("datasets")
    except ImportError as exc:
        raise DatasetError(
            f"{name}: loading from Hugging Face needs the optional 'hf' extra "
            "(pip install 'thinkq[hf]'), or pass data_dir",
            field="data_dir",
        ) from exc
    repo, default_config, split = HUB[name]
    try:
        table = hf.load_dataset(repo, config or default_config, split=split)
        return [dict(row) for row in table]
    except Exception as exc:  # anything the hub raises: translate at the boundary
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise DatasetError(
            f"{name}: cannot load {repo} from Hugging Face ({type(exc).__name__}: {reason})",
            field="name",
        ) from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"{path.name}: cannot read ({type(exc).__name__})", field=path.name
        ) from exc
