"""The import arrows of DESIGN.md: core never imports the compiler, models or viz; the
compiler never imports models or viz; models never import viz or the compiler.

On top of the core sit the facade and the CLI. The facade is dagnet/__init__.py (it re-exports
the compiler) and dagnet/saving.py (dagnet.save / dagnet.load: loading a model compiles it, so
it cannot live in the core; the Model it returns, dagnet/inference.py, takes a compiled plan and
stays in the core). saving.py never imports models or viz; nothing below the facade imports it
or the CLI, which drives everything."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ABOVE_CORE = ("dagnet.saving", "dagnet.cli")
RULES = {
    "dagnet": ("dagnet.compiler", "dagnet.models", "dagnet.viz", "compiler", "models", "viz")
              + ABOVE_CORE,
    "compiler": ("dagnet.models", "dagnet.viz", "models", "viz") + ABOVE_CORE,
    "models": ("dagnet.viz", "dagnet.compiler", "viz", "compiler") + ABOVE_CORE,
}
FACADE = {"dagnet/__init__.py", "dagnet/saving.py"}
#: dagnet/__init__.py may reach viz, for notebooks' inline pictures, and lazily every submodule
FACADE_MAY_NOT = {"dagnet/__init__.py": ("dagnet.cli",),
                  "dagnet/saving.py": ("dagnet.models", "dagnet.viz", "models", "viz", "dagnet.cli")}
EXEMPT_FOLDERS = ("dagnet/cli/",)


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            # `from dagnet import viz` imports dagnet.viz
            yield from (f"{node.module}.{a.name}" for a in node.names)


def violations(paths, forbidden):
    for path in paths:
        for mod in imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                yield f"{path.relative_to(ROOT).as_posix()} imports {mod}"


@pytest.mark.parametrize("folder", list(RULES))
def test_import_arrows(folder):
    paths = [p for p in (ROOT / folder).rglob("*.py")
             if p.relative_to(ROOT).as_posix() not in FACADE
             and not p.relative_to(ROOT).as_posix().startswith(EXEMPT_FOLDERS)]
    bad = list(violations(paths, RULES[folder]))
    assert not bad, "\n".join(bad)


def test_the_facade_sits_below_the_cli():
    bad = [v for f in sorted(FACADE) for v in violations([ROOT / f], FACADE_MAY_NOT[f])]
    assert not bad, "\n".join(bad)
    assert "dagnet.compiler" in set(imports(ROOT / "dagnet/saving.py"))  # why it is no core module
