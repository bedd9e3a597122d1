"""thinkq's budgets inside gateways other than ``thinkq serve``.

:mod:`thinkq.integrations.enforcer` is the part every such gateway shares: it types a
request as ``thinkq serve`` does, sets the upstream's native budget field from the plan
that ``thinkq controller`` publishes in Redis, and reports arrivals and completions
there in the format the controller reads (``docs/fleet.md``). Redis is read and written
by a background task only, never on a request's path.

:mod:`thinkq.integrations.litellm` wraps it as a LiteLLM ``CustomLogger`` (the optional
extra ``thinkq[litellm]``). Importing :mod:`thinkq` or this package never imports
LiteLLM.
"""
