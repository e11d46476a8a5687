"""Fusion patterns, kept as data. A pattern is a chain of op names; each value inside the chain
feeds the next op's first input. The fuse pass tries them longest first. The fused op that runs
a pattern is registered under the chain's name joined by '+' (see dagnet/ops/fused.py)."""
from __future__ import annotations

from dataclasses import dataclass

MODES = ("train", "eval")


@dataclass(frozen=True)
class Pattern:
    ops: tuple
    #: modes in which the pattern may fire
    modes: tuple = MODES
    #: why the other modes forbid it (shown in near-miss reports)
    mode_reason: str = ""

    @property
    def name(self) -> str:
        return "+".join(self.ops)

    @property
    def fused_op(self) -> str:
        return self.name


PATTERNS = (
    Pattern(("conv2d", "batchnorm", "relu", "max_pool2d")),
    Pattern(("conv2d", "batchnorm", "relu")),
    Pattern(("conv2d", "relu", "max_pool2d")),
    Pattern(("affine", "batchnorm", "relu")),
    Pattern(("conv2d", "relu")),
    Pattern(("affine", "relu")),
    # Folding batchnorm into the conv's weights is exact only with frozen statistics.
    Pattern(("conv2d", "batchnorm"), modes=("eval",),
            mode_reason="batchnorm folds into the conv only in eval mode; in train mode its "
                        "batch statistics change every step"),
)
