"""thinkq: queueing-aware reasoning-token budgets for LLM servers.

Implements Ozbas & Bastopcu, "Queueing-Aware Optimization of Reasoning Tokens for
Accuracy-Latency Trade-offs in LLM Servers" (arXiv 2601.10274): N query types share
one FIFO M/G/1 server; type k gets l_k thinking tokens; thinkq finds the budgets that
maximise alpha * mean accuracy - mean system time, certifies them, simulates them and
reproduces the paper's experiments.
"""

from thinkq import model
from thinkq.errors import (
    DatasetError,
    FitError,
    ForcingError,
    GatewayError,
    ProfileError,
    ProfileFileError,
    RecordError,
    ServerError,
    ServerUnreachableError,
    ThinkqError,
    UnstableLoadError,
)
from thinkq.paper.sweep import Sweep, SweepPoint, sweep
from thinkq.profile import Profile, Task, load_profile, paper_profile
from thinkq.simulate import (
    Deterministic,
    Distribution,
    Empirical,
    Lognormal,
    Simulation,
    TaskStatistics,
    simulate,
)
from thinkq.solve import Bounds, ContinuousResult, SolveResult, solve

__all__ = [
    "Bounds",
    "ContinuousResult",
    "DatasetError",
    "Deterministic",
    "Distribution",
    "Empirical",
    "FitError",
    "ForcingError",
    "GatewayError",
    "Lognormal",
    "Profile",
    "ProfileError",
    "ProfileFileError",
    "RecordError",
    "ServerError",
    "ServerUnreachableError",
    "Simulation",
    "SolveResult",
    "Sweep",
    "SweepPoint",
    "Task",
    "TaskStatistics",
    "ThinkqError",
    "UnstableLoadError",
    "load_profile",
    "model",
    "paper_profile",
    "simulate",
    "solve",
    "sweep",
]

__version__ = "0.1.0"
