"""Residual networks (He et al. 2015): the CIFAR ResNet-20, ResNet-18 and the ImageNet ResNet-50.

All three share one builder: a stem, stages of blocks whose first block may halve H, W (a
stride-2 conv, with a 1x1 stride-2 conv + batchnorm projection on the skip wherever the shape
changes: the paper's option B), global average pooling and the `scores` affine layer. Node
names are dotted, stage by stage (`stage2.block1.conv1`, `stage2.block1.skip`), so summaries
and diagrams fold the repeated blocks. Convs keep their bias (dagnet's conv always has one; the
batchnorm after it cancels it), so the counts are torchvision's plus one bias per conv filter.
"""
from __future__ import annotations

from dagnet.errors import DagnetError
from dagnet.graph import Graph, Node
from dagnet.models.zoo import strided

IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)


def _basic_block(g: Graph, x: Node, name: str, channels: int, stride: int, weights: dict) -> Node:
    """3x3 conv-bn-relu, 3x3 conv-bn, + skip, relu (ResNet-18/20/34)."""
    h = g.conv2d(x, channels, 3, pad=1, name=f"{name}.conv1", **strided(g, x, 3, stride, 1),
                 **weights)
    h = g.relu(g.batchnorm(h, name=f"{name}.bn1"), name=f"{name}.relu1")
    h = g.conv2d(h, channels, 3, pad=1, name=f"{name}.conv2", **weights)
    h = g.batchnorm(h, name=f"{name}.bn2")
    skip = _projection(g, x, name, channels, stride, weights)
    return g.relu(g.add(h, skip, name=f"{name}.add"), name=f"{name}.relu2")


def _bottleneck(g: Graph, x: Node, name: str, channels: int, stride: int, weights: dict) -> Node:
    """1x1 conv (channels) - 3x3 conv (channels, the stride) - 1x1 conv (4 x channels), each
    followed by batchnorm and all but the last by relu, + skip, relu (ResNet-50, v1.5: the
    stride sits on the 3x3 conv, as in torchvision)."""
    h = g.conv2d(x, channels, 1, name=f"{name}.conv1", **weights)
    h = g.relu(g.batchnorm(h, name=f"{name}.bn1"), name=f"{name}.relu1")
    h = g.conv2d(h, channels, 3, pad=1, name=f"{name}.conv2", **strided(g, h, 3, stride, 1),
                 **weights)
    h = g.relu(g.batchnorm(h, name=f"{name}.bn2"), name=f"{name}.relu2")
    h = g.conv2d(h, 4 * channels, 1, name=f"{name}.conv3", **weights)
    h = g.batchnorm(h, name=f"{name}.bn3")
    skip = _projection(g, x, name, 4 * channels, stride, weights)
    return g.relu(g.add(h, skip, name=f"{name}.add"), name=f"{name}.relu3")


def _projection(g: Graph, x: Node, name: str, channels: int, stride: int, weights: dict) -> Node:
    """The skip: x itself where the shape is kept, else a 1x1 (stride) conv + batchnorm."""
    if stride == 1 and g.shape_of(x)[0] == channels:
        return x
    h = g.conv2d(x, channels, 1, name=f"{name}.skip", **strided(g, x, 1, stride), **weights)
    return g.batchnorm(h, name=f"{name}.skip_bn")


