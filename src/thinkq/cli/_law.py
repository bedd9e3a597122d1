"""``--tau0``/``--tau1``: a step-time law for a profile, from the command line.

Shared by the commands that serve a profile by a batched server it may not describe
(``thinkq sweep --over slots``, ``thinkq explore``).
"""

from __future__ import annotations

from thinkq.batching.server import Server
from thinkq.cli._app import fail
from thinkq.errors import ThinkqError
from thinkq.profile import Profile

__all__ = ["with_law"]


def with_law(
    profile: Profile, tau0: float | None, tau1: float | None, slots: int | None
) -> Profile:
    """The profile with ``--tau0``/``--tau1`` as its step-time law, ``slots`` slots.

    Neither given and no ``[server]`` table: the profile as it is (the caller says what
    is missing, if anything). One given without a table: a one-line error. A value out
    of range: a one-line error naming its option.
    """
    law = profile.server
    if law is None and (tau0 is None or tau1 is None):
        if tau0 is None and tau1 is None:
            return profile
        fail("option --tau0/--tau1: give both (the profile has no [server] table)")
    try:
        server = Server(
            slots or (law.slots if law else 1),
            law.tau0 if tau0 is None and law else float(tau0 or 0.0),
            law.tau1 if tau1 is None and law else float(tau1 or 0.0),
            prompt=law.prompt if law else 0.0,
        )
        return profile.with_server(server)
    except ThinkqError as exc:
        name = getattr(exc, "field", "") or ""
        fail(f"option --{name.removeprefix('server.')}: {str(exc).split(': ', 1)[-1]}")
