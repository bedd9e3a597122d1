"""A fleet: ``c`` replicas of one server behind one central FIFO queue (``docs/fleet.md``).

The gateway keeps one FIFO queue in front of every replica's slots and sends the
request at its head to the first free slot (to the replica with the fewest requests
in flight). For replicas of the paper's one-at-a-time server that is the M/G/c
queue, and the M/G/c queue is already a server of :mod:`thinkq.batching.server`:
``c`` slots with perfect batching, ``Server(slots=c, tau1=0)``. Its capacity
C(n) = min(n, c) is what c separate one-slot servers do with n queries spread over
them (each of the n <= c in service runs at full speed), at most c queries are in
service and the rest wait in FIFO order. So the fleet needs no model of its own:

* the mean delay is :func:`thinkq.batching.delay.delay` at c slots (the birth-death
  chain with C(n) = min(n, c) is M/M/c, Erlang C; other service distributions enter by
  Cosmetatos's two-moment interpolation, derived in ``docs/fleet.md``), with its
  partial derivatives in E[S] and E[S^2], so the solver's batched path optimises the
  budgets of the fleet unchanged;
* the simulator's batched kernel serves it event by event, exactly (no approximation:
  the kernel at tau1 = 0 *is* the M/G/c queue).

Replicas that batch themselves (a ``[server]`` table with more than one slot) are not
a fleet of this kind: the batch's slowdown depends on how the queries in service are
spread over the replicas, not on their total, and no single step-time law reproduces
it. :func:`replicated` refuses them with a :class:`~thinkq.errors.ProfileError`.
"""

from __future__ import annotations

from thinkq.batching.server import Server
from thinkq.errors import ProfileError

__all__ = ["replicated"]


def replicated(server: Server | None, replicas: int) -> Server | None:
    """The server that ``replicas`` copies of ``server`` make behind one FIFO queue.

    Parameters
    ----------
    server:
        One replica: ``None`` or one slot (the paper's FIFO M/G/1 server).
    replicas:
        How many replicas serve (>= 1).

    Returns
    -------
    Server | None
        ``server`` itself for one replica (nothing changes); for ``c`` > 1 replicas
        ``Server(slots=c, tau0=tau(1), tau1=0)``: c slots each at full speed, the
        M/G/c queue (the step time is the replica's own, for the gauges).

    Raises
    ------
    ProfileError
        ``server`` has more than one slot (field ``server.slots``).
    ValueError
        ``replicas`` is below 1.
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas: must be an integer >= 1, got {replicas!r}")
    if replicas == 1:
        return server
    if server is not None and not server.single:
        raise ProfileError(
            f"field 'server.slots': {replicas} replicas of a batched server "
            f"({server.slots} slots) are not supported: the fleet model describes "
            "replicas of a one-slot server (serve each batched replica through its "
            "own gateway, or describe the fleet as one [server] table)",
            field="server.slots",
        )
    step = 1.0 if server is None else server.step_time(1)
    return Server(slots=replicas, tau0=step, tau1=0.0)
