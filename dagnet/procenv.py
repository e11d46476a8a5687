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
A value the user set wins. If numpy was imported before dagnet (`LATE`), OpenBLAS has already
read its settings and started its threads; the LeNet step then ran about 20% slower. So dagnet
then has OpenBLAS read its environment again and stops its threads (`retime_openblas`): the
next matrix product starts them anew, with the new timeout, and the speed no longer depends on
the import order. This uses functions OpenBLAS exports but does not document
(openblas_read_env, blas_thread_shutdown_: its fork handler's way to restart the threads); only
where a loaded OpenBLAS lacks them does dagnet warn once (PerformanceWarning) and name the fix:
import dagnet before numpy, or set the variable in the shell. Setting the thread count after
load (openblas_set_num_threads, threadpoolctl) does not help: the threads keep the timeout
they were started with.

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


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux; [] elsewhere)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            fields = [line.split(None, 5) for line in maps]  # address perms offset dev inode path
    except OSError:
        return []
    paths = {f[5].strip() for f in fields if len(f) == 6}
    return sorted(p for p in paths if "openblas" in os.path.basename(p).lower())


def retime_openblas() -> bool:
    """Make every loaded OpenBLAS take OPENBLAS_THREAD_TIMEOUT from the environment now: it
    re-reads its environment and stops its thread pool, which the next matrix product starts
    again with the new timeout (the thread count is kept). False where no loaded OpenBLAS
    exports the functions for it, or one read another value back."""
    done = False
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same library, no second copy
            read_env, timeout = lib.openblas_read_env, lib.openblas_thread_timeout
            shutdown = lib.blas_thread_shutdown_
        except (OSError, AttributeError):
            return False
        timeout.restype = ctypes.c_uint
        read_env()
        if str(timeout()) != os.environ.get("OPENBLAS_THREAD_TIMEOUT"):
            return False
        shutdown()
        done = True
    return done


#: True when numpy (so OpenBLAS) loaded before this module could set OPENBLAS_THREAD_TIMEOUT
LATE: bool = "OPENBLAS_THREAD_TIMEOUT" not in os.environ and _numpy_openblas_loaded()

#: the variables dagnet set itself (not the user); child processes inherit them
SET_BY_DAGNET: dict[str, str] = {}
for _key, _value in (("OPENBLAS_THREAD_TIMEOUT", "14"), ("OMP_WAIT_POLICY", "PASSIVE")):
    if _key not in os.environ:
        os.environ[_key] = SET_BY_DAGNET[_key] = _value

#: True when OpenBLAS loaded first and dagnet gave it the timeout afterwards (retime_openblas)
RETIMED: bool = LATE and retime_openblas()

if LATE and not RETIMED:
    warnings.warn(
        "numpy was imported before dagnet and its OpenBLAS cannot be told the thread timeout "
        "after loading, so its idle threads keep spinning after every matrix product and slow "
        "dagnet's own kernels (about 20% on 2 cores); import dagnet before numpy, or set "
        "OPENBLAS_THREAD_TIMEOUT=14 in the environment", PerformanceWarning, stacklevel=3)
