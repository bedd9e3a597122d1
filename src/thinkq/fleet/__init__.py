"""Several gateways, one plan: the shared state in Redis (``--state redis://...``).

Gateways in front of the same fleet each see part of the traffic. With a shared
state every member (each ``thinkq serve --state URL``, and ``thinkq controller``)
reports its arrivals and completions to per-second buckets in Redis; one member at a
time holds a lease, estimates the fleet's total load from everyone's counts, re-solves
and publishes the plan; the others put that plan in force as it is. So every member
applies the same budgets, solved once per period for the total load.

Redis is never on a request's path: arrivals are counted in memory as before, and a
periodic task reports them and reads the plan. When Redis fails or is slow (every
call is bounded by short socket timeouts), a member logs it, shows it in
``/thinkq/state`` and the ``thinkq_state_connected`` gauge, and solves from its own
estimates until Redis answers again; then it reports its window again if Redis lost
the counts, and is back on the shared plan within a period.

:mod:`thinkq.fleet.state` is the Redis schema and client, :mod:`thinkq.fleet.counts`
the estimate from the shared counts, :mod:`thinkq.fleet.plans` the plan's document,
:mod:`thinkq.fleet.shared` the member's periodic task. ``docs/fleet.md`` documents the
keys and the formats for other reporters (an enforcer inside another gateway).
"""

from thinkq.fleet.shared import Member
from thinkq.fleet.state import Store, check_url

__all__ = ["Member", "Store", "check_url"]
