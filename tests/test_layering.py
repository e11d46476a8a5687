"""The import arrows of DESIGN.md: core never imports the compiler, models or viz; the
compiler never imports models or viz; models never import viz or the compiler. Inside core:
ops sit below the runtime, the runtime reads only plans (never the graph, the training loop or
the interpreter), and the reference interpreter shares nothing with the runtime it checks."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RULES = {
    "dagnet": ("dagnet.compiler", "dagnet.models", "dagnet.viz", "compiler", "models", "viz"),
    "compiler": ("dagnet.models", "dagnet.viz", "models", "viz"),
    "models": ("dagnet.viz", "dagnet.compiler", "viz", "compiler"),
    "dagnet/ops": ("dagnet.runtime", "dagnet.train", "dagnet.interpreter"),
    "dagnet/runtime": ("dagnet.graph", "dagnet.spec", "dagnet.onnx", "dagnet.train",
                       "dagnet.interpreter", "dagnet.cli"),
    "dagnet/interpreter.py": ("dagnet.runtime",),
}
# The facade re-exports the compiler and the CLI drives everything: both sit on top.
EXEMPT = {"dagnet/__init__.py"}
EXEMPT_FOLDERS = ("dagnet/cli/",)


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("folder", list(RULES))
def test_import_arrows(folder):
    bad = []
    top = ROOT / folder
    for path in [top] if top.is_file() else top.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in EXEMPT or rel.startswith(EXEMPT_FOLDERS):
            continue
        for mod in imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in RULES[folder]):
                bad.append(f"{rel} imports {mod}")
    assert not bad, "\n".join(bad)
