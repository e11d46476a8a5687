"""The import arrows of DESIGN.md: core never imports the compiler, models or viz; the
compiler never imports models or viz; models never import viz or the compiler. Inside core:
ops sit below the runtime, the runtime reads only plans (never the graph, the training loop or
the interpreter), and the reference interpreter shares nothing with the runtime it checks.

On top of the core sit the facade and the CLI. The facade is dagnet/__init__.py (it re-exports
the compiler) and dagnet/saving.py (dagnet.save / dagnet.load: loading a model compiles it, so
it cannot live in the core; the Model it returns, dagnet/inference.py, takes a compiled plan and
stays in the core), and dagnet/onnx/backend.py (ONNX's Backend interface: running a model
compiles it). saving.py and the backend never import models or viz; nothing below the facade
imports them or the CLI, which drives everything."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ABOVE_CORE = ("dagnet.saving", "dagnet.onnx.backend", "dagnet.cli")
RULES = {
    "dagnet": ("dagnet.compiler", "dagnet.models", "dagnet.viz", "compiler", "models", "viz")
              + ABOVE_CORE,
    "compiler": ("dagnet.models", "dagnet.viz", "models", "viz") + ABOVE_CORE,
    "models": ("dagnet.viz", "dagnet.compiler", "viz", "compiler") + ABOVE_CORE,
    "dagnet/ops": ("dagnet.runtime", "dagnet.train", "dagnet.interpreter"),
    "dagnet/runtime": ("dagnet.graph", "dagnet.spec", "dagnet.onnx", "dagnet.train",
                       "dagnet.interpreter", "dagnet.cli"),
    "dagnet/interpreter.py": ("dagnet.runtime",),
}
FACADE = {"dagnet/__init__.py", "dagnet/saving.py", "dagnet/onnx/backend.py"}
#: dagnet/__init__.py may reach viz, for notebooks' inline pictures, and lazily every submodule
FACADE_MAY_NOT = {"dagnet/__init__.py": ("dagnet.cli",),
                  "dagnet/saving.py": ("dagnet.models", "dagnet.viz", "models", "viz", "dagnet.cli"),
                  "dagnet/onnx/backend.py": ("dagnet.models", "dagnet.viz", "models", "viz",
                                             "dagnet.cli", "dagnet.saving")}
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
    bad = []
    top = ROOT / folder
    for path in [top] if top.is_file() else top.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in FACADE or rel.startswith(EXEMPT_FOLDERS):
            continue
        for mod in imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in RULES[folder]):
                bad.append(f"{rel} imports {mod}")
    assert not bad, "\n".join(bad)


# Inside core, the layers of the graph stack (lower never imports higher):
#   ops (declarations, kernels) -> init -> ir (container) -> infer (node checks, shapes)
#   -> graph (the builder) -> spec, onnx (formats that build through the builder)
CORE_LAYERS = [
    ("dagnet/ops/", ("dagnet.init", "dagnet.ir", "dagnet.infer", "dagnet.graph", "dagnet.spec",
                     "dagnet.onnx", "dagnet.interpreter", "dagnet.runtime")),
    ("dagnet/init.py", ("dagnet.ir", "dagnet.infer", "dagnet.graph", "dagnet.spec", "dagnet.onnx")),
    ("dagnet/ir.py", ("dagnet.infer", "dagnet.graph", "dagnet.spec", "dagnet.onnx")),
    ("dagnet/infer.py", ("dagnet.graph", "dagnet.spec", "dagnet.onnx")),
    ("dagnet/graph.py", ("dagnet.spec", "dagnet.onnx")),
    ("dagnet/spec/", ("dagnet.onnx",)),
    ("dagnet/onnx/", ("dagnet.spec",)),
]


@pytest.mark.parametrize("where, forbidden", CORE_LAYERS, ids=[w for w, _ in CORE_LAYERS])
def test_core_layers(where, forbidden):
    paths = [ROOT / where] if where.endswith(".py") else (ROOT / where).rglob("*.py")
    bad = [f"{p.relative_to(ROOT).as_posix()} imports {mod}" for p in paths for mod in imports(p)
           if any(mod == f or mod.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)


def test_nothing_reaches_core_through_the_facade():
    """Core modules import core modules by name, never the `dagnet` facade itself (which
    re-exports the compiler): `from dagnet import compile` in core would be the compiler."""
    core = {p.stem if p.name != "__init__.py" else p.parent.name
            for p in (ROOT / "dagnet").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    bad = []
    for path in (ROOT / "dagnet").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in FACADE or rel.startswith(EXEMPT_FOLDERS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "dagnet" for a in node.names):
                bad.append(f"{rel}: import dagnet")
            elif isinstance(node, ast.ImportFrom) and node.module == "dagnet":
                bad += [f"{rel}: from dagnet import {a.name}" for a in node.names
                        if a.name not in core]
    assert not bad, "\n".join(bad)


def test_the_facade_sits_below_the_cli():
    bad = [v for f in sorted(FACADE) for v in violations([ROOT / f], FACADE_MAY_NOT[f])]
    assert not bad, "\n".join(bad)
    assert "dagnet.compiler" in set(imports(ROOT / "dagnet/saving.py"))  # why it is no core module


#: a module that grows past this is doing more than one thing: split it by responsibility
MAX_LINES = 400


def test_no_module_is_over_the_size_limit():
    sources = [p for folder in ("dagnet", "compiler", "models", "viz")
               for pattern in ("*.py", "*.pyx", "*.pxi") for p in (ROOT / folder).rglob(pattern)]
    assert len(sources) > 50
    long = {str(p.relative_to(ROOT)): n for p in sources
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules by responsibility: {long}"
