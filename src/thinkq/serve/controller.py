"""Online control: re-solve the budgets at the estimated load and switch atomically.

Every ``resolve_every`` seconds the gateway calls :meth:`Controller.resolve`: it builds
the profile at the estimated operating point (rate lambda and shares pi_k from
:class:`~thinkq.serve.estimator.Estimator`), solves it with the default solver
(:func:`thinkq.solve`: projected Newton, then the best integer budgets of eq. 39) and
publishes a new :class:`Plan`. A plan is immutable and replaced as one reference, so
a request sees either the old budgets or the new ones, never a mixture.

Hysteresis: the budgets in force are kept unless the new ones raise J (eq. 7) at the
estimated load by more than ``hysteresis`` times |J|. Near the optimum J is flat, so
the noise of the rate estimate does not make budgets flap by a token or two; a real
change of load moves them. After an overloaded plan (zero budgets) the comparison is
with the last budgets in force before it, so that when a burst is over the budgets
come back to what they were unless the load after it is really different.

A profile with a ``[server]`` table (more than one slot) is solved and predicted
with the batched model (``docs/batching.md``), its step-time law refitted online with
the latency lines when refitting is on (:mod:`thinkq.serve.refit`; a prompt stage's
prompt held below 0.9 E[S(0)] of the refitted lines). With ``replicas`` > 1 the server
solved for is the fleet, :func:`thinkq.batching.fleet.replicated`: M/G/c (``docs/fleet.md``).

When even zero budgets are unstable at the estimated load (lambda E[S(0)] >= 1, eq. 4,
or beyond the batched server's load limit) the plan is *overloaded*: its budgets are
zero, and the gateway admits a request only while the work already queued would start
it soon (:mod:`thinkq.serve.admission`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from thinkq import model
from thinkq._typing import FloatArray
from thinkq.batching.delay import delay
from thinkq.batching.fleet import replicated
from thinkq.batching.server import Server
from thinkq.errors import UnstableLoadError
from thinkq.profile import Profile
from thinkq.serve.estimator import Estimate, Estimator
from thinkq.serve.refit import LatencyRefit, held_prompt
from thinkq.serve.slo import SloState, plan_slo, unmeetable
from thinkq.slo import Objective
from thinkq.solve import solve

__all__ = ["DEFAULT_HYSTERESIS", "MIN_RATE", "Controller", "Plan"]


#: Relative gain in J (eq. 7) below which the budgets in force are kept.
DEFAULT_HYSTERESIS = 1e-3
#: The rate solved for when no query arrived in the window (1/s): budgets for an idle server.
MIN_RATE = 1e-6


@dataclass(frozen=True, slots=True)
class Plan:
    """The budgets in force and what the model predicts for them at the estimated load.

    Attributes
    ----------
    budgets:
        Thinking tokens per task type, in the profile's order.
    rate:
        The estimated arrival rate the plan was solved for (1/s).
    shares:
        The estimated type shares (sum 1).
    utilization:
        lambda E[S] at ``budgets`` (at zero budgets when overloaded); on a batched
        server its :meth:`~thinkq.batching.Server.utilization`.
    predicted_mean_system_time:
        P-K mean system time (eq. 6) at ``budgets``, seconds (the batched model's on a
        batched server); ``inf`` when overloaded.
    predicted_mean_waiting_time:
        The part of it spent waiting for a slot, seconds.
    overloaded:
        Whether even zero budgets are unstable at the estimated load.
    mean_service:
        E[S] = sum_k pi_k (t0_k + c_k l_k) at ``budgets`` (eq. 1), seconds per query.
    t0, c:
        The latency line (eq. 1) solved with: the profile's, or refitted online.
    server:
        The server solved for (the profile's ``[server]`` table, its step-time law
        refitted online with ``--refit``), ``None`` without one.
    mean_batch:
        Predicted mean number in service (lambda E[S] on one slot).
    step_time:
        Predicted mean decode-step time while busy, seconds (``None`` without a
        server table).
    switched:
        Whether this plan's budgets replaced those of the plan before it.
    slo:
        Under latency objectives (``--slo``): the objectives as predicted at the
        budgets, the shadow price and the fraction admitted
        (:class:`~thinkq.serve.slo.SloState`); ``None`` without objectives.
    """

    budgets: tuple[int, ...]
    rate: float
    shares: tuple[float, ...]
    utilization: float
    predicted_mean_system_time: float
    overloaded: bool
    mean_service: float
    t0: tuple[float, ...]
    c: tuple[float, ...]
    predicted_mean_waiting_time: float = math.inf
    server: Server | None = None
    mean_batch: float = 0.0
    step_time: float | None = None
    switched: bool = False
    slo: SloState | None = None

    @property
    def capacity(self) -> float:
        """C(B): solo-seconds of work the server does per second at most (1: one slot)."""
        return 1.0 if self.server is None else self.server.max_capacity


class Controller:
    """Publishes the :class:`Plan` for the load the estimator sees.

    Parameters
    ----------
    profile:
        The fitted profile: curves, alpha, l_max, and the prior rate and shares.
    estimator:
        The sliding-window load estimates.
    hysteresis:
        Relative gain in J required to switch budgets (>= 0).
    refit:
        The online refit of the latency lines, or ``None`` to keep the profile's.
    objectives:
        Latency objectives that replace alpha (:mod:`thinkq.serve.slo`); empty: none.
    replicas:
        Replicas of the profile's server up behind the gateway (the attribute is set
        when that changes; the next :meth:`resolve` solves for them).
    """

    def __init__(
        self,
        profile: Profile,
        estimator: Estimator,
        *,
        hysteresis: float = DEFAULT_HYSTERESIS,
        refit: LatencyRefit | None = None,
        objectives: Sequence[Objective] = (),
        replicas: int = 1,
    ) -> None:
        if not hysteresis >= 0:
            raise ValueError(f"hysteresis: must be >= 0, got {hysteresis!r}")
        self.replicas = replicas
        self.objectives = tuple(objectives)
        self.profile = profile
        self.estimator = estimator
        self.hysteresis = hysteresis
        self.refit = refit
        self.solves = 0
        #: The last plan in force that was not overloaded (``None`` before the first).
        self.stable: Plan | None = None
        initial = Estimate(profile.rate, np.asarray(profile.share), 0)
        self.plan = self._plan(initial, current=None)
        if not self.plan.overloaded:
            self.stable = self.plan

    def at(self, estimate: Estimate) -> Profile:
        """The profile at the estimated operating point.

        Raises
        ------
        UnstableLoadError
            Even zero budgets are unstable at the estimated load.
        """
        p = self.profile
        t0, c, variance = self._line()
        return Profile.from_arrays(
            server=held_prompt(self._server(), estimate.shares, t0),
            names=p.names,
            share=estimate.shares,
            A=p.A,
            b=p.b,
            D=p.D,
            t0=t0,
            c=c,
            variance=variance,
            rate=max(estimate.rate, MIN_RATE),
            alpha=p.alpha,
            max_tokens=p.max_tokens,
        )

    def _server(self) -> Server | None:
        """The server solved for: the profile's (refitted), or the fleet of the replicas up."""
        server = self.profile.server if self.refit is None else self.refit.server()
        return replicated(server, self.replicas)

    def _line(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        p = self.profile
        return (p.t0, p.c, p.variance) if self.refit is None else self.refit.fitted()

    def resolve(self, estimate: Estimate | None = None) -> Plan:
        """Re-solve at ``estimate`` (default: the estimator's now) and publish the
        result as :attr:`plan`."""
        load = self.estimator.estimate() if estimate is None else estimate
        return self.adopt(self._plan(load, current=self.plan))

    def adopt(self, plan: Plan) -> Plan:
        """Put ``plan`` in force (solved here, or by another member of the fleet)."""
        self.plan = plan
        if not plan.overloaded:
            self.stable = plan
        return plan

    def _plan(self, estimate: Estimate, *, current: Plan | None) -> Plan:
        shares = tuple(float(s) for s in estimate.shares)
        try:
            point = self.at(estimate)
        except UnstableLoadError:
            t0, c, _ = self._line()
            zero_service = float(np.dot(estimate.shares, t0))
            server = self._server()
            busy = estimate.rate * zero_service  # of one slot; a batched server's own share:
            if server is not None and not server.single:
                busy = server.utilization(estimate.rate, zero_service)
            return Plan(
                budgets=(0,) * self.profile.size,
                rate=estimate.rate,
                shares=shares,
                utilization=busy,
                predicted_mean_system_time=math.inf,
                overloaded=True,
                mean_service=zero_service,
                t0=tuple(t0.tolist()),
                c=tuple(c.tolist()),
                server=server,
                mean_batch=float(server.slots) if server is not None else 1.0,
                switched=current is not None and any(current.budgets),
                slo=self._overloaded(estimate),
            )
        self.solves += 1
        before = current if current is not None and not current.overloaded else self.stable
        if self.objectives:
            held = None if before is None else before.budgets
            l, slo = plan_slo(point, self.objectives, before=held, hysteresis=self.hysteresis)
            return _stable_plan(point, estimate.rate, shares, l, current, slo)
        budgets = solve(point).budgets
        if before is not None:
            gain = model.objective_change(point, before.budgets, budgets)
            kept = model.objective(point, before.budgets)
            if math.isfinite(kept) and gain <= self.hysteresis * abs(kept):
                budgets = np.asarray(before.budgets)
        return _stable_plan(point, estimate.rate, shares, budgets, current)

    def _overloaded(self, estimate: Estimate) -> SloState | None:
        """Under objectives, the state of an overloaded plan (zero budgets unstable)."""
        if not self.objectives:
            return None
        point = self.at(Estimate(MIN_RATE, estimate.shares, 0))  # stable: shares and lines
        values = (math.inf,) * len(self.objectives)
        return unmeetable(point, self.objectives, estimate.rate, values)


def _stable_plan(
    point: Profile,
    rate: float,
    shares: tuple[float, ...],
    budgets: NDArray[np.int64] | FloatArray,
    current: Plan | None,
    slo: SloState | None = None,
) -> Plan:
    """The plan of ``budgets`` at the operating point ``point`` (stable there)."""
    m = model.moments(point, budgets)
    server = point.server
    if server is None or server.single:
        wait, batch = model.waiting_time(point, budgets), point.rate * m.mean
        step = None if server is None else server.step_time(1)
    else:
        law = delay(server, point.rate, m.mean, m.second)
        wait, batch, step = law.waiting_time, law.batch, law.step
    return Plan(
        budgets=tuple(int(b) for b in budgets),
        rate=rate,
        shares=shares,
        utilization=model.utilization(point, budgets),
        predicted_mean_system_time=model.system_time(point, budgets),
        overloaded=False,
        mean_service=m.mean,
        t0=tuple(point.t0.tolist()),
        c=tuple(point.c.tolist()),
        predicted_mean_waiting_time=wait,
        server=server,
        mean_batch=batch,
        step_time=step,
        switched=current is not None and tuple(budgets) != current.budgets,
        slo=slo,
    )
