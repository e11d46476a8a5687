"""The model zoo: functions that build a Graph, sized for Fashion-MNIST unless told otherwise.

Each takes `input_shape` (C, H, W) and `num_classes`, plus `init` / `weight_scale` for every
conv and affine weight (default He; `init="gaussian", weight_scale=1e-3` gives course-style
small weights). None has a regularisation argument: L2 weight decay belongs to the solver.

Node names follow the sequential spec form (dagnet.spec): a layer is named after its type and how
many layers of that type came before (conv1, relu1, pool1, fc1, bn1, drop1), the classifier layer
is `scores`, the labels input `y` and the loss `loss`; so the YAML files in models/specs build
graphs equal (`==`) to these functions' defaults.
"""
from __future__ import annotations

from collections.abc import Sequence

from dagnet.errors import DagnetError
from dagnet.graph import Graph, Node

FASHION_MNIST = (1, 28, 28)


def strided(graph: Graph, x, size: int, stride: int, pad: int = 0) -> dict:
    """The stride keywords of a window op on x: {stride}, plus floor=True where the windows do
    not tile H, W exactly. (Left off where it changes nothing, the node reads as the ONNX
    importer writes it back: ONNX always floors.)"""
    if stride == 1:
        return {}
    h, w = graph.shape_of(x)[1:3]
    ragged = any((n + 2 * pad - size) % stride for n in (h, w))
    return {"stride": stride, **({"floor": True} if ragged else {})}


class _Stack:
    """A layer stack over a Graph that names layers as the sequential spec form does."""

    def __init__(self, name: str, input_shape, init: str, weight_scale):
        self.g = Graph(name)
        self.h = self.g.input("x", input_shape)
        self.labels = self.g.input("y", (), dtype="int64")
        self.weights = {"init": init, "weight_scale": weight_scale}
        self._counts: dict[str, int] = {}

    def _name(self, prefix: str) -> str:
        self._counts[prefix] = self._counts.get(prefix, 0) + 1
        return f"{prefix}{self._counts[prefix]}"

    def conv(self, filters: int, size: int, pad: int = 0, stride: int = 1) -> "_Stack":
        self.h = self.g.conv2d(self.h, filters, size, pad=pad, name=self._name("conv"),
                               **strided(self.g, self.h, size, stride, pad), **self.weights)
        return self

    def fc(self, units: int) -> "_Stack":
        self.h = self.g.affine(self.h, units, name=self._name("fc"), **self.weights)
        return self

    def relu(self) -> "_Stack":
        self.h = self.g.relu(self.h, name=self._name("relu"))
        return self

    def pool(self, size: int = 2, stride: int = 2) -> "_Stack":
        """A max pool (floored where the windows do not tile the input)."""
        self.h = self.g.max_pool2d(self.h, size=size, name=self._name("pool"),
                                   **{"stride": stride, **strided(self.g, self.h, size, stride)})
        return self

    def bn(self) -> "_Stack":
        self.h = self.g.batchnorm(self.h, name=self._name("bn"))
        return self

    def dropout(self, p: float) -> "_Stack":
        self.h = self.g.dropout(self.h, p=p, name=self._name("drop"))
        return self

    def classify(self, num_classes: int) -> Graph:
        """The `scores` affine layer and the softmax loss; returns the graph."""
        scores = self.g.affine(self.h, num_classes, name="scores", **self.weights)
        self.g.softmax_cross_entropy(scores, self.labels)
        return self.g


def two_layer_net(input_shape=FASHION_MNIST, hidden: int = 100, num_classes: int = 10,
                  init: str = "he", weight_scale: float | None = None) -> Graph:
    """affine - relu - affine - softmax.
    x: (N, *input_shape) -> fc1 (N, hidden) -> scores (N, num_classes)."""
    return _Stack("two_layer_net", input_shape, init, weight_scale).fc(hidden).relu() \
        .classify(num_classes)


