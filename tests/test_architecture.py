"""The shape of the code: no import cycle, no module over 300 lines, no long function.

Import graph
    One node per module of ``src/thinkq`` (a package is its ``__init__.py``). Every
    ``import`` and ``from ... import`` counts, wherever it stands: at the top, under
    ``if TYPE_CHECKING:``, inside a function. ``from thinkq.x import y`` is an edge to
    the module ``thinkq.x.y`` when that is a module, else to ``thinkq.x``; ``import
    thinkq.x`` and ``from thinkq import x`` (``x`` not a module) are edges to the
    package ``thinkq.x`` or ``thinkq``. Running a submodule runs its parent packages
    first, but that implicit step is not an edge: a cycle is what the code asks for.
    A strongly connected component of more than one module is a cycle. So a package
    ``__init__`` that re-exports its submodules is fine, but a submodule that then
    imports a sibling through the package (``from thinkq.x import Sibling``) closes a
    cycle: submodules import siblings directly (``from thinkq.x.sibling import
    Sibling``).

Size
    No module over :data:`MAX_MODULE_LINES` lines. No function (method, nested
    function) over :data:`MAX_FUNCTION_LINES` lines, counted from its ``def`` line to
    its last line, docstring included, unless the comment directly above it (above its
    first decorator, if it has any) starts with ``# long:`` and goes on with at least
    ten characters saying why; the reason may run over several comment lines::

        # long: one flat table of the paper's Table I columns; split, it reads worse
        def table_one(...):
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "thinkq"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
#: A comment that excuses a long function: "# long:", then why (its lines joined).
LONG_REASON = re.compile(r"^# long:\s*(?P<why>\S.{9,})$")

Graph = Mapping[str, Set[str]]


def modules(root: Path = SOURCE) -> dict[str, Path]:
    """Every module under ``root`` by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> Iterator[str]:
    """The dotted names one import statement asks for (candidates, not yet resolved)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = name.split(".")
        keep = len(package) - node.level + (1 if is_package else 0)
        base = ".".join([*package[:keep], *([base] if base else [])])
    for alias in node.names:
        yield f"{base}.{alias.name}"


def _resolve(candidate: str, known: Set[str]) -> str | None:
    """The longest known module that ``candidate`` names or lies in."""
    parts = candidate.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in known:
            return prefix
    return None


def import_graph(found: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules it imports (see the module docstring for the rules)."""
    known = set(found)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for candidate in _imported(node, name, is_package):
                    target = _resolve(candidate, known)
                    if target is not None and target != name:
                        edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def loop(graph: Graph, component: list[str]) -> list[str]:
    """One closed path through a component: its first module back to itself."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                frontier.append(target)
    raise ValueError(f"not a cycle: {component}")


def _comment_above(lines: list[str], line: int) -> str:
    """The comment lines directly above 1-based ``line``, joined into one."""
    start = line - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    block = [text.strip() for text in lines[start : line - 1]]
    return " ".join([block[0], *(text.lstrip("#").strip() for text in block[1:])] if block else [])


def long_functions(found: Mapping[str, Path], root: Path = SOURCE) -> list[str]:
    """``path:line name (N lines)`` for each unexcused function over the limit."""
    offenders = []
    for path in found.values():
        lines = path.read_text("utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines), str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if length > MAX_FUNCTION_LINES and not LONG_REASON.match(_comment_above(lines, first)):
                where = path.relative_to(root.parent)
                offenders.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return sorted(offenders)


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": set(),
        "e": {"f", "a"},
        "f": {"e"},
        "g": {"g"},
    }
    assert cycles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert loop(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.sub.one import One\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "one.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.sub import two\n"
        "class One: ...\n"
    )
    (package / "sub" / "two.py").write_text("def late():\n    from pkg import One\n")
    (package / "three.py").write_text("from .sub import two\nimport pkg.sub\n")
    graph = import_graph(modules(package))
    assert graph["pkg.sub.one"] == {"pkg.sub.two"}
    assert graph["pkg.sub.two"] == {"pkg"}
    assert graph["pkg.three"] == {"pkg.sub.two", "pkg.sub"}
    assert cycles(graph) == [["pkg", "pkg.sub.one", "pkg.sub.two"]]


def test_there_is_no_import_cycle():
    graph = import_graph(modules())
    found = [" -> ".join(loop(graph, component)) for component in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_no_module_is_over_the_line_limit():
    too_long = [
        f"{path.relative_to(SOURCE.parent)} ({count} lines)"
        for path in modules().values()
        if (count := len(path.read_text("utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(too_long)


def test_the_size_check_sees_a_long_function_and_its_excuse(tmp_path):
    body = "".join(f"    x = {k}\n" for k in range(MAX_FUNCTION_LINES))
    (tmp_path / "plain.py").write_text(f"def plain():\n{body}")
    (tmp_path / "excused.py").write_text(
        f"# long: one assignment per line, on purpose\n@staticmethod\ndef excused():\n{body}"
    )
    (tmp_path / "wrapped.py").write_text(
        f"# long: the reason\n# goes on here\ndef wrapped():\n{body}"
    )
    (tmp_path / "vague.py").write_text(f"# long\ndef vague():\n{body}")
    (tmp_path / "aside.py").write_text(f"# a long list of x\ndef aside():\n{body}")
    offenders = long_functions(modules(tmp_path), tmp_path)
    assert [entry.split("/")[-1] for entry in offenders] == [
        f"aside.py:2 aside ({MAX_FUNCTION_LINES + 1} lines)",
        f"plain.py:1 plain ({MAX_FUNCTION_LINES + 1} lines)",
        f"vague.py:2 vague ({MAX_FUNCTION_LINES + 1} lines)",
    ]


def test_no_function_is_long_without_saying_why():
    offenders = long_functions(modules())
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_the_array_aliases_are_defined_once():
    defined = [
        f"{name}: {target.id}"
        for name, path in modules().items()
        if name != "thinkq._typing"
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id in ("FloatArray", "IntArray")
    ]
    assert not defined, "import FloatArray and IntArray from thinkq._typing:\n" + "\n".join(defined)
