"""A set of measurements read from files: :class:`RecordSet`."""

from __future__ import annotations

from dataclasses import dataclass

from thinkq.records.lines import Record, SummaryRow

__all__ = ["RecordSet"]


@dataclass(frozen=True)
class RecordSet:
    """Everything read from the files: records and summary rows, with their origin.

    ``record_lines`` and ``summary_lines`` give ``FILE:LINE`` of each entry;
    ``failed`` counts the records of failed queries, which are left out.
    """

    records: tuple[Record, ...]
    record_lines: tuple[str, ...]
    summaries: tuple[SummaryRow, ...]
    summary_lines: tuple[str, ...]
    files: tuple[str, ...]
    failed: int = 0

    @property
    def model(self) -> str | None:
        """The model the records name (they all name the same one), if any."""
        return next((r.model for r in self.records if r.model is not None), None)

    @property
    def task_names(self) -> tuple[str, ...]:
        """The tasks in order of first appearance."""
        names = [r.task for r in self.records] + [s.task for s in self.summaries]
        return tuple(dict.fromkeys(names))
