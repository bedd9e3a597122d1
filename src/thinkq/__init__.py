"""thinkq: queueing-aware reasoning-token budgets for LLM servers.

Implements Ozbas & Bastopcu, "Queueing-Aware Optimization of Reasoning Tokens for
Accuracy-Latency Trade-offs in LLM Servers" (arXiv 2601.10274): N query types share
one FIFO M/G/1 server; type k gets l_k thinking tokens; thinkq finds the budgets that
maximise alpha * mean accuracy - mean system time, and certifies them.
"""

from thinkq import model
from thinkq.errors import ProfileError, ProfileFileError, ThinkqError, UnstableLoadError
from thinkq.profile import Profile, Task, load_profile, paper_profile
from thinkq.solve import Bounds, ContinuousResult, SolveResult, solve

__all__ = [
    "Bounds",
    "ContinuousResult",
    "Profile",
    "ProfileError",
    "ProfileFileError",
    "SolveResult",
    "Task",
    "ThinkqError",
    "UnstableLoadError",
    "load_profile",
    "model",
    "paper_profile",
    "solve",
]

__version__ = "0.1.0"
