"""resize, depth_to_space and space_to_depth against PyTorch (F.interpolate, pixel_shuffle,
pixel_unshuffle): outputs and gradients, norm-wise within 1e-5 in float32 and 1e-10 in float64.

PyTorch's modes in ONNX Resize's terms: nearest = asymmetric + floor, nearest-exact =
half_pixel + round_prefer_ceil, bilinear = half_pixel (align_corners=False) or align_corners."""
import numpy as np
import pytest

from tests.ops.test_torch_parity_conv_pool import DTYPES, compare

torch = pytest.importorskip("torch")
F = torch.nn.functional

TORCH_MODES = {  # torch (mode, align_corners) -> dagnet attrs
    ("nearest", None): {"mode": "nearest", "coordinates": "asymmetric", "nearest_mode": "floor"},
    ("nearest-exact", None): {"mode": "nearest", "coordinates": "half_pixel",
                              "nearest_mode": "round_prefer_ceil"},
    ("bilinear", False): {"mode": "bilinear", "coordinates": "half_pixel"},
    ("bilinear", True): {"mode": "bilinear", "coordinates": "align_corners"},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("torch_mode", list(TORCH_MODES))
@pytest.mark.parametrize("how", [{"scale": 2}, {"scale": (3, 2)}, {"scale": 0.5},
                                 {"size": (7, 5)}, {"size": (3, 13)}, {"size": (1, 4)}])
def test_resize_matches_interpolate(how, torch_mode, dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 8))
    mode, align = torch_mode
    kw = {} if align is None else {"align_corners": align}
    if "scale" in how:
        s = how["scale"]
        kw["scale_factor"] = s if np.isscalar(s) else tuple(float(v) for v in s)
    else:
        kw["size"] = how["size"]
    compare("resize", [x], {**how, **TORCH_MODES[torch_mode]},
            lambda t: F.interpolate(t, mode=mode, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [2, 3])
def test_pixel_shuffle_is_depth_to_space_crd(block, dtype):
    x = np.random.default_rng(1).standard_normal((2, 2 * block * block, 3, 4))
    compare("depth_to_space", [x], {"block": block, "mode": "CRD"},
            lambda t: F.pixel_shuffle(t, block), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [2, 3])
def test_pixel_unshuffle_is_space_to_depth_crd(block, dtype):
    x = np.random.default_rng(2).standard_normal((2, 3, 2 * block, 3 * block))
    compare("space_to_depth", [x], {"block": block, "mode": "CRD"},
            lambda t: F.pixel_unshuffle(t, block), dtype)
