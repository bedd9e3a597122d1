"""The task type of a request: which budget it gets.

In order of precedence:

1. the header ``X-Thinkq-Task``;
2. ``metadata.task`` in the request body;
3. the profile's rules: the first task (in profile order) one of whose ``match``
   regular expressions is found (:func:`re.search`) in the last user message (for
   ``/v1/completions``: the prompt);
4. the profile's ``default_task``.

A task name that is not in the profile, or a request that none of the four places
types, is a :class:`~thinkq.errors.RoutingError` (HTTP 400) whose message says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from thinkq.errors import RoutingError
from thinkq.profile import Profile

__all__ = ["TASK_HEADER", "Router", "last_user_text"]

#: The request header that names a request's task type.
TASK_HEADER = "x-thinkq-task"
#: The longest task name an error message echoes whole (characters).
SHOWN_NAME = 64


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last ``user`` message (text parts joined), or ``""``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
                return "".join(str(p) for p in parts)
            return ""
    return ""


def _shown(name: object) -> str:
    """``name`` as a message may echo it: a string's repr, cut to :data:`SHOWN_NAME`."""
    if not isinstance(name, str):
        return "(not a string)"
    shown = repr(name[:SHOWN_NAME])
    return shown if len(name) <= SHOWN_NAME else f"{shown[:-1]}...{shown[-1]}"


class Router:
    """Assigns each request the index of its task type in ``profile``.

    Parameters
    ----------
    profile:
        The profile whose task names, ``match`` rules and ``default_task`` apply.
    """

    def __init__(self, profile: Profile) -> None:
        self.names = profile.names
        self.index = {name: k for k, name in enumerate(profile.names)}
        self.rules = [
            (k, re.compile(pattern))
            for k, patterns in enumerate(profile.match)
            for pattern in patterns
        ]
        self.default = None if profile.default_task is None else self.index[profile.default_task]

    def _named(self, name: object, where: str) -> int:
        if not isinstance(name, str) or name not in self.index:
            known = ", ".join(self.names[:10]) + (", ..." if len(self.names) > 10 else "")
            raise RoutingError(f"{where}: unknown task {_shown(name)} (the profile has: {known})")
        return self.index[name]

    def route(self, *, header: str | None, metadata: object, text: str) -> int:
        """The task index of a request.

        Parameters
        ----------
        header:
            The value of ``X-Thinkq-Task``, or ``None``.
        metadata:
            The body's ``metadata`` field, or ``None``.
        text:
            The last user message (or the prompt).

        Raises
        ------
        RoutingError
            The named task does not exist, or nothing types the request.
        """
        if header is not None:
            return self._named(header.strip(), "X-Thinkq-Task")
        if isinstance(metadata, Mapping) and "task" in metadata:
            return self._named(metadata["task"], "metadata.task")
        for k, pattern in self.rules:
            if pattern.search(text):
                return k
        if self.default is not None:
            return self.default
        raise RoutingError(
            "no task: send the header X-Thinkq-Task or metadata.task, or give the "
            "profile match rules or a default_task"
        )
