"""dagnet: a graph-compiled neural-network framework.

    import dagnet
    g = dagnet.Graph()
    x = g.input("x", (1, 28, 28)); y = g.input("y", (), dtype="int64")
    h = g.relu(g.conv2d(x, filters=8, size=3, pad=1)) ...
    plan = dagnet.compile(g)
    loss, grads = plan.loss_and_grads(x_batch, y_batch)
"""
from dagnet import procenv  # noqa: F401  (first: it must run before numpy loads)
from dagnet import ops  # noqa: F401  (registers every op)
from dagnet.errors import DagnetError
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

__all__ += ["ExecutionPlan", "Graph", "Node", "compile"]


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


# Core modules never import viz; the facade wires inline display for notebooks.
Graph._repr_svg_ = _svg("render_graph")
ExecutionPlan._repr_svg_ = _svg("render_plan")
