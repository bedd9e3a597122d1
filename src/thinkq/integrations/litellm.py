"""thinkq's budgets inside the LiteLLM proxy: a ``CustomLogger`` (``thinkq[litellm]``).

In the proxy's ``config.yaml`` (``docs/fleet.md``, "LiteLLM as the enforcer")::

    environment_variables:
      THINKQ_STATE: redis://127.0.0.1:6379/0
      THINKQ_PROFILE: profile.toml
      THINKQ_BUDGET_FIELD: thinking_budget_tokens
    litellm_settings:
      callbacks: thinkq.integrations.litellm.enforcer

``enforcer`` is made from those variables when LiteLLM asks for it (a new one per
lookup; :func:`from_env`); a Python file beside ``config.yaml`` may instead build a
:class:`ThinkqEnforcer` with arguments. For each chat or text completion,
:meth:`ThinkqEnforcer.async_pre_call_hook` types the request, sets the budget field of
its type (:class:`~thinkq.integrations.enforcer.Enforcer`) and counts its arrival; the
success callback counts its completion (LiteLLM's start-to-end time as the service
time, ``usage.completion_tokens_details.reasoning_tokens`` as the thinking tokens). A
request that cannot be typed is refused with LiteLLM's 400 and the router's message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

from thinkq.errors import RoutingError
from thinkq.integrations.enforcer import DEFAULT_FIELD, Enforcer
from thinkq.profile.files import load_profile, paper_profile
from thinkq.slo.objectives import parse_objectives

__all__ = ["ThinkqEnforcer", "from_env"]

#: The call types whose requests get a budget (chat and text completions).
CALL_TYPES = frozenset({"completion", "acompletion", "text_completion", "atext_completion"})
#: Where the task's name travels from the pre-call hook to the callbacks.
TASK_KEY = "thinkq_task"


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    found = data.get("metadata")
    if not isinstance(found, dict):
        found = data["metadata"] = {}
    return found


def _thinking(response: Any) -> int:
    """``usage.completion_tokens_details.reasoning_tokens`` of a response, or 0."""
    usage = getattr(response, "usage", None)
    details = getattr(usage, "completion_tokens_details", None)
    tokens = getattr(details, "reasoning_tokens", None)
    return tokens if isinstance(tokens, int) else 0


def _seconds(start: object, end: object) -> float:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    if isinstance(start, int | float) and isinstance(end, int | float):
        return float(end) - float(start)
    return 0.0


class ThinkqEnforcer(CustomLogger):  # type: ignore[misc]  # LiteLLM's class is untyped here
    """A LiteLLM callback that applies thinkq's plan (module docstring).

    Parameters
    ----------
    enforcer:
        Types requests, holds the budgets, reports to Redis.
    """

    def __init__(self, enforcer: Enforcer) -> None:
        super().__init__()
        self.enforcer = enforcer
        try:  # the proxy loads its config in its event loop: report from the start
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the first request starts the background task
        enforcer.start()

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        """Type the request and set its budget field; count its arrival."""
        if call_type not in CALL_TYPES:
            return data
        self.enforcer.start()
        request = data.get("proxy_server_request")
        headers = request.get("headers") if isinstance(request, Mapping) else None
        try:
            task = self.enforcer.route(data, headers if isinstance(headers, Mapping) else None)
        except RoutingError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        self.enforcer.apply(data, task)
        _metadata(data)[TASK_KEY] = self.enforcer.names[task]
        return data

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Count the completion of a request this hook typed."""
        params = kwargs.get("litellm_params")
        metadata = params.get("metadata") if isinstance(params, Mapping) else None
        name = metadata.get(TASK_KEY) if isinstance(metadata, Mapping) else None
        index = self.enforcer.router.index.get(name) if isinstance(name, str) else None
        if index is None:
            return
        self.enforcer.completed(
            index, service=_seconds(start_time, end_time), thinking=_thinking(response_obj)
        )


def from_env(environ: Mapping[str, str] | None = None) -> ThinkqEnforcer:
    """A :class:`ThinkqEnforcer` from ``THINKQ_STATE`` (``redis://HOST:PORT/DB``; unset:
    the profile's budgets alone), ``THINKQ_PROFILE`` (a profile file; unset: the paper's),
    ``THINKQ_BUDGET_FIELD`` (default ``thinking_token_budget``), ``THINKQ_SLO``
    (objectives separated by ``;``, as the controller's ``--slo``) and ``THINKQ_TICK``
    (seconds between reports, default 1)."""
    env = os.environ if environ is None else environ
    path = env.get("THINKQ_PROFILE")
    profile = paper_profile() if not path else load_profile(path)
    slo = [s for s in env.get("THINKQ_SLO", "").split(";") if s.strip()]
    enforcer = Enforcer(
        profile,
        state=env.get("THINKQ_STATE") or None,
        field=env.get("THINKQ_BUDGET_FIELD") or DEFAULT_FIELD,
        objectives=parse_objectives(slo) if slo else (),
        tick=float(env.get("THINKQ_TICK") or 1.0),
    )
    return ThinkqEnforcer(enforcer)


def __getattr__(name: str) -> Any:
    """``enforcer``: a new :class:`ThinkqEnforcer` from the environment (:func:`from_env`),
    for LiteLLM's ``callbacks: thinkq.integrations.litellm.enforcer``."""
    if name == "enforcer":
        return from_env()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
