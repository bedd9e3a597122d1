"""The settings that define a measurement run, kept beside its records.

``thinkq profile -o NAME.jsonl`` writes ``NAME.run.json`` (atomically) before its first
record: the model, datasets, sample size, budgets, runs, seed, template, mode, sampling
and concurrency that every record of the file was made under. A resumed run is compared
with it first (:func:`resume`): a different setting is a one-line error naming the
option, so runs are never mixed silently. ``extend`` is the one way to change a run: it
adds budgets and runs to the grid (the union of the budgets, the larger number of
runs); every other setting must stay as it was.

The settings live in a sidecar file rather than in the records: the ``.jsonl`` lines
stay what :mod:`thinkq.records` and ``thinkq fit`` read (old files too), and the one
place that changes when a run is extended is rewritten whole, never appended to.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkq._files import write_atomic

__all__ = ["FORMAT", "RunSettings", "read_settings", "resume", "settings_path", "write_settings"]

FORMAT = "thinkq-run/1"

#: Each setting's option of ``thinkq profile``, in the order they are compared.
OPTIONS = {
    "model": "--model",
    "datasets": "--dataset",
    "bbh_tasks": "--bbh-tasks",
    "samples": "--samples",
    "seed": "--seed",
    "mode": "--mode",
    "template": "--template",
    "thinking": "--thinking",
    "budget_field": "--budget-field",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "concurrency": "--concurrency",
    "budgets": "--budgets",
    "runs": "--runs",
}
#: The settings ``extend`` may change: it adds budgets and runs.
EXTENDABLE = ("budgets", "runs")


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What defines a run; two runs with equal settings measure the same grid.

    ``budgets`` (tokens) are sorted and distinct; ``bbh_tasks`` is None unless BBH is
    measured; ``budget_field`` is None outside cap mode.
    """

    model: str
    datasets: tuple[str, ...]
    samples: int
    budgets: tuple[int, ...]
    runs: int
    seed: int
    mode: str
    template: str
    temperature: float
    top_p: float
    concurrency: int
    thinking: str | None = None
    budget_field: str | None = None
    bbh_tasks: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "budgets", tuple(sorted(set(self.budgets))))
        object.__setattr__(self, "datasets", tuple(sorted(set(self.datasets))))
        if self.bbh_tasks is not None:
            object.__setattr__(self, "bbh_tasks", tuple(sorted(set(self.bbh_tasks))))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists for tuples)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunSettings:
        """Read :meth:`to_dict`'s form; ``ValueError`` names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object of settings")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - data.keys())
        if missing:
            raise ValueError(f"setting {missing[0]!r} is missing")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names
        }
        try:
            settings = cls(**values)
        except TypeError as exc:
            raise ValueError(f"malformed settings: {exc}") from exc
        if settings.to_dict() != {k: data[k] for k in names}:
            raise ValueError("malformed settings (a value of the wrong type)")
        return settings


def settings_path(out: Path) -> Path:
    """Where the settings of the records ``out`` live: ``NAME.run.json`` beside it."""
    return out.with_name(f"{out.stem}.run.json")


def read_settings(out: Path) -> RunSettings | None:
    """The settings beside ``out``, or None if there are none.

    Raises ``ValueError`` (one line, naming the file) for a file that is not settings.
    """
    path = settings_path(out)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: cannot read the run's settings: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not the settings of a thinkq profile run (format {FORMAT})")
    try:
        return RunSettings.from_dict(data.get("settings"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def write_settings(out: Path, settings: RunSettings) -> Path:
    """Write ``settings`` beside ``out``, atomically."""
    payload = {"format": FORMAT, "records": out.name, "settings": settings.to_dict()}
    return write_atomic(settings_path(out), json.dumps(payload, indent=1) + "\n")


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    return "(default)" if value is None else str(value)


def resume(
    out: Path,
    settings: RunSettings,
    *,
    extend: bool = False,
    options: dict[str, str] | None = None,
) -> RunSettings:
    """The settings to measure ``out`` with: ``settings``, checked against the file's.

    A new file (no records yet) takes ``settings`` as they are. With ``extend``, the
    budgets are the union of the file's and the new ones, the runs the larger number.
    ``options`` renames the options that errors name (default :data:`OPTIONS`; the
    server phase measures ``runs`` as ``--server-queries``, ``concurrency`` as ``--slots``).

    Raises
    ------
    ValueError
        ``option --NAME: ...``, one line: a setting differs from the file's (and is not
        one ``extend`` may change), or the settings file is malformed.
    """
    if not out.exists() or out.stat().st_size == 0:
        return settings
    try:
        old = read_settings(out)
    except ValueError as exc:
        raise ValueError(f"option -o: {exc}; it describes {out}") from exc
    if old is None:
        return settings
    if extend:
        settings = dataclasses.replace(
            settings,
            budgets=tuple(set(old.budgets) | set(settings.budgets)),
            runs=max(old.runs, settings.runs),
        )
    for name, option in {**OPTIONS, **(options or {})}.items():
        before, now = getattr(old, name), getattr(settings, name)
        if before == now or (extend and name in EXTENDABLE):
            continue
        hint = "add --extend to add budgets or runs, " if name in EXTENDABLE and not options else ""
        raise ValueError(
            f"option {option}: {out} was measured with {option} {_shown(before)}, not "
            f"{_shown(now)} (see {settings_path(out).name}); resume with the same settings, "
            f"{hint}or write to another -o"
        )
    return settings
