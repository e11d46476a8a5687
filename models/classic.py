"""The classic ImageNet-era families: VGG, AlexNet (layer stacks, named as the sequential spec
form names them), SqueezeNet (fire modules: parallel 1x1 and 3x3 expands, concatenated) and a
small DenseNet (every layer's output concatenated to its input).

MobileNet-v2 and GoogLeNet have their own modules (models/mobilenet.py, models/inception.py).
"""
from __future__ import annotations

from collections.abc import Sequence

from dagnet.errors import DagnetError
from dagnet.graph import Graph, Node
from dagnet.models.zoo import _Stack, strided

IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)
POOL = "M"  # a 2x2 max pool in a VGG configuration
VGG11 = (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL)
VGG16 = (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
         512, 512, 512, POOL)


def _check_size(name: str, input_shape, pools: int) -> None:
    """An error naming the smallest input for `pools` halvings (instead of a shape error deep
    inside the stack)."""
    need = 2 ** pools
    if min(input_shape[1:]) < need:
        raise DagnetError(f"{name}: input H, W must be at least {need} ({pools} 2x2 pools), got "
                          f"{tuple(input_shape)}; pass a larger input_shape or resize the images")


def _scaled(name: str, widths, width: float) -> list:
    """Channel and unit counts times `width` (pools kept); width 1.0 is the published network."""
    if not width > 0:
        raise DagnetError(f"{name}: width must be > 0 (1.0 is the published network), got {width}")
    return [c if c == POOL else max(1, round(c * width)) for c in widths]


def _vgg(name: str, config, input_shape, num_classes: int, batchnorm: bool,
         hidden: Sequence[int], init: str, weight_scale) -> Graph:
    """[conv 3x3 - (bn) - relu] and 2x2 max pools as `config` lists them, then
    [affine - relu - dropout 0.5] per hidden width, then `scores`."""
    _check_size(name, input_shape, list(config).count(POOL))
    net = _Stack(name, input_shape, init, weight_scale)
    for c in config:
        if c == POOL:
            net.pool()
            continue
        net.conv(c, 3, pad=1)
        if batchnorm:
            net.bn()
        net.relu()
    for units in hidden:
        net.fc(units).relu().dropout(0.5)
    return net.classify(num_classes)


def vgg11(input_shape=CIFAR, num_classes: int = 10, batchnorm: bool = False,
          width: float = 1.0, init: str = "he", weight_scale: float | None = None) -> Graph:
    """VGG-11 (configuration A) for 32x32 images: 8 3x3 convs (64 to 512 channels, each with
    relu, and with batchnorm before it when batchnorm=True), 5 2x2 max pools, one affine
    layer on the 512 features (the common CIFAR form). 9,225,610 params (9,231,114 with bn).
    `width` multiplies every channel count.
    x: (N, 3, 32, 32) -> conv1 (N, 64, 32, 32) -> pool3 (N, 256, 4, 4)
    -> pool5 (N, 512, 1, 1) -> scores (N, num_classes)."""
    name = "vgg11_bn" if batchnorm else "vgg11"
    return _vgg(name, _scaled(name, VGG11, width), input_shape, num_classes, batchnorm, (), init,
                weight_scale)


def vgg11_bn(input_shape=CIFAR, num_classes: int = 10, width: float = 1.0, init: str = "he",
             weight_scale: float | None = None) -> Graph:
    """VGG-11 with batchnorm after each conv, before its relu (vgg11(batchnorm=True)).
    x: (N, 3, 32, 32) -> bn1 (N, 64, 32, 32) -> pool5 (N, 512, 1, 1) -> scores (N, num_classes)."""
    return vgg11(input_shape, num_classes, True, width, init, weight_scale)


