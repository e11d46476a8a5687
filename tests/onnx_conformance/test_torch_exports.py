"""The classic families as torch's TorchScript exporter writes them (issue 17 item 1), imported
and run at another batch size than exported, equal to torch: ResNet's basic blocks, VGG with
and without batchnorm (x.view(x.size(0), -1): a Shape chain), SqueezeNet's fire modules
(Concat, a classifier conv, torch.flatten), a DenseNet's concatenating layers; torch's own
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


# (family, input size, opsets): torch writes AvgPool2d as Pad + AveragePool before opset 11
FAMILIES = {"resnet": (ResNet, 32, (9, 17)), "vgg": (lambda: VGG(False), 16, (9, 17)),
            "vgg_bn": (lambda: VGG(True), 16, (13,)), "squeezenet": (SqueezeNet, 33, (9, 17)),
            "densenet": (DenseNet, 16, (13,))}
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
