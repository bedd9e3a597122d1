"""The answer part X_k of each service time S_k = c_k l_k + X_k, as distributions.

A simulation either takes one distribution per task from the caller
(:func:`answer_distributions`, checked against the profile's t0) or builds them from the
profile's own variability (:func:`profile_answer_times`): deterministic where a
task's variance is zero, as in the paper, else lognormal with mean t0 and that
variance. On a server with a prompt stage (prompt p, :class:`~thinkq.batching.Server`)
the answer part starts with its prompt: p fixed, then the lognormal rest with mean
t0 - p and the same variance (so no answer time falls below the prompt it contains;
a type with t0 <= p keeps the plain lognormal, and the simulator gives its shorter
draws p).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thinkq.profile import Profile
from thinkq.simulate.distributions import Deterministic, Distribution, Lognormal, Shifted

__all__ = ["answer_distributions", "profile_answer_times"]


def answer_distributions(
    profile: Profile, answer_times: Sequence[Distribution] | None
) -> Sequence[Distribution] | None:
    """The caller's distributions, checked, else the profile's own; None if deterministic."""
    if answer_times is None:
        return profile_answer_times(profile)
    if len(answer_times) != profile.size:
        raise ValueError(
            f"answer_times: expected {profile.size} distributions (one per type), "
            f"got {len(answer_times)}"
        )
    for k, dist in enumerate(answer_times):
        if not isinstance(dist, Distribution):
            raise ValueError(
                f"answer_times[{k}]: not a distribution (needs mean, variance, sample)"
            )
        if not math.isclose(dist.mean, profile.t0[k], rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(
                f"answer_times[{k}]: mean {dist.mean:g} s differs from t0 = "
                f"{profile.t0[k]:g} s of task '{profile.names[k]}' "
                "(use Profile.with_answer_times to take t0 from the distributions)"
            )
    return answer_times


def profile_answer_times(profile: Profile) -> list[Distribution] | None:
    """The profile's own service variability: lognormal where its variance is positive.

    ``None`` (deterministic, the paper's model) when no task has a variance.
    """
    if not np.any(profile.variance > 0):
        return None
    answers: list[Distribution] = []
    server = profile.batched
    prompt = 0.0 if server is None else server.prompt
    for k, (mean, variance) in enumerate(zip(profile.t0, profile.variance, strict=True)):
        if variance == 0:
            answers.append(Deterministic(float(mean)))
        elif mean > prompt > 0:
            rest = float(mean) - prompt
            answers.append(Shifted(prompt, Lognormal(rest, math.sqrt(variance) / rest)))
        elif mean > 0:
            answers.append(Lognormal(float(mean), math.sqrt(variance) / float(mean)))
        else:
            raise ValueError(
                f"profile: task '{profile.names[k]}' has variance {variance:g} s^2 around "
                "t0 = 0: a non-negative answer time with mean 0 cannot vary; "
                "pass answer_times explicitly"
            )
    return answers
