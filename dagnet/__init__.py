"""dagnet: a graph-compiled neural-network framework.

    import dagnet
    g = dagnet.Graph()
    x = g.input("x", (1, 28, 28)); y = g.input("y", (), dtype="int64")
    h = g.relu(g.conv2d(x, filters=8, size=3, pad=1)) ...
    plan = dagnet.compile(g)
    loss, grads = plan.loss_and_grads(x_batch, y_batch)

Submodules load on first use (`dagnet.onnx.load(...)`, `dagnet.viz.render_graph(...)`), and so
do `dagnet.save`, `dagnet.load` and `dagnet.Model` (dagnet.saving, dagnet.inference).
"""
import importlib

from dagnet import procenv  # noqa: F401  (first: it must run before numpy loads)
from dagnet import ops  # noqa: F401  (registers every op)
from dagnet.errors import DagnetError, MissingDependencyError
from dagnet.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from dagnet.version import __version__

__all__ = [
    "DagnetError",
    "numerical_gradient",
    "numerical_gradient_array",
    "rel_error",
    "__version__",
]

# The facade re-exports the graph and the compiler (core modules never import the compiler).
from dagnet.graph import Graph, Node  # noqa: E402
from dagnet import spec  # noqa: E402,F401  (plugs the spec reader into Graph.from_spec)
from dagnet.compiler import ExecutionPlan, compile  # noqa: E402
from dagnet.compiler.jacobian import jacobian, jvp  # noqa: E402

__all__ += ["ExecutionPlan", "Graph", "Node", "compile", "jacobian", "jvp"]


def _svg(render):
    """A Jupyter `_repr_svg_` that draws with dagnet.viz (imported only when a notebook asks)."""

    def _repr_svg_(self):
        from dagnet.errors import DagnetError
        from dagnet import viz

        try:
            return getattr(viz, render)(self).pipe(format="svg", encoding="utf-8")
        except (DagnetError, OSError):  # no graphviz `dot`: the notebook falls back to repr
            return None

    return _repr_svg_


def _repr_html_(self):
    """Notebooks: a summary table beside the interactive explorer (dagnet.viz.html)."""
    from dagnet.viz.html import notebook_html

    try:
        return notebook_html(self)
    except DagnetError:  # e.g. shapes that do not infer: the notebook falls back to the SVG or repr
        return None


# Core modules never import viz; the facade wires inline display for notebooks.
Graph._repr_svg_ = _svg("render_graph")
ExecutionPlan._repr_svg_ = _svg("render_plan")
Graph._repr_html_ = ExecutionPlan._repr_html_ = _repr_html_


#: loaded on first attribute access: {name: module}; a submodule is its own module
_LAZY = {"save": "dagnet.saving", "load": "dagnet.saving", "Model": "dagnet.inference"}
_SUBMODULES = ("data", "dist", "inference", "interpreter", "models", "onnx", "reference", "saving",
               "spec", "summary", "train", "viz")
__all__ += ["Model", "load", "save"]


def __getattr__(name):
    """`dagnet.onnx`, `dagnet.load`, ...: imported when first used, so `import dagnet` stays
    light and `import dagnet.onnx` is never needed."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name not in _SUBMODULES:
        raise AttributeError(f"module 'dagnet' has no attribute {name!r}")
    try:
        return importlib.import_module(f"dagnet.{name}")
    except ModuleNotFoundError as e:
        if not e.name or e.name.split(".")[0] == "dagnet":
            raise
        raise MissingDependencyError(f"dagnet.{name} needs the Python package '{e.name}', which "
                                     f"is not installed: pip install {e.name}") from e


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
