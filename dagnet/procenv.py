"""Process settings dagnet makes when it loads: thread pools and the memory allocator.
`dagnet/__init__.py` imports this first, before numpy loads, because the thread pools read
their settings only when they load.

Thread pools, for a machine with few cores.
dagnet runs two thread pools side by side: OpenBLAS's (numpy's GEMMs) and libgomp's (the
Cython kernels: im2col, col2im, pooling). Each keeps its idle threads spinning after its work,
and on 2 cores a spinning thread of one pool takes a whole core from the other pool's next
kernel:
  * OpenBLAS spins for 2**28 cycles (about 0.1 s, so in a training loop always) unless
    OPENBLAS_THREAD_TIMEOUT says otherwise; 14 (2**14 cycles, a few microseconds) made
    im2col + GEMM take 2.1 ms instead of 2.75 ms and the LeNet train step 11.9 ms instead
    of 15.2 ms (batch 64, this project's 2-core machine); 12 and 20 were slower again.
  * libgomp spins for milliseconds by default; OMP_WAIT_POLICY=PASSIVE makes it sleep at once
    (conv ran 2-10x slower before).
A value the user set wins. If numpy was imported before dagnet, OpenBLAS has already read its
settings: `LATE` is then True and dagnet warns once (PerformanceWarning), since it runs about
20% slower; import dagnet before numpy, or set the variable in the shell.

The allocator (glibc). numpy takes every array from malloc, and glibc serves a block of more
than its mmap threshold (128 KiB at first, adapting up to 32 MiB) from fresh pages and gives
freed heap memory back to the system above its trim threshold: the large temporaries of a
conv step (columns, their gradients: megabytes each, every step) then page-fault in anew each
time. A conv's forward + backward on a batch of 100 3x32x32 images took 25 ms so, 9 ms with
the mmap threshold at its 32 MiB maximum and freed memory kept (trim threshold 1 GiB; the
process keeps its high-water mark, as PyTorch's caching allocator does). `tune_malloc` sets
both with mallopt, unless the user set glibc's malloc variables (MALLOC_MMAP_THRESHOLD_ and
the like, or GLIBC_TUNABLES); `MALLOC_TUNED` tells.
"""
import ctypes
import os
import platform
import sys
import warnings

from dagnet.errors import PerformanceWarning

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20  # glibc's maximum for it on 64-bit
TRIM_THRESHOLD = 1 << 30


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds (see above); False where that is not possible or
    the user chose their own."""
    chosen = {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
              "MALLOC_MMAP_MAX_"} & set(os.environ)
    if chosen or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


MALLOC_TUNED: bool = tune_malloc()


def _numpy_openblas_loaded() -> bool:
    """numpy is already imported and linked against OpenBLAS (the PyPI wheels are)."""
    np = sys.modules.get("numpy")
    try:
        return "openblas" in np.__config__.CONFIG["Build Dependencies"]["blas"]["name"].lower()
    except (AttributeError, KeyError, TypeError):
        return np is not None


#: True when numpy (so OpenBLAS) loaded before this module could set OPENBLAS_THREAD_TIMEOUT
LATE: bool = "OPENBLAS_THREAD_TIMEOUT" not in os.environ and _numpy_openblas_loaded()

#: the variables dagnet set itself (not the user); child processes inherit them
SET_BY_DAGNET: dict[str, str] = {}
for _key, _value in (("OPENBLAS_THREAD_TIMEOUT", "14"), ("OMP_WAIT_POLICY", "PASSIVE")):
    if _key not in os.environ:
        os.environ[_key] = SET_BY_DAGNET[_key] = _value

if LATE:
    warnings.warn(
        "numpy was imported before dagnet, so OpenBLAS keeps its idle threads spinning after "
        "every matrix product and they slow dagnet's own kernels (about 20% on 2 cores); "
        "import dagnet before numpy, or set OPENBLAS_THREAD_TIMEOUT=14 in the environment",
        PerformanceWarning, stacklevel=3)
