"""What the gateway keeps of each finished request: record, metrics, refit, log line.

A request ends as ``ok``, ``upstream_error`` or ``disconnected``;
:meth:`Ledger.finish` turns it into a :class:`~thinkq.serve.queue.Record` (arrival,
wait, service time, type, budget, thinking tokens) and hands that to the sliding
window of records (the measured mean system time), the Prometheus metrics, the
online latency refit (successful requests only) and the per-request log line, which
carries the prompt only when asked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from thinkq.measure.generation import Generation
from thinkq.serve.estimator import Clock
from thinkq.serve.metrics import Metrics
from thinkq.serve.queue import Record, Records
from thinkq.serve.refit import LatencyRefit
from thinkq.serve.runs import Job

__all__ = ["Finished", "Ledger"]

log = logging.getLogger("thinkq.serve")


@dataclass(frozen=True, slots=True)
class Finished:
    """How a request's service went: its budget, when it started, what it generated."""

    budget: int
    started: float
    generation: Generation | None


class Ledger:
    """The books of finished requests (see the module docstring)."""

    def __init__(
        self,
        names: tuple[str, ...],
        *,
        records: Records,
        metrics: Metrics,
        refit: LatencyRefit | None,
        clock: Clock,
        log_prompts: bool,
    ) -> None:
        self.names = names
        self.records = records
        self.metrics = metrics
        self.refit = refit
        self.clock = clock
        self.log_prompts = log_prompts

    def finish(self, job: Job, run: Finished, outcome: str) -> Record:
        """Record ``job``, served as ``run``, with ``outcome``, now."""
        now, g = self.clock(), run.generation
        record = Record(
            arrival=job.arrival,
            wait=run.started - job.arrival,
            service=now - run.started,
            task=self.names[job.task],
            budget=run.budget,
            thinking_tokens=g.thinking_tokens if g is not None else 0,
            outcome=outcome,
        )
        self.records.add(record)
        self.metrics.record(record)
        if self.refit is not None and outcome == "ok":
            self.refit.observe(job.task, record.thinking_tokens, record.service)
        if log.isEnabledFor(logging.INFO):
            prompt = f" prompt={job.text[:200]!r}" if self.log_prompts else ""
            log.info(
                "%s task=%s budget=%d thinking_tokens=%d wait=%.3fs service=%.3fs%s",
                outcome,
                record.task,
                record.budget,
                record.thinking_tokens,
                record.wait,
                record.service,
                prompt,
            )
        return record