def vgg16(input_shape=IMAGENET, num_classes: int = 1000, batchnorm: bool = False,
          width: float = 1.0, init: str = "he", weight_scale: float | None = None) -> Graph:
    """VGG-16 (configuration D) for ImageNet, as torchvision's: 13 3x3 convs with relu, 5 2x2
    max pools, then affine 4096 - relu - dropout twice and the classifier. 138,357,544 params.
    (torchvision's adaptive average pool to 7x7 is the identity at 224x224 and is left out.)
    `width` multiplies every channel and unit count (tests run it narrow).
    x: (N, 3, 224, 224) -> pool5 (N, 512, 7, 7) -> fc1 (N, 4096) -> fc2 (N, 4096)
    -> scores (N, num_classes)."""
    return _vgg("vgg16_bn" if batchnorm else "vgg16", _scaled("vgg16", VGG16, width),
                input_shape, num_classes, batchnorm, _scaled("vgg16", (4096, 4096), width), init,
                weight_scale)


def alexnet(input_shape=IMAGENET, num_classes: int = 1000, width: float = 1.0,
            init: str = "he", weight_scale: float | None = None) -> Graph:
    """AlexNet in torchvision's form (one tower: no groups, no LRN): convs 11x11/4 (64),
    5x5 (192), 3x3 (384, 256, 256), each with relu, 3x3 stride-2 max pools after the 1st, 2nd
    and 5th, then dropout - affine 4096 - relu twice and the classifier. 61,100,840 params.
    (torchvision's adaptive average pool to 6x6 is the identity at 224x224 and is left out.)
    `width` multiplies every channel and unit count; inputs must be at least 63x63.
    x: (N, 3, 224, 224) -> conv1 (N, 64, 55, 55) -> pool1 (N, 64, 27, 27)
    -> pool2 (N, 192, 13, 13) -> pool3 (N, 256, 6, 6) -> fc2 (N, 4096) -> scores (N, num_classes)."""
    c1, c2, c3, c4, fc = _scaled("alexnet", (64, 192, 384, 256, 4096), width)
    net = _Stack("alexnet", input_shape, init, weight_scale)
    net.conv(c1, 11, pad=2, stride=4).relu().pool(3, 2)
    net.conv(c2, 5, pad=2).relu().pool(3, 2)
    net.conv(c3, 3, pad=1).relu().conv(c4, 3, pad=1).relu().conv(c4, 3, pad=1).relu() \
        .pool(3, 2)
    net.dropout(0.5).fc(fc).relu().dropout(0.5).fc(fc).relu()
    return net.classify(num_classes)


def _fire(g: Graph, x: Node, name: str, squeeze: int, expand: int, weights: dict) -> Node:
    """SqueezeNet's fire module: a 1x1 squeeze conv, then 1x1 and 3x3 expand convs side by side
    (each with relu), concatenated along channels: (N, C, H, W) -> (N, 2 * expand, H, W)."""
    s = g.relu(g.conv2d(x, squeeze, 1, name=f"{name}.squeeze", **weights),
               name=f"{name}.squeeze_relu")
    e1 = g.relu(g.conv2d(s, expand, 1, name=f"{name}.expand1x1", **weights),
                name=f"{name}.expand1x1_relu")
    e3 = g.relu(g.conv2d(s, expand, 3, pad=1, name=f"{name}.expand3x3", **weights),
                name=f"{name}.expand3x3_relu")
    return g.concat(e1, e3, name=f"{name}.concat")


#: (squeeze, expand) of each fire module, and the pools between them (SqueezeNet 1.1's)
FIRES = ((16, 64), (16, 64), POOL, (32, 128), (32, 128), POOL, (48, 192), (48, 192),
         (64, 256), (64, 256))


