"""Workspace: what an op declares about the scratch its forward uses besides its output.

The memory pass reads it to count peaks and to give a buffer to the ops that build their scratch
in one (conv's im2col columns); the runtime then passes that buffer as `workspace=`.
"""
from __future__ import annotations

from typing import NamedTuple


class Workspace(NamedTuple):
    """Scratch elements per example (times the itemsize and the batch: bytes).

    elements: all scratch the forward allocates or builds (im2col columns, a dropout mask).
    saved: of which the backward cache keeps, so it lives until the step's backward.
    planned: of which the forward builds in the byte array it takes as `workspace=`, the memory
        plan's buffer; 0 for ops whose forward takes none.
    """

    elements: int = 0
    saved: int = 0
    planned: int = 0

    @classmethod
    def kept(cls, elements: int) -> "Workspace":
        """Scratch the backward cache keeps whole (pooling indices, batchnorm's normalised x)."""
        return cls(elements, elements, 0)


NONE = Workspace()
