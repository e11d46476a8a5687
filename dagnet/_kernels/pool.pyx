# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Max-pool forward/backward over planes: x (N, C, H, W), windows kh x kw.

Each (H, W) plane must be contiguous, but the planes may lie anywhere: x (and dx in backward)
may be the (N, C, H, W) view of a conv's GEMM output stored as (C, N, H, W), so a fused
conv + pool reads and writes the GEMM's own layout and never transposes it.

Forward stores, for each output, the index of the max inside its window (i*kw + j), as
uint8 when the window has at most 256 entries (the common case, a quarter of int32's memory
traffic) and int32 otherwise. Backward scatters dout through that index. Ties go to the first
max in row-major window order (a strict > comparison); a NaN propagates (the last NaN in the window
wins, as in PyTorch).
Padding acts as -inf: padded cells are skipped, never chosen. ph, pw are the top/left pads:
the output size given says how far the windows reach (an asymmetric pad, or ceil_mode's last
partial window, is only a window clipped to the image). A dilated window (taps dh, dw cells
apart) may hold no cell of the image at all: its max is -inf and backward routes nothing.
Planes are independent, so OpenMP splits them; every output is written by one thread in a
fixed order: bitwise deterministic.
"""
from cython.parallel import prange
from libc.math cimport INFINITY
from libc.stdint cimport uint8_t
from libc.string cimport memset

from dagnet._kernels.branchless cimport keep as _keep
from dagnet._kernels.types cimport index_t, real
from dagnet._kernels.window cimport end_tap, first_tap


cdef extern from "pool2x2.h":
    int DN_POOL2X2
    int dn_max2x2_f(const float* x, float* out, uint8_t* arg, Py_ssize_t W, Py_ssize_t ho,
                    Py_ssize_t wo) nogil
    void dn_unpool2x2_f(const float* dout, const uint8_t* arg, float* dx, Py_ssize_t H,
                        Py_ssize_t W, Py_ssize_t ho, Py_ssize_t wo) nogil

#: float 2x2 stride-2 planes on pool2x2.h's SSE2 loops (bitwise the scalar loops' numbers);
#: False for A/B runs and the tests' comparison with the scalar loops (set_vector)
cdef bint _VECTOR = DN_POOL2X2 != 0


def set_vector(bint on):
    """Turn pool2x2.h's loops on or off (where built: DN_POOL2X2); returns the old setting."""
    global _VECTOR
    old = _VECTOR
    _VECTOR = on and DN_POOL2X2 != 0
    return old


cdef inline int _beats(real v, real m) noexcept nogil:
    """1 if v replaces the running max m: strictly greater (the first max keeps ties), or NaN
    (a NaN propagates; the last NaN wins, as in PyTorch). Bitwise |, not `or`: no branch,
    so the compiler turns the updates into selects and vectorises the 2x2 loop."""
    return (v > m) | (v != v)


cdef inline bint _has_nan(const real* x, Py_ssize_t n) noexcept nogil:
    """Whether x[:n] holds a NaN (an OR-reduction without early exit, so it vectorises)."""
    cdef Py_ssize_t i
    cdef int bad = 0
    for i in range(n):
        bad |= x[i] != x[i]
    return bad


