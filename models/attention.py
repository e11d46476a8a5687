"""Attention-era models built from tensor math: a tiny Vision Transformer (Dosovitskiy et al.
2020) and a tiny MLP-Mixer (Tolstikhin et al. 2021), sized for Fashion-MNIST.

Both cut the image into non-overlapping patches with reshape and transpose (no conv), embed each
patch with a per-token linear layer (matmul with a (D_in, D) weight, add a (D,) bias: dagnet's
affine flattens the whole example, so token-wise layers are written out), run pre-norm residual
blocks, average the tokens and classify with the `scores` affine layer. Multi-head attention is
written out from matmul, softmax and transpose, its heads split by reshape, so every step shows
in the plan. Node names are dotted (`block1.attn.q`, `block2.mlp.fc1`), so summaries and
diagrams fold the repeated blocks. Every weight, the position table included, takes `init` and
`weight_scale`; biases start at zero, layer norms at gamma 1, beta 0.
"""
from __future__ import annotations

import math

from dagnet.errors import DagnetError
from dagnet.graph import Graph, Node
from dagnet.init import FAN_INITS, fans
from dagnet.models.zoo import FASHION_MNIST


def _weight(g: Graph, name: str, shape: tuple, weights: dict) -> Node:
    """A (fan_in, fan_out) weight param initialised as the zoo's affine layers are."""
    fan_in, fan_out = fans(shape, {}) if weights["init"] in FAN_INITS else (None, None)
    return g.param(name, shape, init=weights["init"], scale=weights["weight_scale"],
                   fan_in=fan_in, fan_out=fan_out)


def dense(g: Graph, x: Node, units: int, name: str, weights: dict) -> Node:
    """A linear layer on the last axis: `name.matmul` (x @ name.w) then `name` (+ name.b).
    x: (N, ..., D) -> (N, ..., units)."""
    d = g.shape_of(x)[-1]
    h = g.matmul(x, _weight(g, f"{name}.w", (d, units), weights), name=f"{name}.matmul")
    return g.add(h, g.param(f"{name}.b", (units,), init="zeros"), name=name)


