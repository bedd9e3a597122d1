"""Python literals in CRUXEval predictions, parsed and never executed.

A prediction states the output of a function call as a literal: in an ``[ANSWER]``
block, as ``assert f(...) == X``, or on the last line. It is read with
:func:`ast.parse` and :func:`ast.literal_eval` only; anything that is not a literal is
no prediction.
"""

from __future__ import annotations

import ast
import re
import warnings

__all__ = ["literal_of", "prediction"]

_ANSWER_BLOCK = re.compile(r"\[ANSWER\](.*?)(?:\[/ANSWER\]|$)", re.DOTALL)


def literal_of(source: str) -> tuple[object, str] | None:
    """The literal a prediction states, and its source text; never evaluates code.

    ``source`` may be an assertion (``assert f(x) == LITERAL``), a comparison
    (``f(x) == LITERAL``) or a literal. Anything else, or a parse that fails, is
    ``None``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in a prediction are its problem
        try:
            tree = ast.parse(source.strip())
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
    asserts = [node for node in tree.body if isinstance(node, ast.Assert)]
    if asserts:
        node: ast.expr = asserts[-1].test
    elif len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        node = tree.body[0].value
    else:
        return None
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq):
            return None
        node = node.comparators[0]
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    return value, ast.get_source_segment(source.strip(), node) or ""


def prediction(text: str) -> tuple[object, str] | None:
    """The literal a model's output predicts, and its source text, or ``None``.

    Candidates, tried in order: the last ``[ANSWER]`` block, the last ``assert`` line,
    the last line (code fences dropped).
    """
    blocks = _ANSWER_BLOCK.findall(text)
    candidates = [blocks[-1]] if blocks else []
    body = re.sub(r"(?m)^\s*```\w*\s*$", "", blocks[-1] if blocks else text)
    lines = [line.strip().strip("`") for line in body.splitlines() if line.strip()]
    asserts = [line for line in lines if line.startswith("assert ")]
    candidates += [asserts[-1]] if asserts else []
    candidates += [lines[-1]] if lines else []
    for candidate in candidates:
        found = literal_of(candidate)
        if found is not None:
            return found
    return None
