"""A set of measurements read from files: :class:`RecordSet`."""

from __future__ import annotations

from dataclasses import dataclass

from thinkq.records.lines import PromptRecord, Record, ServerRecord, SummaryRow

__all__ = ["RecordSet"]


@dataclass(frozen=True)
class RecordSet:
    """Everything read from the files: records and summary rows, with their origin.

    ``record_lines`` and ``summary_lines`` give ``FILE:LINE`` of each entry;
    ``failed`` counts the records of failed queries, which are left out. ``server``
    holds the server phase's records (``server_lines`` where they are) and ``prompts``
    its prompt probe's (``prompt_lines``), failed ones left out too.
    """

    records: tuple[Record, ...]
    record_lines: tuple[str, ...]
    summaries: tuple[SummaryRow, ...]
    summary_lines: tuple[str, ...]
    files: tuple[str, ...]
    failed: int = 0
    server: tuple[ServerRecord, ...] = ()
    server_lines: tuple[str, ...] = ()
    prompts: tuple[PromptRecord, ...] = ()
    prompt_lines: tuple[str, ...] = ()

    @property
    def model(self) -> str | None:
        """The model the records name (they all name the same one), if any."""
        every: tuple[Record | ServerRecord | PromptRecord, ...] = (
            *self.records,
            *self.server,
            *self.prompts,
        )
        return next((r.model for r in every if r.model is not None), None)

    @property
    def task_names(self) -> tuple[str, ...]:
        """The tasks in order of first appearance."""
        names = [r.task for r in self.records] + [s.task for s in self.summaries]
        return tuple(dict.fromkeys(names))
