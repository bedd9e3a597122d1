"""Servers that decode many queries at once (continuous batching).

:class:`Server` describes one (``slots``, step time ``tau0 + tau1 n``);
:func:`delay` is its mean-delay model with the derivatives the solver needs;
:func:`chain` the exact number-in-system law behind it; :func:`departures` simulates
it event by event (:mod:`thinkq.batching.kernel`, imported on first use: it compiles
with numba). The optimal budgets on it are :mod:`thinkq.solve`'s
(:func:`thinkq.solve.solve` dispatches on ``profile.batched``;
:func:`thinkq.solve.batched.solve_batched` is the method): this package never imports
:mod:`thinkq.solve`, so that a profile can hold a :class:`Server`.
``docs/batching.md`` derives the model and the solver and checks them.
"""

from typing import TYPE_CHECKING

from thinkq.batching.chain import Chain, chain
from thinkq.batching.delay import Delay, delay
from thinkq.batching.server import UNLIMITED_SLOTS, Server

if TYPE_CHECKING:
    from thinkq.batching.kernel import departures


def __getattr__(name: str) -> object:
    if name == "departures":  # numba takes a while to import: only when it is used
        from thinkq.batching.kernel import departures

        return departures
    raise AttributeError(f"module 'thinkq.batching' has no attribute {name!r}")


__all__ = ["UNLIMITED_SLOTS", "Chain", "Delay", "Server", "chain", "delay", "departures"]
