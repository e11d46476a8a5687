"""No import cycles among dagnet's modules (their module-level imports, read with ast).

Importing `a.b.c` runs the package `a.b` first, so it is an edge to `a.b` too, unless the
importer lives inside `a.b` (its package is always initialised before it): a module that a
package's __init__ imports must not import a sibling package that imports it back.
"""
import ast
import pathlib

import networkx as nx

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: folders and the package name setup.py installs them as
PACKAGES = {"dagnet": "dagnet", "compiler": "dagnet.compiler", "models": "dagnet.models",
            "viz": "dagnet.viz"}


def modules() -> dict:
    """{module name: path} of every module of the installed package."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _top_level(body):
    """The statements that run when the module is imported (not function or class bodies)."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", []),
                          *(h.body for h in getattr(node, "handlers", []))):
                yield from _top_level(block)


def imported(name: str, path: pathlib.Path, known) -> set:
    """The dagnet modules `name` imports at module level."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in _top_level(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(parts + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known}


def import_graph() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    g.add_nodes_from(known)
    for name, path in known.items():
        for target in imported(name, path, known):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dest = ".".join(parts[:i])
                inside = name == dest or name.startswith(dest + ".")
                if dest in known and dest != name and (dest == target or not inside):
                    g.add_edge(name, dest)
    return g


def test_the_import_graph_is_read():
    g = import_graph()
    assert ("dagnet.graph", "dagnet.ir") in g.edges
    assert ("dagnet.spec", "dagnet.graph") in g.edges
    assert ("dagnet.compiler.shapes", "dagnet.infer") in g.edges
    assert len(g) > 60


def test_no_import_cycles():
    cycles = [c for c in nx.simple_cycles(import_graph())]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + [c[0]]) for c in cycles)
