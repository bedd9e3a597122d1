"""Profiles: the query types, their curves and the operating point (section II).

A :class:`Profile` holds the curve parameters of every task type together with the
arrival rate ``rate`` (lambda, queries per second), the accuracy weight ``alpha``
(per second of mean system time) and the architectural limit ``max_tokens``
(l_max). Profiles are read from TOML or JSON files with the same keys
(:func:`load_profile`); the paper's Table I ships with the package
(:func:`paper_profile`).

The package is three modules: :mod:`~thinkq.profile.instance` (the classes),
:mod:`~thinkq.profile.checks` (the rules every profile obeys) and
:mod:`~thinkq.profile.files` (reading documents and files).
"""

from thinkq.profile.checks import PARAMETERS
from thinkq.profile.files import load_profile, paper_profile, profile_from_dict
from thinkq.profile.instance import Profile, Task

__all__ = ["PARAMETERS", "Profile", "Task", "load_profile", "paper_profile", "profile_from_dict"]
