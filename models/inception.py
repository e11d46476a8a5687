"""GoogLeNet (Inception v1, Szegedy et al. 2014) for ImageNet, without the auxiliary heads.

An Inception module runs four branches side by side on its input and concatenates them along
channels: a 1x1 conv; a 1x1 reduce then a 3x3 conv; a 1x1 reduce then a larger conv; a 3x3
stride-1 max pool then a 1x1 projection. Nine modules in three stages (3a-b, 4a-e, 5a-b), 3x3
stride-2 max pools (ceil_mode, as Caffe and torchvision count windows) between them.

Two forms (variant=):
- "torchvision" (the default): every conv followed by batchnorm (eps 1e-3) and relu, no LRN,
  the third branch's conv 3x3 (torchvision's kept bug, pytorch/vision#906), dropout 0.2.
  Convs keep their bias (dagnet's conv always has one; the batchnorm after it cancels it), so
  the count is torchvision's googlenet(aux_logits=False) plus one bias per conv filter.
- "original": the paper's and Caffe's bvlc_googlenet: convs with bias and relu, no
  batchnorm, LRN (5 channels, alpha 1e-4, beta 0.75) after the first pool and after the
  third conv, the third branch's conv 5x5, dropout 0.4.

Node names are dotted: `inception4.b.branch2.conv` (stage 4, module 4b), so summaries and
diagrams fold the modules of a stage (they differ only in their channel counts).
"""
from __future__ import annotations

from dagnet.errors import DagnetError
from dagnet.graph import Graph, Node
from dagnet.models.zoo import strided

IMAGENET = (3, 224, 224)
VARIANTS = ("torchvision", "original")

#: per stage, per module: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection), table 1
STAGES = {
    3: {"a": (64, 96, 128, 16, 32, 32), "b": (128, 128, 192, 32, 96, 64)},
    4: {"a": (192, 96, 208, 16, 48, 64), "b": (160, 112, 224, 24, 64, 64),
        "c": (128, 128, 256, 24, 64, 64), "d": (112, 144, 288, 32, 64, 64),
        "e": (256, 160, 320, 32, 128, 128)},
    5: {"a": (256, 160, 320, 32, 128, 128), "b": (384, 192, 384, 48, 128, 128)},
}
STEM = (64, 64, 192)  # conv1 7x7/2, conv2 1x1, conv3 3x3


class _Convs:
    """conv - (batchnorm) - relu units of one variant: `name`, `name`_bn, `name`_relu."""

    def __init__(self, g: Graph, batchnorm: bool, width: float, weights: dict):
        self.g, self.batchnorm, self.width, self.weights = g, batchnorm, width, weights

    def __call__(self, x: Node, name: str, filters: int, size: int, **window) -> Node:
        filters = max(1, round(filters * self.width))
        h = self.g.conv2d(x, filters, size, pad=window.pop("pad", (size - 1) // 2), name=name,
                          **window, **self.weights)
        if self.batchnorm:
            h = self.g.batchnorm(h, eps=1e-3, name=f"{name}_bn")
        return self.g.relu(h, name=f"{name}_relu")


def _inception(conv: _Convs, x: Node, name: str, widths: tuple, large: int) -> Node:
    """The four branches, concatenated: (N, C, H, W) -> (N, 1x1 + 3x3 + 5x5 + pool, H, W)."""
    g = conv.g
    c1, r3, c3, r5, c5, proj = widths
    b1 = conv(x, f"{name}.branch1.conv", c1, 1)
    b2 = conv(conv(x, f"{name}.branch2.reduce", r3, 1), f"{name}.branch2.conv", c3, 3)
    b3 = conv(conv(x, f"{name}.branch3.reduce", r5, 1), f"{name}.branch3.conv", c5, large)
    pooled = g.max_pool2d(x, size=3, stride=1, pad=1, name=f"{name}.branch4.pool")
    b4 = conv(pooled, f"{name}.branch4.conv", proj, 1)
    return g.concat(b1, b2, b3, b4, name=f"{name}.concat")


def _pool(g: Graph, x: Node, name: str, size: int = 3) -> Node:
    """A stride-2 max pool keeping a last partial window (ceil_mode)."""
    return g.max_pool2d(x, size=size, stride=2, ceil_mode=True, name=name)


def smallest_input(original: bool) -> int:
    """The smallest H, W whose feature maps still fit every stride-2 pool's window."""
    def fits(n: int) -> bool:
        m = (n - 1) // 2 + 1  # after the 7x7 stride-2 conv
        for k in (3, 3, 3, 3 if original else 2):
            if m < k:
                return False
            m = -(-(m - k) // 2) + 1  # ceil_mode
        return True
    return next(n for n in range(1, 1024) if fits(n))


def googlenet(input_shape=IMAGENET, num_classes: int = 1000, variant: str = "torchvision",
              width: float = 1.0, init: str = "he", weight_scale: float | None = None) -> Graph:
    """GoogLeNet without auxiliary heads: a stem (7x7/2 conv, pool, 1x1 and 3x3 convs, pool),
    Inception modules 3a-b, pool, 4a-e, pool (2x2), 5a-b, global average pooling, dropout and
    `scores`; variant "torchvision" (batchnorm, the default) or "original" (LRN, 5x5 branch).
    6,632,184 params at the defaults: torchvision's googlenet(aux_logits=False) 6,624,904
    plus 7,280 conv biases; the original variant 6,998,552.
    `width` multiplies every conv's channels (tests run it narrow).
    x: (N, 3, 224, 224) -> stem.conv1 (N, 64, 112, 112) -> stem.pool2 (N, 192, 28, 28)
    -> inception3.b.concat (N, 480, 28, 28) -> inception4.e.concat (N, 832, 14, 14)
    -> inception5.b.concat (N, 1024, 7, 7) -> pool (N, 1024) -> scores (N, num_classes)."""
    if variant not in VARIANTS:
        raise DagnetError(f"googlenet: variant must be 'torchvision' (batchnorm) or 'original' "
                          f"(the paper's LRN and 5x5 convs), got {variant!r}")
    if not width > 0:
        raise DagnetError(f"googlenet: width must be > 0 (1.0 is the published network), "
                          f"got {width}")
    original = variant == "original"
    need = smallest_input(original)
    if min(input_shape[1:]) < need:
        raise DagnetError(f"googlenet: input H, W must be at least {need} (the {variant} "
                          f"variant's pools), got {tuple(input_shape)}; pass a larger "
                          f"input_shape or resize the images")
    g = Graph("googlenet")
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    conv = _Convs(g, not original, width, {"init": init, "weight_scale": weight_scale})
    h = conv(x, "stem.conv1", STEM[0], 7, pad=3, **strided(g, x, 7, 2, 3))
    h = _pool(g, h, "stem.pool1")
    if original:
        h = g.lrn(h, size=5, name="stem.norm1")
    h = conv(conv(h, "stem.conv2", STEM[1], 1), "stem.conv3", STEM[2], 3)
    if original:
        h = g.lrn(h, size=5, name="stem.norm2")
    h = _pool(g, h, "stem.pool2")
    for stage, modules in STAGES.items():
        if stage > 3:
            h = _pool(g, h, f"pool{stage - 1}", 3 if stage == 4 or original else 2)
        for module, widths in modules.items():
            h = _inception(conv, h, f"inception{stage}.{module}", widths, 5 if original else 3)
    h = g.global_avg_pool(h, name="pool")
    h = g.dropout(h, p=0.4 if original else 0.2, name="drop")
    scores = g.affine(h, num_classes, name="scores", init=init, weight_scale=weight_scale)
    g.softmax_cross_entropy(scores, y)
    return g
