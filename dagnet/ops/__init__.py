"""The op library: one module per op family; importing this package registers every op."""
from dagnet.ops.base import Op, get_op, register, registered_ops

# Importing the family modules registers their ops (explicit list: no star imports).
from dagnet.ops import (  # noqa: F401,E402
    activation,
    conv,
    conv_transpose,
    dense,
    dropout,
    elementwise,
    embedding,
    fused,
    fused_elementwise,
    gather,
    layout,
    linalg,
    loss,
    lrn,
    merge,
    norm,
    normalize,
    pad,
    pool,
    reduce,
    resample,
    shape,
    slicing,
    unary,
    window1d,
)

__all__ = ["Op", "get_op", "register", "registered_ops"]