cdef void _max_2x2_plane(const real* x, real* out, index_t* arg, Py_ssize_t W,
                         Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """The LeNet case, 2x2 windows with stride 2 and no padding, without a data-dependent
    jump: `v if v > m else m` is one max instruction and the index is integer arithmetic on
    the comparison's 0/1. (With if-statements the loop's scalar form mispredicted about every
    other comparison on random data: 12 ns per output instead of 3.) It ignores NaN; the
    caller redoes a plane that holds one with _max_plane."""
    cdef Py_ssize_t oh, ow, o
    cdef const real* r0
    cdef const real* r1
    cdef real m, a, b, c, d
    cdef int k, t
    for oh in range(ho):
        r0 = x + 2 * oh * W
        r1 = r0 + W
        for ow in range(wo):
            a = r0[2 * ow]
            b = r0[2 * ow + 1]
            c = r1[2 * ow]
            d = r1[2 * ow + 1]
            k = b > a
            m = b if b > a else a
            t = c > m
            k += t * (2 - k)
            m = c if c > m else m
            t = d > m
            k += t * (3 - k)
            m = d if d > m else m
            out[oh * wo + ow] = m
            arg[oh * wo + ow] = <index_t>k


cdef inline Py_ssize_t _first_dilated(Py_ssize_t start, Py_ssize_t d) noexcept nogil:
    """First tap i >= 0 of a window at `start`, taps d apart, with start + i*d >= 0."""
    return 0 if start >= 0 else (-start + d - 1) // d


cdef inline Py_ssize_t _end_dilated(Py_ssize_t start, Py_ssize_t k, Py_ssize_t d,
                                    Py_ssize_t size) noexcept nogil:
    """One past the last tap i < k with start + i*d < size (0 if none)."""
    cdef Py_ssize_t e
    if start >= size:
        return 0
    e = (size - 1 - start) // d + 1
    return e if e < k else k


cdef void _max_plane(const real* x, real* out, index_t* arg, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """Any window, stride and padding; the window is clipped to the image (padding is -inf)."""
    cdef Py_ssize_t oh, ow, i, j, i0, i1, j0, j1, top, left
    cdef real m, v
    cdef index_t k
    for oh in range(ho):
        top = oh * sh - ph
        i0 = first_tap(top)
        i1 = end_tap(top, kh, H)
        for ow in range(wo):
            left = ow * sw - pw
            j0 = first_tap(left)
            j1 = end_tap(left, kw, W)
            # the op keeps pad <= size // 2, so every window holds at least one real cell
            m = x[(top + i0) * W + left + j0]
            k = <index_t>(i0 * kw + j0)
            for i in range(i0, i1):
                for j in range(j0, j1):
                    v = x[(top + i) * W + left + j]
                    if _beats(v, m):
                        m = v
                        k = <index_t>(i * kw + j)
            out[oh * wo + ow] = m
            arg[oh * wo + ow] = k


cdef void _max_plane_dilated(const real* x, real* out, index_t* arg, Py_ssize_t H,
                             Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                             Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                             Py_ssize_t dw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """_max_plane with taps dh, dw cells apart (kept apart: the dense loop stays as it was).
    A window without a cell of the image gives -inf and the index of its first tap."""
    cdef Py_ssize_t oh, ow, i, j, i0, i1, j0, j1, top, left
    cdef real m, v
    cdef index_t k
    for oh in range(ho):
        top = oh * sh - ph
        i0 = _first_dilated(top, dh)
        i1 = _end_dilated(top, kh, dh, H)
        for ow in range(wo):
            left = ow * sw - pw
            j0 = _first_dilated(left, dw)
            j1 = _end_dilated(left, kw, dw, W)
            if i0 >= i1 or j0 >= j1:
                out[oh * wo + ow] = -INFINITY
                arg[oh * wo + ow] = 0
                continue
            m = x[(top + i0 * dh) * W + left + j0 * dw]
            k = <index_t>(i0 * kw + j0)
            for i in range(i0, i1):
                for j in range(j0, j1):
                    v = x[(top + i * dh) * W + left + j * dw]
                    if _beats(v, m):
                        m = v
                        k = <index_t>(i * kw + j)
            out[oh * wo + ow] = m
            arg[oh * wo + ow] = k


cdef void _unpool_2x2_plane(const real* dout, const index_t* arg, real* dx, Py_ssize_t H,
                            Py_ssize_t W, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """2x2 windows at stride 2: every dx cell written once, branch-free (bit masks). One pass
    per dx row (not both rows in one loop): that form vectorises, about 8x faster."""
    cdef Py_ssize_t oh, ow, i
    cdef real* row
    cdef const real* g
    cdef const index_t* k
    cdef real gv
    cdef int kv, left
    for oh in range(ho):
        g = dout + oh * wo
        k = arg + oh * wo
        for i in range(2):
            row = dx + (2 * oh + i) * W
            left = 2 * i
            for ow in range(wo):
                gv = g[ow]
                kv = k[ow]
                row[2 * ow] = _keep(kv == left, gv)
                row[2 * ow + 1] = _keep(kv == left + 1, gv)
            if 2 * wo < W:
                row[W - 1] = 0
    if 2 * ho < H:
        memset(dx + 2 * ho * W, 0, W * sizeof(real))


cdef void _unpool_tiled_plane(const real* dout, const index_t* arg, real* dx, Py_ssize_t H,
                              Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ho,
                              Py_ssize_t wo) noexcept nogil:
    """Non-overlapping windows (stride == size, no pad): each dx cell is written exactly once,
    so no zero-fill pass is needed; only cells left over by a floored tiling are zeroed."""
    cdef Py_ssize_t oh, ow, i, j, k
    cdef real* row
    cdef real g
    for oh in range(ho):
        for i in range(kh):
            row = dx + (oh * kh + i) * W
            for ow in range(wo):
                k = arg[oh * wo + ow]
                g = dout[oh * wo + ow]
                for j in range(kw):
                    row[ow * kw + j] = g if k == i * kw + j else 0
            if wo * kw < W:
                memset(row + wo * kw, 0, (W - wo * kw) * sizeof(real))
    if ho * kh < H:
        memset(dx + ho * kh * W, 0, (H - ho * kh) * W * sizeof(real))


cdef void _unpool_plane(const real* dout, const index_t* arg, real* dx, Py_ssize_t H,
                        Py_ssize_t W, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """Overlapping or padded windows: zero dx, then add each dout at its argmax."""
    cdef Py_ssize_t oh, ow, k
    memset(dx, 0, H * W * sizeof(real))
    for oh in range(ho):
        for ow in range(wo):
            k = arg[oh * wo + ow]
            dx[(oh * sh - ph + k // kw) * W + ow * sw - pw + k % kw] += dout[oh * wo + ow]


cdef void _unpool_plane_dilated(const real* dout, const index_t* arg, real* dx, Py_ssize_t H,
                                Py_ssize_t W, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                                Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                                Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    """_unpool_plane for dilated windows; a window outside the image routes nothing."""
    cdef Py_ssize_t oh, ow, k, r, c
    memset(dx, 0, H * W * sizeof(real))
    for oh in range(ho):
        for ow in range(wo):
            k = arg[oh * wo + ow]
            r = oh * sh - ph + (k // kw) * dh
            c = ow * sw - pw + (k % kw) * dw
            if r >= 0 and r < H and c >= 0 and c < W:
                dx[r * W + c] += dout[oh * wo + ow]


def _check_planes(name, Py_ssize_t H, Py_ssize_t row_stride, Py_ssize_t W, Py_ssize_t col_stride,
                  Py_ssize_t itemsize):
    # the memoryviews take any strides (Cython's ::1 would demand a C-contiguous whole)
    if (W > 1 and col_stride != itemsize) or (H > 1 and row_stride != W * itemsize):
        raise ValueError(f"{name}: each (H, W) plane must be contiguous")


def maxpool_forward(const real[:, :, :, :] x, real[:, :, :, ::1] out,
                    index_t[:, :, :, ::1] argmax, int kh, int kw, int sh, int sw, int ph, int pw,
                    int dh, int dw, int num_threads):
    """Fill out and argmax (N, C, ho, wo), both contiguous, from x (N, C, H, W) whose planes
    are contiguous (any strides on N and C)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3], m, n, c
    # 2x2 windows at stride 2 that all lie inside the image (not ceil_mode's partial last one)
    cdef bint fast = (kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
                      and 2 * ho <= H and 2 * wo <= W)
    cdef bint dilated = dh != 1 or dw != 1
    cdef bint vector = _VECTOR
    _check_planes("maxpool_forward", H, x.strides[2], W, x.strides[3], sizeof(real))
    if (out.shape[0] != N or out.shape[1] != C or argmax.shape[0] != N or argmax.shape[1] != C
            or argmax.shape[2] != ho or argmax.shape[3] != wo):
        raise ValueError("maxpool_forward: out and argmax must both have shape (N, C, ho, wo)")
    if N == 0 or C == 0 or ho == 0 or wo == 0:
        return
    with nogil:
        for m in prange(N * C, schedule="static", num_threads=num_threads):
            n = m // C
            c = m % C
            if real is float and index_t is uint8_t and fast and vector:
                if dn_max2x2_f(&x[n, c, 0, 0], &out[n, c, 0, 0], &argmax[n, c, 0, 0], W, ho, wo):
                    _max_plane(&x[n, c, 0, 0], &out[n, c, 0, 0], &argmax[n, c, 0, 0], H, W,
                               kh, kw, sh, sw, ph, pw, ho, wo)
            elif fast and not _has_nan(&x[n, c, 0, 0], H * W):
                _max_2x2_plane(&x[n, c, 0, 0], &out[n, c, 0, 0], &argmax[n, c, 0, 0], W, ho, wo)
            elif dilated:
                _max_plane_dilated(&x[n, c, 0, 0], &out[n, c, 0, 0], &argmax[n, c, 0, 0], H, W,
                                   kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)
            else:
                _max_plane(&x[n, c, 0, 0], &out[n, c, 0, 0], &argmax[n, c, 0, 0], H, W,
                           kh, kw, sh, sw, ph, pw, ho, wo)


def maxpool_backward(const real[:, :, :, ::1] dout, const index_t[:, :, :, ::1] argmax,
                     real[:, :, :, :] dx, int kh, int kw, int sh, int sw, int ph, int pw,
                     int dh, int dw, int num_threads):
    """Overwrite dx (N, C, H, W), whose planes are contiguous (any strides on N and C), with
    dout (N, C, ho, wo) routed to each window's argmax."""
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t ho = dout.shape[2], wo = dout.shape[3], m, n, c
    cdef bint dilated = dh != 1 or dw != 1
    # windows that tile the image without overlap, none past its end (ceil_mode's may be)
    cdef bint tiled = (kh == sh and kw == sw and ph == 0 and pw == 0 and not dilated
                       and ho * kh <= H and wo * kw <= W)
    cdef bint fast = tiled and kh == 2 and kw == 2
    cdef bint vector = _VECTOR
    _check_planes("maxpool_backward", H, dx.strides[2], W, dx.strides[3], sizeof(real))
    if (dout.shape[0] != N or dout.shape[1] != C or argmax.shape[0] != N or argmax.shape[1] != C
            or argmax.shape[2] != ho or argmax.shape[3] != wo):
        raise ValueError("maxpool_backward: dout and argmax must both have shape (N, C, ho, wo)")
    if N == 0 or C == 0:
        return
    with nogil:
        for m in prange(N * C, schedule="static", num_threads=num_threads):
            n = m // C
            c = m % C
            if real is float and index_t is uint8_t and fast and vector:
                dn_unpool2x2_f(&dout[n, c, 0, 0], &argmax[n, c, 0, 0], &dx[n, c, 0, 0], H, W,
                               ho, wo)
            elif fast:
                _unpool_2x2_plane(&dout[n, c, 0, 0], &argmax[n, c, 0, 0], &dx[n, c, 0, 0], H, W,
                                  ho, wo)
            elif tiled:
                _unpool_tiled_plane(&dout[n, c, 0, 0], &argmax[n, c, 0, 0], &dx[n, c, 0, 0],
                                    H, W, kh, kw, ho, wo)
            elif dilated:
                _unpool_plane_dilated(&dout[n, c, 0, 0], &argmax[n, c, 0, 0], &dx[n, c, 0, 0],
                                      H, W, kw, sh, sw, ph, pw, dh, dw, ho, wo)
            else:
                _unpool_plane(&dout[n, c, 0, 0], &argmax[n, c, 0, 0], &dx[n, c, 0, 0], H, W,
                              kw, sh, sw, ph, pw, ho, wo)
