"""A bound batch-1 split conv (direct_split.pxi SplitConv) copies its input into the interiors
of planes of its own, their borders written once: bitwise forward's numbers on every call."""
import numpy as np
import pytest

from dagnet.ops import direct
from tests.runtime.test_program import SHAPES, _bound, _epilogue

pytestmark = pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES + [((1, 16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1))])
def test_split_conv_fills_the_interiors_anew_on_every_call(x_shape, w_shape, stride, pad, dtype):
    # its planes' borders are written once: a call after one with NaN and inf everywhere (the
    # 16 x 28 x 28 input is large enough for the fill to be shared by the threads) gives
    # forward's numbers exactly
    rng = np.random.default_rng(10)
    x_shape = (1, *x_shape[1:])
    w, b = (rng.standard_normal(s).astype(dtype) for s in (w_shape, w_shape[:1]))
    for threads in (2, 3):
        conv, out = _bound(x_shape, w, b, stride, pad, False, True, None, threads=threads)
        for k in range(3):
            conv(np.full(x_shape, (np.nan, np.inf, -np.inf)[k], dtype), None)
            x = np.random.default_rng(k).standard_normal(x_shape).astype(dtype)
            conv(x, None)
            np.testing.assert_array_equal(out, _epilogue(x, w, b, stride, pad, None, True, threads=1))
