"""The exceptions thinkq raises, as one tree.

::

    ThinkqError                 anything thinkq raises on purpose
    ├── ProfileError            a profile that cannot be used (also a ValueError)
    │   └── UnstableLoadError   the load is unstable even with zero thinking tokens
    ├── ProfileFileError        a profile file that is missing or does not parse
    │                           (also a ProfileError)
    ├── RecordError             measurement records with malformed lines; one
    │                           ``FILE:LINE: field: problem`` line each (also a ValueError)
    ├── FitError                measurements from which no profile can be fitted
    │                           (also a ValueError)
    ├── SloError                latency objectives that no budgets can meet, not even
    │                           zero budgets (also a ValueError)
    ├── StateError              the shared state (Redis, ``--state``) failed or was
    │                           too slow; the gateway falls back to its own estimates
    ├── DatasetError            a benchmark set that cannot be loaded: unknown name,
    │                           missing or malformed file, or the ``hf`` extra absent
    ├── ServerError             an LLM server that cannot be used: it refuses a
    │   │                       request or answers outside the OpenAI protocol
    │   ├── ServerUnreachableError  no connection to the server (refused, reset,
    │   │                       timed out, unknown host): a failure, not a user error
    │   └── ForcingError        a reply that breaks budget forcing (thinking tokens
    │                           other than the budget)
    └── GatewayError            a request the gateway (``thinkq serve``) will not
        │                       serve; ``status`` is its HTTP status
        ├── BadRequestError     not a valid OpenAI request (400; also a ValueError)
        │   ├── BodyTooLargeError  a body over the gateway's limit (413)
        │   └── PromptTooLongError  a prompt that the upstream says does not fit
        │                       the model's context (400)
        ├── RoutingError        its task type is unknown or missing (400; also a
        │                       ValueError)
        ├── OverloadedError     refused to protect the server (503, ``retry_after``)
        │   └── QueueFullError  the queue already holds ``max_queue`` waiting requests
        └── DisconnectedError   the client left before its reply was ready (499)

Every message is one line that names the field (and the task, where there is one)
and the problem, so the command line can print it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A RecordError's message lists at most this many problems (all are in ``problems``).
SHOWN_PROBLEMS = 50

__all__ = [
    "SHOWN_PROBLEMS",
    "BadRequestError",
    "BodyTooLargeError",
    "DatasetError",
    "DisconnectedError",
    "FitError",
    "ForcingError",
    "GatewayError",
    "OverloadedError",
    "ProfileError",
    "ProfileFileError",
    "PromptTooLongError",
    "QueueFullError",
    "RecordError",
    "RoutingError",
    "ServerError",
    "ServerUnreachableError",
    "SloError",
    "StateError",
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


class RecordError(ThinkqError, ValueError):
    """Records that cannot be used; ``problems`` lists every malformed line.

    Each problem's ``str`` is one ``FILE:LINE: field: problem`` line; ``str(error)``
    shows at most :data:`SHOWN_PROBLEMS` of them, then how many more.
    """

    def __init__(self, problems: Sequence[object]):
        self.problems = tuple(problems)
        lines = [str(p) for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            lines.append(f"... and {len(self.problems) - SHOWN_PROBLEMS} more malformed lines")
        super().__init__("\n".join(lines))


class FitError(ThinkqError, ValueError):
    """Measurements from which a profile cannot be fitted (the message says why)."""


class SloError(ThinkqError, ValueError):
    """Latency objectives that cannot be met even with zero thinking tokens.

    Zero budgets give the smallest mean and the smallest percentiles of the system
    time, so nothing meets the objective. The message names the smallest achievable
    value (``"p95 at zero budgets is 9.3 s > 8 s"``).

    Attributes
    ----------
    objective:
        The objective as written (``"p95<=8s"``).
    smallest:
        Its value at zero budgets, seconds (the smallest achievable).
    """

    def __init__(self, message: str, *, objective: str, smallest: float) -> None:
        super().__init__(message)
        self.objective = objective
        self.smallest = smallest


class StateError(ThinkqError):
    """The shared state in Redis (``--state``) failed or did not answer in time."""


class ServerError(ThinkqError):
    """An LLM server that cannot be used (:mod:`thinkq.measure.server`).

    Attributes
    ----------
    field:
        The option at fault where it is the user's (``"base_url"``, ``"model"``), or
        ``None`` for a failure of the server itself.
    status:
        The HTTP status of the reply, or ``None`` where there was no reply.
    transient:
        Whether trying again may help (refused connection, timeout, 5xx, 429).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        transient: bool = False,
    ):
        super().__init__(message)
        self.field = field
        self.status = status
        self.transient = transient


class ForcingError(ServerError):
    """A reply that breaks budget forcing: the thinking did not have its budget's length."""


class ServerUnreachableError(ServerError):
    """No connection to the server: refused, reset, timed out or an unknown host.

    Always ``transient``; the command line reports it as a failure (exit code 1), not
    as a user error, since a server that was up may have died.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, status=None, transient=True)


class GatewayError(ThinkqError):
    """A request the gateway will not serve; :attr:`status` is its HTTP status."""

    #: The HTTP status the gateway answers with.
    status: int = 500
    #: The OpenAI error ``type`` of the reply body.
    kind: str = "server_error"


class BadRequestError(GatewayError, ValueError):
    """A request body that is not a valid OpenAI request (HTTP 400)."""

    status = 400
    kind = "invalid_request_error"


class BodyTooLargeError(BadRequestError):
    """A request body over the gateway's size limit (HTTP 413)."""

    status = 413


class PromptTooLongError(BadRequestError):
    """A prompt (with its answer's tokens) that the upstream says exceeds the model's
    context (HTTP 400)."""


class RoutingError(GatewayError, ValueError):
    """A request whose task type is unknown or missing (HTTP 400)."""

    status = 400
    kind = "invalid_request_error"


class OverloadedError(GatewayError):
    """A request refused to protect the server (HTTP 503 with ``Retry-After``)."""

    status = 503
    kind = "overloaded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFullError(OverloadedError):
    """A request refused because ``max_queue`` requests are already waiting (HTTP 503)."""


class DisconnectedError(GatewayError):
    """The client disconnected before its reply was ready (HTTP 499, never sent)."""

    status = 499
    kind = "client_closed_request"
