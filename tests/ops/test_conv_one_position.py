"""A conv whose output has one position (1x1), as ResNet-50's last stage has on 32x32 images:
the batch GEMM's columns (K, N, 1) are a non-contiguous view whose size-1 axis numpy exports
with any stride; im2col and col2im must take them (they raised 'must be contiguous')."""
import numpy as np
import pytest

import dagnet
from dagnet import Graph
from dagnet.gradcheck import gradcheck_plan


@pytest.mark.parametrize("hw,size,pad,stride", [(1, 1, 0, 1), (1, 3, 1, 1), (2, 3, 1, 2),
                                                (2, 1, 0, 2)])
def test_conv_with_one_output_position_runs_and_its_gradient_checks(hw, size, pad, stride):
    g = Graph("one_position")
    h = g.conv2d(g.input("x", (3, hw, hw)), 4, size, pad=pad, stride=stride, floor=True, name="c")
    g.softmax_cross_entropy(g.affine(h, 3, name="fc"), g.input("y", (), dtype="int64"))
    assert g.shape_of("c") == (4, 1, 1)
    plan = dagnet.compile(g, dtype="float64")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((5, 3, hw, hw)), "y": rng.integers(0, 3, 5)}
    assert max(gradcheck_plan(plan, feeds).values()) < 1e-7
