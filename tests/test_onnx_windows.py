"""ONNX import and export of the window and resampling ops (grouped, dilated and padded
convs, transposed convs, pools with ceil_mode and count_include_pad, 1-D forms, Resize,
Upsample, DepthToSpace, SpaceToDepth): each against onnxruntime, and models torch exports."""
import contextlib
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from dagnet import Graph  # noqa: E402
from dagnet.gradcheck import norm_error  # noqa: E402
from dagnet.onnx import OnnxError, export, load  # noqa: E402
from onnx import helper  # noqa: E402
from tests.test_onnx import (TOL, arr, check_against_ort, float_feeds, make_model,  # noqa: E402
                             randomized_plan, roundtrip, run_dagnet, run_ort)

mk = helper.make_node


def test_import_convs_and_pools():
    nodes = [
        mk("Conv", ["x", "Wd"], ["dw"], group=4, auto_pad="SAME_LOWER", strides=[2, 2]),
        mk("Conv", ["dw", "Wg", "Bg"], ["gc"], group=2, dilations=[2, 1], pads=[0, 1, 2, 1]),
        mk("ConvTranspose", ["gc", "Wt", "Bt"], ["up"], strides=[2, 2], pads=[1, 0, 1, 1],
           output_padding=[1, 0], dilations=[1, 2]),
        mk("ConvTranspose", ["gc", "Ws"], ["same"], strides=[2, 2], auto_pad="SAME_UPPER"),
        mk("ConvTranspose", ["gc", "Ws"], ["shaped"], strides=[3, 2], output_shape=[11, 10]),
        mk("MaxPool", ["up"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
           dilations=[1, 2], ceil_mode=1),
        mk("AveragePool", ["up"], ["ap"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
           ceil_mode=1),
        mk("AveragePool", ["up"], ["ap1"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
           count_include_pad=1),
        mk("GlobalMaxPool", ["mp"], ["gmp"]),
    ]
    inits = {"Wd": arr(4, 1, 3, 3), "Wg": arr(6, 2, 3, 3, seed=1), "Bg": arr(6, seed=2),
             "Wt": arr(6, 2, 3, 3, seed=3), "Bt": arr(2, seed=4), "Ws": arr(6, 3, 3, 3, seed=5)}
    outputs = {"gmp": ["N", 2, 1, 1], "ap": None, "ap1": None, "same": None, "shaped": None}
    model = make_model(nodes, {"x": ["N", 4, 11, 10]}, outputs, inits, opset=17, check=False)
    m = check_against_ort(model)
    g = m.graph
    assert g.node("dw").attrs == {"stride": 2, "pad": [1, 1, 1, 0], "groups": 4}  # SAME_LOWER
    assert g.node("gc").attrs == {"stride": 1, "pad": [0, 1, 2, 1], "dilation": [2, 1],
                                  "groups": 2}
    assert g.node("up").op == "conv_transpose" and g.node("up").attrs["output_padding"] == [1, 0]
    assert g.node("mp").attrs == {"size": 3, "stride": 2, "pad": 1, "dilation": [1, 2],
                                  "ceil_mode": True}
    assert g.node("ap").attrs["count_include_pad"] is False  # ONNX's default, with padding
    assert "count_include_pad" not in g.node("ap1").attrs    # dagnet's default
    assert g.node("gmp").op == "global_max_pool"


def test_import_1d_windows():
    nodes = [mk("Conv", ["x", "W", "B"], ["c"], pads=[1, 2], dilations=[2], group=2),
             mk("MaxPool", ["c"], ["mp"], kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1),
             mk("AveragePool", ["c"], ["ap"], kernel_shape=[2], strides=[2], auto_pad="SAME_UPPER"),
             mk("Conv", ["ap", "W1"], ["y"], strides=[2], auto_pad="VALID")]
    inits = {"W": arr(4, 2, 3), "B": arr(4, seed=1), "W1": arr(3, 4, 2, seed=2)}
    m = check_against_ort(make_model(nodes, {"x": ["N", 4, 17]}, {"mp": None, "y": None}, inits,
                                     check=False))
    assert [m.graph.node(n).op for n in ("c", "mp", "ap", "y")] == \
        ["conv1d", "max_pool1d", "avg_pool1d", "conv1d"]


@pytest.mark.parametrize("opset,attrs,inputs", [
    (18, {"mode": "linear"}, {"scales": [1, 1, 2, 1.5]}),
    (13, {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
     {"sizes": [3, 3, 7, 9]}),
    (13, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
          "nearest_mode": "floor"}, {"scales": [1, 1, 3, 2]}),
    (13, {"mode": "nearest", "nearest_mode": "round_prefer_ceil"}, {"sizes": [3, 3, 4, 11]}),
    (18, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel", "axes": [2, 3]},
     {"sizes": [1, 5]}),
    (19, {"mode": "nearest", "axes": [3, 2]}, {"scales": [0.5, 2]}),
    (18, {"mode": "linear", "antialias": 1}, {"scales": [1, 1, 2, 2]}),  # growing: no filter
])
def test_import_resize(opset, attrs, inputs):
    kind = next(iter(inputs))
    value = np.array(inputs[kind], np.float32 if kind == "scales" else np.int64)
    node = mk("Resize", ["x", "", "v"] if kind == "scales" else ["x", "", "", "v"], ["y"],
              **attrs)
    m = check_against_ort(make_model([node], {"x": ["N", 3, 6, 8]}, {"y": None}, {"v": value},
                                     opset=opset, check=False))
    assert m.graph.node("y").op == "resize"


@pytest.mark.parametrize("op,opset", [("Upsample", 7), ("Upsample", 9), ("Resize", 10)])
@pytest.mark.parametrize("mode,scales", [("nearest", [1, 1, 2, 1.5]), ("linear", [1, 1, 2, 3]),
                                         ("nearest", [1, 1, 0.5, 0.6])])
def test_import_upsample_and_resize10(op, opset, mode, scales):
    if op == "Upsample" and min(scales) < 1:
        pytest.skip("onnxruntime's Upsample only grows")
    attr = {"scales": [float(s) for s in scales]} if opset < 9 else {}
    node = mk(op, ["x"] if attr else ["x", "s"], ["y"], mode=mode, **attr)
    inits = {} if attr else {"s": np.array(scales, np.float32)}
    model = make_model([node], {"x": ["N", 2, 5, 6]}, {"y": None}, inits, opset=opset,
                       check=False)
    m = check_against_ort(model)
    assert m.graph.node("y").attrs["coordinates"] == "asymmetric"


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_import_depth_to_space_and_back(mode):
    nodes = [mk("DepthToSpace", ["x"], ["d"], blocksize=2, mode=mode),
             mk("SpaceToDepth", ["d"], ["y"], blocksize=2)]
    m = check_against_ort(make_model(nodes, {"x": ["N", 8, 3, 4]}, {"d": None, "y": None},
                                     check=False))
    assert m.graph.node("d").attrs == {"block": 2, "mode": mode}


def test_export_space_to_depth_crd_as_reshapes(tmp_path):
    """ONNX's SpaceToDepth has no mode: PyTorch's pixel_unshuffle order is written as
    Reshape, Transpose, Reshape, which onnxruntime runs to the same numbers."""
    g = Graph("unshuffle")
    g.space_to_depth(g.input("x", (3, 4, 6)), 2, mode="CRD", name="y")
    model = export(randomized_plan(g), tmp_path / "m.onnx")
    assert [n.op_type for n in model.graph.node] == ["Reshape", "Transpose", "Reshape"]
    feeds = float_feeds(g)
    (got,), (want,) = run_ort(model, feeds), run_dagnet(g, {}, {}, feeds)
    assert norm_error(got, want) < TOL


def test_export_needs_the_opset_of_the_attributes(tmp_path):
    g = Graph("sized")
    x = g.input("x", (2, 5, 6))
    g.outputs = [g.resize(x, size=(7, 9), mode="bilinear", name="r"),
                 g.avg_pool2d(x, 2, stride=1, dilation=2, name="a")]
    with pytest.raises(OnnxError, match=r"r: resize with a size .* needs opset 18 or newer; "
                                        r"export with opset=18"):
        export(randomized_plan(g), tmp_path / "m.onnx", opset=17)
    with pytest.raises(OnnxError, match=r"a: AveragePool with dilations needs opset 19"):
        export(randomized_plan(g), tmp_path / "m.onnx", opset=18)
    model = roundtrip(g, tmp_path, opset=19)
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    assert helper.get_attribute_value(resize.attribute[0]) == [2, 3]  # axes: the batch is free


def torch_windows_model(torch):
    nn = torch.nn

    class Net(nn.Module):
        """Depthwise-separable convs (MobileNet), a dilated conv, a transposed conv, ceil-mode
        and count_include_pad=False pools, upsampling and a pixel shuffle."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU())
            self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False),
                                    nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 1))
            self.dil = nn.Conv2d(16, 8, 3, padding=2, dilation=2, groups=2)
            self.up = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
            self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
            self.avg = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
            self.shuffle = nn.PixelShuffle(2)
            self.fc = nn.Linear(2 * 40 * 40, 10)

        def forward(self, x):
            h = self.up(self.dil(self.dw(self.stem(x))))                      # (8, 18, 18)
            h = self.pool(h) + self.avg(h)                                    # (8, 10, 10)
            h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")  # (8, 20, 20)
            return self.fc(torch.flatten(self.shuffle(h), 1))                 # (2, 40, 40)

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv1d(4, 6, 5, padding=2, dilation=1, groups=2)
            self.p = nn.MaxPool1d(3, 2, 1, ceil_mode=True)

        def forward(self, x):
            return self.p(torch.relu(self.c(x)))

    return {"windows": (Net, (3, 18, 18)), "seq": (Seq, (4, 19))}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["windows", "seq"])
def test_torch_export_imports_with_equal_forward(name, exporter, tmp_path):
    torch = pytest.importorskip("torch")
    make, shape = torch_windows_model(torch)[name]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(2, *shape)
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"],
                              dynamic_shapes=({0: torch.export.Dim("N")},))
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "N"}})
    m = load(path)
    xs = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    (got,) = run_dagnet(m.graph, m.params, m.state, {"x": xs})
    with torch.no_grad():
        want = model(torch.from_numpy(xs)).numpy()
    assert norm_error(got, want) < TOL