def _resnet(name: str, input_shape, num_classes: int, stages, widths, block, stem: str,
            init: str, weight_scale) -> Graph:
    weights = {"init": init, "weight_scale": weight_scale}
    g = Graph(name)
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    if stem == "imagenet":  # 7x7 stride-2 conv, 3x3 stride-2 max pool: H/4
        h = g.conv2d(x, widths[0], 7, pad=3, name="stem.conv", **strided(g, x, 7, 2, 3),
                     **weights)
        h = g.relu(g.batchnorm(h, name="stem.bn"), name="stem.relu")
        h = g.max_pool2d(h, size=3, pad=1, name="stem.pool",
                         **{"stride": 2, **strided(g, h, 3, 2, 1)})
    elif stem == "cifar":  # one 3x3 conv: H kept
        h = g.conv2d(x, widths[0], 3, pad=1, name="stem.conv", **weights)
        h = g.relu(g.batchnorm(h, name="stem.bn"), name="stem.relu")
    else:
        raise DagnetError(f"{name}: stem must be 'cifar' (one 3x3 conv) or 'imagenet' (7x7 "
                          f"stride-2 conv and max pool), got {stem!r}")
    for s, (count, channels) in enumerate(zip(stages, widths), start=1):
        for b in range(1, count + 1):
            stride = 2 if b == 1 and s > 1 else 1
            h = block(g, h, f"stage{s}.block{b}", channels, stride, weights)
    h = g.global_avg_pool(h, name="pool")
    scores = g.affine(h, num_classes, name="scores", **weights)
    g.softmax_cross_entropy(scores, y)
    return g


def _widths(name: str, base, width: float) -> list[int]:
    if not width > 0:
        raise DagnetError(f"{name}: width must be > 0 (1.0 is the published network), got {width}")
    return [max(1, round(c * width)) for c in base]


def resnet20(input_shape=CIFAR, num_classes: int = 10, width: float = 1.0, init: str = "he",
             weight_scale: float | None = None) -> Graph:
    """The CIFAR ResNet-20 (He et al. 2015, section 4.2): a 3x3 conv stem, 3 stages of 3 basic
    blocks at 16/32/64 channels (stages 2 and 3 halve H, W; projection skips), global average
    pooling, affine. `width` multiplies every channel count. 273,258 params at the defaults.
    x: (N, 3, 32, 32) -> stem.relu (N, 16, 32, 32) -> stage2.block3.relu2 (N, 32, 16, 16)
    -> stage3.block3.relu2 (N, 64, 8, 8) -> pool (N, 64) -> scores (N, num_classes)."""
    return _resnet("resnet20", input_shape, num_classes, (3, 3, 3),
                   _widths("resnet20", (16, 32, 64), width), _basic_block, "cifar", init,
                   weight_scale)


def resnet18(input_shape=CIFAR, num_classes: int = 10, stem: str = "cifar", width: float = 1.0,
             init: str = "he", weight_scale: float | None = None) -> Graph:
    """ResNet-18: 4 stages of 2 basic blocks at 64/128/256/512 channels, global average pooling,
    affine. stem "cifar" (default): one 3x3 conv, for 32x32 images (the common CIFAR form);
    "imagenet": 7x7 stride-2 conv and 3x3 stride-2 max pool, for 224x224 (torchvision's).
    x: (N, 3, 32, 32) -> stem.relu (N, 64, 32, 32) -> stage2.block2.relu2 (N, 128, 16, 16)
    -> stage4.block2.relu2 (N, 512, 4, 4) -> pool (N, 512) -> scores (N, num_classes)."""
    return _resnet("resnet18", input_shape, num_classes, (2, 2, 2, 2),
                   _widths("resnet18", (64, 128, 256, 512), width), _basic_block, stem, init,
                   weight_scale)


def resnet50(input_shape=IMAGENET, num_classes: int = 1000, width: float = 1.0,
             init: str = "he", weight_scale: float | None = None) -> Graph:
    """ResNet-50 for ImageNet (torchvision's v1.5): 7x7 stride-2 conv and max pool, 4 stages of
    3/4/6/3 bottleneck blocks at 64/128/256/512 inner channels (4x that out), global average
    pooling, affine. `width` multiplies every channel count (tests run it narrow). 25,583,592
    params at the defaults (torchvision's 25,557,032 plus the conv biases).
    x: (N, 3, 224, 224) -> stem.pool (N, 64, 56, 56) -> stage1.block3.relu3 (N, 256, 56, 56)
    -> stage4.block3.relu3 (N, 2048, 7, 7) -> pool (N, 2048) -> scores (N, num_classes)."""
    return _resnet("resnet50", input_shape, num_classes, (3, 4, 6, 3),
                   _widths("resnet50", (64, 128, 256, 512), width), _bottleneck, "imagenet",
                   init, weight_scale)