def patchify(g: Graph, x: Node, patch: int, name: str = "patches") -> Node:
    """Non-overlapping patch x patch squares as tokens, row by row, each flattened (C, p, p).
    x: (N, C, H, W) -> name.grid (N, C, H/p, p, W/p, p) -> name.order (N, H/p, W/p, C, p, p)
    -> name (N, H/p * W/p, C * p * p)."""
    c, h, w = g.shape_of(x)
    if h % patch or w % patch:
        raise DagnetError(f"{g.name}: patch = {patch} must divide the image's height and width, "
                          f"got input_shape {(c, h, w)}; pick a patch size that divides both")
    grid = g.reshape(x, (c, h // patch, patch, w // patch, patch), name=f"{name}.grid")
    order = g.transpose(grid, perm=(0, 2, 4, 1, 3, 5), name=f"{name}.order")
    return g.reshape(order, ((h // patch) * (w // patch), c * patch * patch), name=name)


def _heads(g: Graph, x: Node, heads: int, name: str, keys: bool = False) -> Node:
    """Split the features into heads: (N, T, D) -> name.split (N, T, heads, D/heads) ->
    name (N, heads, T, D/heads), or (N, heads, D/heads, T) for keys (ready for q @ k^T)."""
    t, d = g.shape_of(x)
    h = g.reshape(x, (t, heads, d // heads), name=f"{name}.split")
    return g.transpose(h, perm=(0, 2, 3, 1) if keys else (0, 2, 1, 3), name=name)


def attention(g: Graph, x: Node, heads: int, name: str, weights: dict) -> Node:
    """Multi-head self-attention: softmax(q k^T / sqrt(d_head)) v per head, heads merged, then
    the output projection. x: (N, T, D) -> name.scores (N, heads, T, T) -> name.out (N, T, D)."""
    t, d = g.shape_of(x)
    q = _heads(g, dense(g, x, d, f"{name}.q", weights), heads, f"{name}.q_heads")
    k = _heads(g, dense(g, x, d, f"{name}.k", weights), heads, f"{name}.k_heads", keys=True)
    v = _heads(g, dense(g, x, d, f"{name}.v", weights), heads, f"{name}.v_heads")
    scores = g.mul(g.matmul(q, k, name=f"{name}.qk"), 1.0 / math.sqrt(d // heads),
                   name=f"{name}.scores")
    probs = g.softmax(scores, axis=-1, name=f"{name}.softmax")
    context = g.matmul(probs, v, name=f"{name}.context")
    merged = g.transpose(context, perm=(0, 2, 1, 3), name=f"{name}.merge.order")
    merged = g.reshape(merged, (t, d), name=f"{name}.merge")
    return dense(g, merged, d, f"{name}.out", weights)


def mlp(g: Graph, x: Node, hidden: int, name: str, weights: dict) -> Node:
    """fc1 - gelu - fc2 on the last axis. x: (N, ..., D) -> name.fc1 (N, ..., hidden) -> (N, ..., D)."""
    h = g.gelu(dense(g, x, hidden, f"{name}.fc1", weights), name=f"{name}.gelu")
    return dense(g, h, g.shape_of(x)[-1], f"{name}.fc2", weights)


def _classify(g: Graph, h: Node, num_classes: int, labels: Node, weights: dict) -> Graph:
    """The final layer norm, the mean over tokens and the `scores` affine layer, and the loss."""
    h = g.mean(g.layer_norm(h, name="norm"), axes=[1], name="pool")
    scores = g.affine(h, num_classes, name="scores", **weights)
    g.softmax_cross_entropy(scores, labels)
    return g


def _check(name: str, **counts) -> None:
    bad = {k: v for k, v in counts.items() if not (isinstance(v, int) and v >= 1)}
    if bad:
        raise DagnetError(f"{name}: {', '.join(f'{k}={v!r}' for k, v in bad.items())}: each "
                          f"must be an int >= 1")


def vit_tiny(input_shape=FASHION_MNIST, num_classes: int = 10, patch: int = 4, dim: int = 64,
             depth: int = 2, heads: int = 4, mlp_hidden: int = 128, init: str = "he",
             weight_scale: float | None = None) -> Graph:
    """A tiny Vision Transformer: patches, a linear patch embedding plus a learned position
    embedding, `depth` pre-norm encoder blocks (x + attn(ln1(x)), then x + mlp(ln2(x)), the MLP
    with gelu), a final layer norm, the mean over tokens, affine. 71,946 params at the defaults.
    x: (N, 1, 28, 28) -> patches (N, 49, 16) -> embed (N, 49, 64) -> pos (N, 49, 64)
    -> block{depth}.add2 (N, 49, 64) -> pool (N, 64) -> scores (N, num_classes)."""
    _check("vit_tiny", patch=patch, dim=dim, depth=depth, heads=heads, mlp_hidden=mlp_hidden)
    if dim % heads:
        raise DagnetError(f"vit_tiny: heads = {heads} must divide dim = {dim} (each head takes "
                          f"dim / heads features)")
    weights = {"init": init, "weight_scale": weight_scale}
    g = Graph("vit_tiny")
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    h = dense(g, patchify(g, x, patch), dim, "embed", weights)
    h = g.add(h, _weight(g, "pos.table", tuple(g.shape_of(h)), weights), name="pos")
    for b in range(1, depth + 1):
        name = f"block{b}"
        a = attention(g, g.layer_norm(h, name=f"{name}.ln1"), heads, f"{name}.attn", weights)
        h = g.add(h, a, name=f"{name}.add1")
        m = mlp(g, g.layer_norm(h, name=f"{name}.ln2"), mlp_hidden, f"{name}.mlp", weights)
        h = g.add(h, m, name=f"{name}.add2")
    return _classify(g, h, num_classes, y, weights)


def mixer_tiny(input_shape=FASHION_MNIST, num_classes: int = 10, patch: int = 4, dim: int = 64,
               depth: int = 2, token_hidden: int = 64, channel_hidden: int = 128,
               init: str = "he", weight_scale: float | None = None) -> Graph:
    """A tiny MLP-Mixer: patches, a linear patch embedding, `depth` blocks of a token-mixing MLP
    (across patches, on the transposed tokens) and a channel-mixing MLP (across features), each
    pre-norm with gelu and a residual add, a final layer norm, the mean over tokens, affine.
    48,300 params at the defaults.
    x: (N, 1, 28, 28) -> patches (N, 49, 16) -> embed (N, 49, 64)
    -> block1.tokens.fc1 (N, 64, token_hidden) -> block{depth}.add2 (N, 49, 64) -> pool (N, 64)
    -> scores (N, num_classes)."""
    _check("mixer_tiny", patch=patch, dim=dim, depth=depth, token_hidden=token_hidden,
           channel_hidden=channel_hidden)
    weights = {"init": init, "weight_scale": weight_scale}
    g = Graph("mixer_tiny")
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    h = dense(g, patchify(g, x, patch), dim, "embed", weights)
    for b in range(1, depth + 1):
        name = f"block{b}"
        t = g.transpose(g.layer_norm(h, name=f"{name}.ln1"), perm=(0, 2, 1),
                        name=f"{name}.tokens.in")
        t = mlp(g, t, token_hidden, f"{name}.tokens", weights)
        h = g.add(h, g.transpose(t, perm=(0, 2, 1), name=f"{name}.tokens.out"),
                  name=f"{name}.add1")
        m = mlp(g, g.layer_norm(h, name=f"{name}.ln2"), channel_hidden, f"{name}.channels",
                weights)
        h = g.add(h, m, name=f"{name}.add2")
    return _classify(g, h, num_classes, y, weights)
