"""The classic families as torch's TorchScript exporter writes them (issue 17 item 1), imported
and run at another batch size than exported, equal to torch: ResNet's basic blocks, VGG with
and without batchnorm (x.view(x.size(0), -1): a Shape chain), SqueezeNet's fire modules
(Concat, a classifier conv, torch.flatten), a DenseNet's concatenating layers, AlexNet (a
Flatten before the classifier), GoogLeNet's Inception modules (ceil_mode pools), MobileNet-v2
(depthwise convs, ReLU6 as Clip) and ShuffleNet-v2 (Split, channel shuffle as Reshape/Transpose/
Reshape, a mean over H and W); torch's own
constant folding on and off (off leaves the Linear weights' Transpose and the Shape chains to
the importer's folding)."""
import io

import numpy as np
import pytest

import dagnet
from dagnet.onnx import load

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
nn = torch.nn


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.short(x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.blocks = nn.Sequential(Basic(8, 8, 1), Basic(8, 16, 2))
        self.pool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class VGG(nn.Module):
    def __init__(self, bn):
        super().__init__()
        layers = []
        for cin, cout in [(3, 8), (8, 16)]:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), *([nn.BatchNorm2d(cout)] if bn else []),
                       nn.ReLU(True), nn.MaxPool2d(2)]
        self.features, self.avg = nn.Sequential(*layers), nn.AdaptiveAvgPool2d((4, 4))
        self.classifier = nn.Sequential(nn.Linear(16 * 16, 32), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(32, 10, bias=False))

    def forward(self, x):
        x = self.avg(self.features(x))
        return self.classifier(x.view(x.size(0), -1))


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.s = nn.Conv2d(cin, squeeze, 1)
        self.e1, self.e3 = nn.Conv2d(squeeze, expand, 1), nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.s(x))
        return torch.cat([torch.relu(self.e1(x)), torch.relu(self.e3(x))], 1)


class SqueezeNet(nn.Module):
    """torchvision's layout but ceil_mode=False (a partial window is tensor-conv's to import)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                                      Fire(16, 4, 8), Fire(16, 4, 8))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(16, 10, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class DenseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1)
        self.layers = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(8 + 4 * i), nn.ReLU(),
                                                  nn.Conv2d(8 + 4 * i, 4, 3, padding=1))
                                    for i in range(3))
        self.transition = nn.Sequential(nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 10, 1),
                                        nn.AvgPool2d(2))
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        x = self.conv0(x)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.transition(x)), (1, 1))
        return torch.softmax(self.fc(x.view(x.size(0), -1)), 1)


class AlexNet(nn.Module):
    """torchvision's AlexNet in small: 11x11 stride-4 stem, overlapping pools, no LRN (torch
    writes nn.LocalResponseNorm as a 3-D AveragePool chain, not as ONNX's LRN)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(16 * 3 * 3, 32), nn.ReLU(),
                                        nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()

        def cbr(a, b, k):
            return nn.Sequential(nn.Conv2d(a, b, k, padding=k // 2, bias=False), nn.BatchNorm2d(b, eps=1e-3), nn.ReLU())
        self.b1 = cbr(cin, c1, 1)
        self.b2 = nn.Sequential(cbr(cin, c3r, 1), cbr(c3r, c3, 3))
        self.b3 = nn.Sequential(cbr(cin, c5r, 1), cbr(c5r, c5, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), cbr(cin, pp, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet in small: batchnormed branches concatenated, ceil_mode pools."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8, eps=1e-3),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.i3a, self.i3b = Inception(8, 4, 4, 8, 2, 4, 4), Inception(20, 8, 8, 8, 4, 4, 4)
        self.pool, self.fc = nn.MaxPool2d(3, 2, ceil_mode=True), nn.Linear(24, 10)

    def forward(self, x):
        x = self.pool(self.i3b(self.i3a(self.stem(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.body(x) if self.use_skip else self.body(x)


class MobileNetV2(nn.Module):
    """MobileNet-v2 in small: depthwise inverted residuals, ReLU6 (Clip), linear bottlenecks."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 6), InvertedResidual(12, 12, 1, 6))
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(12, 10))

    def forward(self, x):
        return self.fc(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def channel_shuffle(x, groups):
    n, c, h, w = x.size()
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet-v2's unit: split the channels, a depthwise branch, concat, shuffle."""

    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.branch = nn.Sequential(
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
            nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h),
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU())

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((a, self.branch(b)), 1), 2)


class ShuffleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.units, self.fc = nn.Sequential(ShuffleUnit(8), ShuffleUnit(8)), nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.units(self.stem(x)).mean([2, 3]))


# (family, input size, opsets): torch writes AvgPool2d as Pad + AveragePool before opset 11
FAMILIES = {"resnet": (ResNet, 32, (9, 17)), "vgg": (lambda: VGG(False), 16, (9, 17)),
            "vgg_bn": (lambda: VGG(True), 16, (13,)), "squeezenet": (SqueezeNet, 33, (9, 17)),
            "densenet": (DenseNet, 16, (13,)), "alexnet": (AlexNet, 67, (9, 17)),
            "googlenet": (GoogLeNet, 32, (13, 17)), "mobilenet_v2": (MobileNetV2, 32, (13, 17)),
            "shufflenet_v2": (ShuffleNet, 16, (13, 17))}
CASES = [pytest.param(make, hw, opset, folding,
                      id=f"{name}-opset{opset}-{'folded' if folding else 'unfolded'}")
         for name, (make, hw, opsets) in FAMILIES.items()
         for opset in opsets for folding in (True, False)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("make, hw, opset, folding", CASES)
def test_a_classic_family_exported_by_torch_imports_and_equals_torch(make, hw, opset, folding):
    torch.manual_seed(0)
    net = make().eval()
    for m in net.modules():  # statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    buf = io.BytesIO()
    torch.onnx.export(net, torch.randn(2, 3, hw, hw), buf, opset_version=opset, dynamo=False,
                      do_constant_folding=folding, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    imported = load(onnx.load_from_string(buf.getvalue()))
    plan = dagnet.compile(imported.graph, mode="eval", params=imported.params,
                          state=imported.state)
    x = torch.randn(3, 3, hw, hw)
    with torch.no_grad():
        want = net(x).numpy()
    got = plan.forward({"x": x.numpy()}, mode="eval")[imported.graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