def fc_net(input_shape=FASHION_MNIST, hidden_dims: Sequence[int] = (100, 100),
           num_classes: int = 10, dropout: float = 0.0, batchnorm: bool = False,
           init: str = "he", weight_scale: float | None = None) -> Graph:
    """[affine - (batchnorm) - relu - (dropout)] x len(hidden_dims) - affine - softmax.
    x: (N, *input_shape) -> fc_i (N, hidden_dims[i]) -> scores (N, num_classes).
    `dropout` is the drop probability (0 leaves dropout out)."""
    net = _Stack("fc_net", input_shape, init, weight_scale)
    for units in hidden_dims:
        net.fc(units)
        if batchnorm:
            net.bn()
        net.relu()
        if dropout:
            net.dropout(dropout)
    return net.classify(num_classes)


def three_layer_convnet(input_shape=(3, 32, 32), num_filters: int = 32, filter_size: int = 7,
                        hidden: int = 100, num_classes: int = 10, batchnorm: bool = False,
                        init: str = "he", weight_scale: float | None = None) -> Graph:
    """conv - (batchnorm) - relu - 2x2 max pool - affine - (batchnorm) - relu - affine - softmax;
    the conv pads to keep H, W; batchnorm=True is the course's use_batchnorm (spatial batchnorm
    after the conv, batchnorm after the hidden affine, each before its relu).
    x: (N, C, H, W) -> conv1 (N, num_filters, H, W) -> pool1 (N, num_filters, H/2, W/2)
    -> fc1 (N, hidden) -> scores (N, num_classes). filter_size must be odd."""
    if filter_size % 2 == 0:
        raise DagnetError(f"three_layer_convnet: filter_size must be odd to keep the size with "
                          f"symmetric padding, got {filter_size}")
    net = _Stack("three_layer_convnet", input_shape, init, weight_scale) \
        .conv(num_filters, filter_size, pad=filter_size // 2)
    if batchnorm:
        net.bn()
    net.relu().pool().fc(hidden)
    if batchnorm:
        net.bn()
    return net.relu().classify(num_classes)


def lenet(input_shape=FASHION_MNIST, num_classes: int = 10, init: str = "he",
          weight_scale: float | None = None) -> Graph:
    """LeNet: conv 5x5x20 - relu - pool 2 - conv 5x5x50 - relu - pool 2 - fc 500 - relu - fc.
    x: (N, 1, 28, 28) -> conv1 (N, 20, 24, 24) -> pool1 (N, 20, 12, 12) -> conv2 (N, 50, 8, 8)
    -> pool2 (N, 50, 4, 4) -> fc1 (N, 500) -> scores (N, 10); 431,080 params."""
    return _Stack("lenet", input_shape, init, weight_scale) \
        .conv(20, 5).relu().pool().conv(50, 5).relu().pool() \
        .fc(500).relu().classify(num_classes)


def lenet_bn(input_shape=FASHION_MNIST, num_classes: int = 10, init: str = "he",
             weight_scale: float | None = None) -> Graph:
    """LeNet with batchnorm after each conv and after fc 500 (bn1, bn2, bn3), before the relu.
    Shapes as in lenet: conv1 (N, 20, 24, 24) ... fc1 (N, 500) -> scores (N, 10)."""
    return _Stack("lenet_bn", input_shape, init, weight_scale) \
        .conv(20, 5).bn().relu().pool().conv(50, 5).bn().relu().pool() \
        .fc(500).bn().relu().classify(num_classes)


def convnet_deep(input_shape=FASHION_MNIST, n: int = 2, m: int = 1,
                 filters: int | Sequence[int] = (32, 64), filter_size: int = 3,
                 hidden: int = 100, num_classes: int = 10, init: str = "he",
                 weight_scale: float | None = None) -> Graph:
    """[conv - relu - conv - relu - 2x2 pool] x n - [affine - relu] x (m - 1) - affine - softmax.
    Convs pad to keep the size, block i has filters[i] filters (an int: the same for all), so
    x: (N, C, H, W) -> pool_i (N, filters[i], H / 2**i, W / 2**i) -> fc_j (N, hidden)
    -> scores (N, num_classes); H and W must stay even down to the last pool."""
    filters = [filters] * n if isinstance(filters, int) else list(filters)
    if len(filters) != n or n < 1 or m < 1:
        raise DagnetError(f"convnet_deep: need n >= 1 conv blocks, m >= 1 affine layers and one "
                          f"filter count per block; got n={n}, m={m}, filters={filters}")
    if filter_size % 2 == 0:
        raise DagnetError(f"convnet_deep: filter_size must be odd, got {filter_size}")
    net = _Stack("convnet_deep", input_shape, init, weight_scale)
    for f in filters:
        net.conv(f, filter_size, pad=filter_size // 2).relu() \
            .conv(f, filter_size, pad=filter_size // 2).relu().pool()
    for _ in range(m - 1):
        net.fc(hidden).relu()
    return net.classify(num_classes)


def _residual_block(g: Graph, x: Node, name: str, channels: int, downsample: bool,
                    weights: dict) -> Node:
    """conv-bn-relu-conv-bn-add(skip)-relu; a downsampling block halves H, W with a stride-2
    first conv and a 1x1 stride-2 conv on the skip (floor: odd sizes such as 7 still work)."""
    stride = {"stride": 2, "floor": True} if downsample else {}
    h = g.conv2d(x, channels, 3, pad=1, name=f"{name}.conv1", **stride, **weights)
    h = g.relu(g.batchnorm(h, name=f"{name}.bn1"), name=f"{name}.relu1")
    h = g.conv2d(h, channels, 3, pad=1, name=f"{name}.conv2", **weights)
    h = g.batchnorm(h, name=f"{name}.bn2")
    skip = g.conv2d(x, channels, 1, name=f"{name}.skip", **stride, **weights) if downsample else x
    return g.relu(g.add(h, skip, name=f"{name}.add"), name=f"{name}.relu2")


def resnet_small(input_shape=FASHION_MNIST, blocks: int = 2, channels: int = 16,
                 num_classes: int = 10, init: str = "he",
                 weight_scale: float | None = None) -> Graph:
    """A small residual net: stem conv-bn-relu; stage 1 of `blocks` residual blocks at
    `channels`; stage 2 opening with a downsampling block to 2*channels, `blocks` in all; a
    head that global-average-pools both stages and concatenates them (it sees both scales)
    before the `scores` affine layer.
    x: (N, C, H, W) -> stem (N, channels, H, W) -> block{blocks} (N, channels, H, W)
    -> block{2*blocks} (N, 2*channels, ceil(H/2), ceil(W/2)) -> features (N, 3*channels)
    -> scores (N, num_classes)."""
    if blocks < 1:
        raise DagnetError(f"resnet_small: blocks must be >= 1, got {blocks}")
    weights = {"init": init, "weight_scale": weight_scale}
    g = Graph("resnet_small")
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    h = g.conv2d(x, channels, 3, pad=1, name="stem.conv", **weights)
    h = g.relu(g.batchnorm(h, name="stem.bn"), name="stem.relu")
    for i in range(1, blocks + 1):
        h = _residual_block(g, h, f"block{i}", channels, False, weights)
    stage1 = h
    for i in range(blocks + 1, 2 * blocks + 1):
        h = _residual_block(g, h, f"block{i}", 2 * channels, i == blocks + 1, weights)
    features = g.concat(g.global_avg_pool(stage1, name="gap1"),
                        g.global_avg_pool(h, name="gap2"), name="features")
    scores = g.affine(features, num_classes, name="scores", **weights)
    g.softmax_cross_entropy(scores, y)
    return g
