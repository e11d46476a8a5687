"""MobileNet-v2 (Sandler et al. 2018): depthwise-separable inverted residual blocks.

Each block widens its input with a 1x1 conv (t times, the expansion), filters every channel
on its own with a 3x3 depthwise conv (groups = channels; it carries the block's stride),
and narrows back with a linear 1x1 conv (no activation: the bottleneck stays linear). Where
the block keeps shape (stride 1, same channels) its input is added back. Activations are
relu6, min(max(x, 0), 6): a clip node, exported to ONNX as Clip(0, 6) as PyTorch does.

Channel counts follow torchvision: each is width * the published count rounded to a multiple
of 8 (never down by more than 10%), the expansion's width is round(t * in_channels), and the
last conv keeps its 1280 channels below width 1 (torchvision's max(1.0, width)). Node names
are dotted, stage by stage (`stage3.block2.dw`), so summaries and diagrams fold the blocks.
Convs keep their bias (dagnet's conv always has one; the batchnorm after it cancels it), so
the counts are torchvision's plus one bias per conv filter.
"""
from __future__ import annotations

from dagnet.errors import DagnetError
from dagnet.graph import Graph, Node
from dagnet.models.zoo import strided

IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)

#: (expansion t, channels c, blocks n, first stride s) per stage, the paper's table 2
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
STEM, LAST = 32, 1280


def divisible(v: float, divisor: int = 8) -> int:
    """v rounded to the nearest multiple of `divisor` (at least divisor), never down by more
    than 10% (torchvision's _make_divisible)."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


def _conv_bn(g: Graph, x: Node, name: str, filters: int, size: int, stride: int, groups: int,
             relu6: bool, weights: dict) -> Node:
    """conv (pad keeps the size at stride 1) - batchnorm - (relu6), named `name`, `name`_bn,
    `name`_relu; a name ending in a dot (`stem.`) gives `stem.conv`, `stem.bn`, `stem.relu`."""
    names = [name + k for k in ("conv", "bn", "relu")] if name.endswith(".") else \
        [name, f"{name}_bn", f"{name}_relu"]
    pad = (size - 1) // 2
    extra = {"groups": groups} if groups > 1 else {}
    h = g.conv2d(x, filters, size, pad=pad, name=names[0], **strided(g, x, size, stride, pad),
                 **extra, **weights)
    h = g.batchnorm(h, name=names[1])
    return g.clip(h, min=0.0, max=6.0, name=names[2]) if relu6 else h


def _inverted_residual(g: Graph, x: Node, name: str, out: int, expansion: int, stride: int,
                       weights: dict) -> Node:
    """1x1 expand - relu6 (left out at t = 1), 3x3 depthwise (the stride) - relu6, 1x1
    project (linear), each with batchnorm; + input where the shape stays:
    (N, C, H, W) -> (N, out, H / stride, W / stride)."""
    channels = g.shape_of(x)[0]
    hidden = int(round(channels * expansion))
    h = x
    if expansion != 1:
        h = _conv_bn(g, h, f"{name}.expand", hidden, 1, 1, 1, True, weights)
    h = _conv_bn(g, h, f"{name}.dw", hidden, 3, stride, hidden, True, weights)
    h = _conv_bn(g, h, f"{name}.project", out, 1, 1, 1, False, weights)
    if stride == 1 and channels == out:
        h = g.add(h, x, name=f"{name}.add")
    return h


def mobilenet_v2(input_shape=CIFAR, num_classes: int = 10, width: float = 1.0,
                 stem: str = "cifar", dropout: float = 0.2, init: str = "he",
                 weight_scale: float | None = None) -> Graph:
    """MobileNet-v2 as torchvision's: a 3x3 conv stem (32 channels), 7 stages of 17 inverted
    residual blocks (expansion 6 but the first stage's 1; 16 to 320 channels), a 1x1 conv to
    1280, each conv with batchnorm and relu6 but the blocks' last; global average pooling,
    dropout and `scores`. stem="cifar" (the default, for 28x28 and 32x32 images) gives the
    stem stride 1, total stride 16; stem="imagenet" the published stride 2 (total 32).
    `width` multiplies every channel count (torchvision's width_mult). 2,253,738 params at
    the defaults; 3,521,928 at 1000 classes (torchvision's mobilenet_v2() 3,504,872 plus
    17,056 conv biases).
    x: (N, 3, 32, 32) -> stem.conv (N, 32, 32, 32) -> stage2.block2.add (N, 24, 16, 16)
    -> stage7.block1.project_bn (N, 320, 2, 2) -> head.relu (N, 1280, 2, 2) -> pool (N, 1280)
    -> scores (N, num_classes)."""
    if not width > 0:
        raise DagnetError(f"mobilenet_v2: width must be > 0 (1.0 is the published network), "
                          f"got {width}")
    if stem not in ("cifar", "imagenet"):
        raise DagnetError(f"mobilenet_v2: stem must be 'cifar' (stride 1, for 32x32 images) or "
                          f"'imagenet' (stride 2, for 224x224), got {stem!r}")
    weights = {"init": init, "weight_scale": weight_scale}
    g = Graph("mobilenet_v2")
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    h = _conv_bn(g, x, "stem.", divisible(STEM * width), 3, 2 if stem == "imagenet" else 1, 1,
                 True, weights)
    for s, (t, c, n, stride) in enumerate(STAGES, start=1):
        for b in range(1, n + 1):
            h = _inverted_residual(g, h, f"stage{s}.block{b}", divisible(c * width), t,
                                   stride if b == 1 else 1, weights)
    h = _conv_bn(g, h, "head.", divisible(LAST * max(1.0, width)), 1, 1, 1, True, weights)
    h = g.global_avg_pool(h, name="pool")
    if dropout:
        h = g.dropout(h, p=dropout, name="drop")
    scores = g.affine(h, num_classes, name="scores", **weights)
    g.softmax_cross_entropy(scores, y)
    return g
