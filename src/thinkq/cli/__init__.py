"""The ``thinkq`` command line: parse -> call the API -> render; no logic of its own.

Every error a user can cause (a bad profile file, a bad option value, a bad command
line) prints one line ``error: <message>`` on stderr and exits with code 2; nothing is
written to an output file that did not complete.
"""

from thinkq import __version__
from thinkq.cli import (  # noqa: F401  (register the commands)
    _controller,
    _experiments,
    _explore,
    _fit,
    _frontier,
    _loadtest,
    _plan,
    _profile,
    _serve,
    _simulate,
)
from thinkq.cli._app import app, finite, main
from thinkq.cli._solve import IntegerChoice, MethodChoice

__all__ = ["IntegerChoice", "MethodChoice", "__version__", "app", "finite", "main"]
