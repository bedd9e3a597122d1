"""The Lua scripts the store runs in Redis: one round trip where a pipeline took many.

redis-py spends its Python on every command of a pipeline (packing it, then parsing
its reply under a timeout of its own): the window's 120 ``HGETALL`` of a share were
about 1.2 ms of CPU, a report's two transactions (the epoch, then the counts) about
0.2 ms a second. A script is one command whose reply hiredis parses in C. The keys,
values and formats written are exactly those of ``docs/fleet.md`` (``HINCRBY``,
``HINCRBYFLOAT``, ``EXPIRE``), and a script runs atomically, as the transactions did.

:func:`report_args` flattens the counts of a report into the arguments of
:data:`REPORT`, and :func:`hashes` turns the reply of :data:`READ` into dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

__all__ = ["LEASE", "READ", "REPORT", "hashes", "report_args"]

# Take the lease, or keep it if this member holds it: 1 when held after the call.
LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# The epoch (KEYS[1]) is created as ARGV[1] if absent. Unless it is now ARGV[2] (the
# epoch the counts were computed under), nothing is added and the epoch is returned.
# Otherwise each bucket KEYS[k] gets its fields added (ARGV from 4: the number of its
# fields, then per field its name, 'i' for HINCRBY or 'f' for HINCRBYFLOAT, and the
# value) and its TTL set to ARGV[3]; nil is returned.
REPORT = """
redis.call('set', KEYS[1], ARGV[1], 'NX')
local epoch = redis.call('get', KEYS[1])
if epoch ~= ARGV[2] then return epoch end
local i = 4
for k = 2, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    if ARGV[i + 1] == 'f' then
      redis.call('hincrbyfloat', KEYS[k], ARGV[i], ARGV[i + 2])
    else
      redis.call('hincrby', KEYS[k], ARGV[i], ARGV[i + 2])
    end
    i = i + 3
  end
  redis.call('expire', KEYS[k], ARGV[3])
end
return false
"""

# Every hash of KEYS, in their order (an absent key is an empty hash).
READ = """
local found = {}
for k = 1, #KEYS do found[k] = redis.call('hgetall', KEYS[k]) end
return found
"""


def _field(name: str, value: float) -> tuple[str, str, str]:
    """A completion sum: seconds as a float (``HINCRBYFLOAT``), counts as integers."""
    if name.endswith(":service"):
        return name, "f", repr(float(value))
    return name, "i", str(round(value))


def report_args(
    key: Callable[..., str],
    arrivals: Mapping[int, Mapping[str, int]],
    completions: Mapping[int, Mapping[str, float]],
) -> tuple[list[str], list[str]]:
    """The bucket keys and the per-bucket arguments of :data:`REPORT` (from its fourth)
    for ``{second: {task: n}}`` and ``{second: {field: sum}}``; ``key`` builds a key."""
    keys: list[str] = []
    args: list[str] = []
    for kind, buckets in (("arrivals", arrivals), ("completions", completions)):
        for second, fields in buckets.items():
            keys.append(key(kind, second))
            args.append(str(len(fields)))
            for name, value in fields.items():
                if kind == "arrivals":
                    args += (name, "i", str(int(value)))
                else:
                    args += _field(name, value)
    return keys, args


def hashes(reply: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    """The reply of :data:`READ` (flat ``field, value, ...`` lists) as dicts."""
    found = []
    for flat in reply:
        pairs = iter(flat)
        found.append(dict(zip(pairs, pairs, strict=True)))
    return found