def squeezenet(input_shape=CIFAR, num_classes: int = 10, init: str = "he",
               weight_scale: float | None = None) -> Graph:
    """SqueezeNet 1.1 for small images: a 3x3 conv stem (64, relu) and 2x2 max pool, 8 fire
    modules with 2x2 max pools after the 2nd and 4th, dropout 0.5, a 1x1 conv classifier
    with relu, and global average pooling as `scores` (no affine layer). 727,626 params.
    x: (N, 3, 32, 32) -> stem.pool (N, 64, 16, 16) -> fire3.concat (N, 256, 8, 8)
    -> fire9.concat (N, 512, 4, 4) -> classifier (N, num_classes, 4, 4)
    -> scores (N, num_classes)."""
    _check_size("squeezenet", input_shape, 3)
    weights = {"init": init, "weight_scale": weight_scale}
    g = Graph("squeezenet")
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    h = g.relu(g.conv2d(x, 64, 3, pad=1, name="stem.conv", **weights), name="stem.relu")
    h = g.max_pool2d(h, size=2, name="stem.pool", **strided(g, h, 2, 2))
    fire, pool = 2, 1  # fire modules count from 2, as in the paper (conv1 is the stem)
    for item in FIRES:
        if item == POOL:
            pool += 1
            h = g.max_pool2d(h, size=2, name=f"pool{pool}", **strided(g, h, 2, 2))
        else:
            h = _fire(g, h, f"fire{fire}", *item, weights)
            fire += 1
    h = g.dropout(h, p=0.5, name="drop")
    h = g.relu(g.conv2d(h, num_classes, 1, name="classifier", **weights), name="classifier_relu")
    g.softmax_cross_entropy(g.global_avg_pool(h, name="scores"), y)
    return g


def _dense_layer(g: Graph, x: Node, name: str, growth: int, weights: dict) -> Node:
    """batchnorm - relu - 3x3 conv (growth channels), concatenated to its input:
    (N, C, H, W) -> (N, C + growth, H, W)."""
    h = g.relu(g.batchnorm(x, name=f"{name}.bn"), name=f"{name}.relu")
    h = g.conv2d(h, growth, 3, pad=1, name=f"{name}.conv", **weights)
    return g.concat(x, h, name=f"{name}.concat")


def _transition(g: Graph, x: Node, name: str, weights: dict) -> Node:
    """batchnorm - relu - 1x1 conv halving the channels - 2x2 average pool."""
    channels = max(1, g.shape_of(x)[0] // 2)
    h = g.relu(g.batchnorm(x, name=f"{name}.bn"), name=f"{name}.relu")
    h = g.conv2d(h, channels, 1, name=f"{name}.conv", **weights)
    return g.avg_pool2d(h, size=2, name=f"{name}.pool", **strided(g, h, 2, 2))


def densenet_small(input_shape=CIFAR, num_classes: int = 10, blocks: Sequence[int] = (4, 4, 4),
                   growth: int = 12, init: str = "he",
                   weight_scale: float | None = None) -> Graph:
    """A small DenseNet (Huang et al. 2017, the CIFAR form without bottlenecks): a 3x3 conv stem
    (2 x growth channels), dense blocks of `blocks[i]` layers (bn - relu - 3x3 conv of `growth`
    channels, concatenated to the layer's input), transitions halving channels and H, W
    between blocks, then bn - relu - global average pooling - affine. 77,056 params.
    x: (N, 3, 32, 32) -> stem (N, 24, 32, 32) -> block1.layer4.concat (N, 72, 32, 32)
    -> trans1.pool (N, 36, 16, 16) -> block3.layer4.concat (N, 90, 8, 8) -> pool (N, 90)
    -> scores (N, num_classes)."""
    blocks = list(blocks)
    if not blocks or min(blocks) < 1 or growth < 1:
        raise DagnetError(f"densenet_small: need at least one block, each of >= 1 layers, and "
                          f"growth >= 1; got blocks={blocks}, growth={growth}")
    _check_size("densenet_small", input_shape, len(blocks) - 1)
    weights = {"init": init, "weight_scale": weight_scale}
    g = Graph("densenet_small")
    x = g.input("x", input_shape)
    y = g.input("y", (), dtype="int64")
    h = g.conv2d(x, 2 * growth, 3, pad=1, name="stem", **weights)
    for b, layers in enumerate(blocks, start=1):
        for i in range(1, layers + 1):
            h = _dense_layer(g, h, f"block{b}.layer{i}", growth, weights)
        if b < len(blocks):
            h = _transition(g, h, f"trans{b}", weights)
    h = g.relu(g.batchnorm(h, name="final.bn"), name="final.relu")
    scores = g.affine(g.global_avg_pool(h, name="pool"), num_classes, name="scores", **weights)
    g.softmax_cross_entropy(scores, y)
    return g
