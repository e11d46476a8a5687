"""The look of every dagnet diagram: one table of node styles keyed by op family, the colors
of the compiler's annotations, and the text formats of shapes, counts and bytes."""
from __future__ import annotations

import matplotlib
import matplotlib.colors as mcolors

from dagnet.graph import LEAVES, PARAM
from dagnet.ops import get_op

FONT = "Helvetica,Arial,sans-serif"

# Pastel fills keep black text readable; hues separate the families a reader looks for first
# (conv blue, pool green, dense orange, loss red). Borders are a darker shade of the fill.
STYLES = {
    "input": {"fillcolor": "#FFFFFF", "color": "#222222", "shape": "box", "style": "rounded,filled,bold"},
    "param": {"fillcolor": "#FFF6D5", "color": "#B8A25A", "shape": "note", "style": "filled"},
    "constant": {"fillcolor": "#F2F2F2", "color": "#8C8C8C", "shape": "note", "style": "filled"},
    "conv": {"fillcolor": "#C6DBEF", "color": "#4A7FB0", "shape": "box", "style": "rounded,filled"},
    "pool": {"fillcolor": "#C7E9C0", "color": "#4E9A4E", "shape": "box", "style": "rounded,filled"},
    "dense": {"fillcolor": "#FDD9B5", "color": "#C97A2C", "shape": "box", "style": "rounded,filled"},
    "activation": {"fillcolor": "#FFF2AE", "color": "#B39B22", "shape": "box", "style": "rounded,filled"},
    "norm": {"fillcolor": "#DADAEB", "color": "#7B6FB0", "shape": "box", "style": "rounded,filled"},
    "dropout": {"fillcolor": "#E5E5E5", "color": "#888888", "shape": "box", "style": "rounded,filled"},
    "shape": {"fillcolor": "#F4F4F4", "color": "#999999", "shape": "box", "style": "rounded,filled"},
    "merge": {"fillcolor": "#C9ECE8", "color": "#3B9A90", "shape": "box", "style": "rounded,filled"},
    "loss": {"fillcolor": "#F8C4C4", "color": "#B03A3A", "shape": "box", "style": "filled,bold"},
    "fused": {"fillcolor": "#E3E0F8", "color": "#5B4FC4", "shape": "box", "style": "rounded,filled,bold"},
    "op": {"fillcolor": "#EEEEEE", "color": "#777777", "shape": "box", "style": "rounded,filled"},
}

# Ops whose module is not their family: softmax and log_softmax live with the losses but are
# activations; the per-example normalisations and LRN are norms; an embedding is a weight layer;
# slicing, padding and gathering move data as reshape does.
_FAMILY_OVERRIDES = {"softmax": "activation", "log_softmax": "activation", "layer_norm": "norm",
                     "group_norm": "norm", "instance_norm": "norm", "lrn": "norm",
                     "embedding": "dense", "fused_elementwise": "fused",
                     **dict.fromkeys(("slice", "split", "pad", "tile", "gather"), "shape")}

# Compiler annotations.
# Clusters set every attribute they use: a nested cluster would inherit its parent's.
FUSED_CLUSTER = {"color": "#5B4FC4", "bgcolor": "#F4F2FD", "style": "rounded,bold", "penwidth": "1.6",
                 "fontcolor": "#222222", "fontsize": "12"}
NEAR_MISS = {"color": "#D9822B", "bgcolor": "#FFFFFF", "style": "rounded,dashed", "penwidth": "1.6",
             "fontcolor": "#A0561A", "fontsize": "12"}
BLOCK_CLUSTER = {"color": "#9A9A9A", "bgcolor": "#FAFAFA", "style": "rounded,dotted", "penwidth": "1.2"}
BLOCK_NODE = {"shape": "box3d", "style": "filled", "fillcolor": "#EDEDF5", "color": "#6B6B8F"}
PRUNED = {"fillcolor": "#F5F5F5", "color": "#BBBBBB", "fontcolor": "#AAAAAA", "style": "rounded,filled,dashed"}
BACKWARD = {"fillcolor": "#FBE3E6", "color": "#C0394B", "shape": "box", "style": "rounded,filled"}
GRADIENT_EDGE = {"color": "#C0394B", "fontcolor": "#C0394B"}
PEAK = {"color": "#D62728", "penwidth": "3"}
# fine-tuning: a layer whose params are frozen (no gradient, no update) is drawn cold and dashed
FROZEN = {"fillcolor": "#E6EEF7", "color": "#5A7FA8", "style": "rounded,filled,dashed", "penwidth": "1.4"}
FROZEN_MARK = "#3D6A99"
INPLACE_MARK = "#1B7F79"
STEP_MARK = "#5B4FC4"
EDGE = {"color": "#555555", "fontcolor": "#666666", "fontsize": "9", "arrowsize": "0.7"}
PARAM_EDGE = {"color": "#B8A25A", "arrowsize": "0.5"}
PRUNED_EDGE = {"color": "#BBBBBB", "fontcolor": "#AAAAAA", "style": "dashed"}
INNER_EDGE = {"color": "#A09ACC", "style": "dashed", "arrowsize": "0.6"}  # never stored: fused
REMOVED = {"style": "rounded,filled,dashed", "fillcolor": "#FFFFFF", "fontcolor": "#888888"}
DIFF = {"added": "#2CA02C", "removed": "#D62728", "changed": "#FF7F0E", "annotated": "#1F77B4"}
HEAT_CMAP = "YlOrRd"
BUFFER_CMAP = "tab10"  # saturated: buffer tags are text on pastel fills


def family_of(node) -> str:
    """The style family of a node: input, param, constant, loss, fused, or its op module's name."""
    if node.op in LEAVES:
        return node.op
    op = get_op(node.op, node.name)
    if op.kind == "loss":
        return "loss"
    family = _FAMILY_OVERRIDES.get(node.op, type(op).__module__.rsplit(".", 1)[-1])
    return family if family in STYLES else "op"


def style_of(node) -> dict:
    """Graphviz node attributes for a node's family."""
    return dict(STYLES[family_of(node)])


def heat_color(fraction: float) -> str:
    """A fill for a share in [0, 1] of the slowest step; capped so black text stays readable."""
    return mcolors.to_hex(matplotlib.colormaps[HEAT_CMAP](0.05 + 0.45 * min(max(fraction, 0.0), 1.0)))


def buffer_color(buffer: int) -> str:
    """A distinct color per buffer id (cycling over a qualitative palette)."""
    cmap = matplotlib.colormaps[BUFFER_CMAP]
    return mcolors.to_hex(cmap(buffer % cmap.N))


def shape_text(shape) -> str:
    """(20, 24, 24) -> '20×24×24'; () -> 'scalar'."""
    return "×".join(str(d) for d in shape) if len(shape) else "scalar"


def value_shape_text(node) -> str:
    """The shape of a node's value: per example as shape_text, marked 'unbatched' when it has
    no batch axis but would be read as per example (not a param's or a loss's)."""
    text = shape_text(node.meta["shape"])
    plain = node.meta.get("batched", True) or node.op == PARAM or \
        (node.op not in LEAVES and get_op(node.op, node.name).kind == "loss")
    return text if plain else f"{text} unbatched"


def count_text(n: int) -> str:
    """12345 -> '12,345'."""
    return f"{int(n):,}"


def bytes_text(n: float) -> str:
    """Bytes in B, KB or MB (powers of 1024)."""
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def seconds_text(s: float) -> str:
    """Seconds as µs or ms."""
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"
