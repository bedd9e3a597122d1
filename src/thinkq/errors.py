"""The exceptions thinkq raises, as one tree.

::

    ThinkqError                 anything thinkq raises on purpose
    ├── ProfileError            a profile that cannot be used (also a ValueError)
    │   └── UnstableLoadError   the load is unstable even with zero thinking tokens
    ├── ProfileFileError        a profile file that is missing or does not parse
    │                           (also a ProfileError)
    └── DatasetError            a benchmark set that cannot be loaded: unknown name,
                                missing or malformed file, or the ``hf`` extra absent

Every message is one line that names the field (and the task, where there is one)
and the problem, so the command line can print it as it is.
"""

from __future__ import annotations

__all__ = [
    "DatasetError",
    "ProfileError",
    "ProfileFileError",
    "ThinkqError",
    "UnstableLoadError",
]


class ThinkqError(Exception):
    """Base class of every error thinkq raises on purpose."""


class ProfileError(ThinkqError, ValueError):
    """A profile whose content is invalid.

    Attributes
    ----------
    field:
        The offending field (``"b"``, ``"rate"``, ...), or ``None``.
    task:
        The name (or index) of the offending task, or ``None`` for a top-level field.
    """

    def __init__(self, message: str, *, field: str | None = None, task: str | None = None):
        super().__init__(message)
        self.field = field
        self.task = task


class ProfileFileError(ProfileError):
    """A profile file that does not exist, cannot be read or does not parse."""


class UnstableLoadError(ProfileError):
    """The queue is unstable even at zero budgets: ``rate * E[S(0)] >= 1`` (eq. 4)."""


class DatasetError(ThinkqError, ValueError):
    """A benchmark set that cannot be loaded (:mod:`thinkq.measure.datasets`).

    Attributes
    ----------
    field:
        The offending field, file or argument (``"answer"``, ``"n"``, ...), or ``None``.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field
