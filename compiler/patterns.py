"""Fusion patterns, read off the registered fused ops (dagnet/ops/fused.py): each fused op
declares its chain and the modes it may fire in, and is a pattern. A pattern is a chain of op
names; each value inside the chain feeds the next op's first input. The fuse pass tries them
longest first.

To add a pattern, register a FusedOp with its chain: nothing here changes. Chains of
elementwise ops that no pattern names are grouped by their ops' fusion kinds instead
(compiler/fuse.py) and run by the generic fused op (dagnet/ops/fused_elementwise.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from dagnet.ops import registered_ops
from dagnet.ops.fused_elementwise import GENERIC
from dagnet.ops.fusion import MODES, FusedOp


@dataclass(frozen=True)
class Pattern:
    ops: tuple
    #: modes in which the pattern may fire
    modes: tuple = MODES
    #: why the other modes forbid it (shown in near-miss reports)
    mode_reason: str = ""
    #: a chain the elementwise grouping found, run by the generic fused op (not a registered
    #: fused op of its own)
    generic: bool = False

    @property
    def name(self) -> str:
        return f"elementwise({'+'.join(self.ops)})" if self.generic else "+".join(self.ops)

    @property
    def fused_op(self) -> str:
        return GENERIC if self.generic else self.name


def patterns_from_registry() -> tuple:
    """One Pattern per registered fused op, longest chain first (then in registration order)."""
    fused = [op for op in registered_ops().values() if isinstance(op, FusedOp) and op.chain]
    return tuple(sorted((Pattern(op.chain, tuple(op.modes), op.mode_reason) for op in fused),
                        key=lambda p: -len(p.ops)))


PATTERNS = patterns_from_registry()
