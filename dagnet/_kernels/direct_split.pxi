# The batch-1 forward's split (included by direct.pyx): one sample's filter tiles, and a bound
# split conv's planes fill, shared by the caller and the spinning helper threads of helpers.h
# (see there for why not OpenMP).

cdef extern from "helpers.h" nogil:
    ctypedef void (*dn_task)(void* ctx, Py_ssize_t item, int tid) noexcept nogil
    void dn_par_for(dn_task fn, void* ctx, Py_ssize_t n, int threads)
    long long dn_count[4]

cdef extern from "gap.h" nogil:
    void dn_means_f(const float* src, Py_ssize_t C, Py_ssize_t L, float* dst)
    void dn_means_d(const double* src, Py_ssize_t C, Py_ssize_t L, double* dst)

cdef struct _Fill:
    # a bound split conv's input copied into the interiors of its planes (their zero borders
    # and tail written once, at binding): one item per sample and channel
    const void* x
    void* planes
    const int32_t* slot
    Py_ssize_t x_c, S, C, H, W, Hq, Wq, nph
    int sh, sw, ph, pw, isa
    bint is_double


cdef struct _Split:
    # one batch-1 forward split into items (sample, tile of DC_FR filters): its arrays'
    # first elements (float or double, as is_double says) and their strides per sample
    const void* planes
    const int32_t* off
    const void* wp
    const void* bias
    void* grid
    void* out
    const void* res
    Py_ssize_t planes_n, grid_t, out_n, res_n
    Py_ssize_t M, K, Qr, Wq, Ho, Wo, Hp, Wp, tiles
    int isa
    bint relu
    int kh, kw, sh, sw
    bint plain, is_double
    # in a chain (SplitChain), the planes fills of up to two later convs that read this one's
    # output: each item's channels copied in as soon as they are written (hot in cache, and
    # those convs need no fill loop of their own: one hand-over to the helpers fewer); else NULL
    _Fill* next_fill
    _Fill* next_fill2
    # in a chain whose head averages this conv's output (a ResNet's global average pool):
    # each item's channels averaged as soon as they are written (gap.h, the head's own
    # function), into gap (sample n's row gap + n * gap_k, this conv's first column); else NULL
    void* gap
    Py_ssize_t gap_k, gap_l


cdef void _split_task(void* ctx, Py_ssize_t item, int tid) noexcept nogil:
    cdef _Split* c = <_Split*>ctx
    if c.is_double:
        _split_one(c, <double*>NULL, item, tid)
    else:
        _split_one(c, <float*>NULL, item, tid)


cdef inline void _split_one(_Split* c, real* kind, Py_ssize_t item, int tid) noexcept nogil:
    """Item `item` of c: one sample's outputs of one tile of filters, in thread tid's grid."""
    cdef Py_ssize_t n = item // c.tiles, m0 = (item % c.tiles) * DC_FR, m1 = m0 + DC_FR, m
    cdef real* g = <real*>c.grid + tid * c.grid_t
    cdef real* out = <real*>c.out + n * c.out_n
    if m1 > c.M:
        m1 = c.M
    _gemm(c.isa, m1 - m0, c.K, c.Qr, c.off, <const real*>c.wp + m0 * c.K,
          <const real*>c.bias + m0, <const real*>c.planes + n * c.planes_n, g + m0 * c.Qr, c.Qr,
          c.Ho, c.Wo, c.Wq)
    if c.plain:
        _copy_out(c.isa, g, c.Qr, c.Wq, m0, m1, c.Ho, c.Wo, out)
    else:
        _epilogue(c.isa, g, c.Qr, c.Wq, m0, m1, c.Ho, c.Wo,
                  <const real*>c.res + n * c.res_n if c.res != NULL else NULL, c.relu,
                  c.kh, c.kw, c.sh, c.sw, c.Hp, c.Wp, out)
    if c.gap != NULL:
        if real is float:
            dn_means_f(<float*>out + m0 * c.gap_l, m1 - m0, c.gap_l, <float*>c.gap + n * c.gap_k + m0)
        else:
            dn_means_d(<double*>out + m0 * c.gap_l, m1 - m0, c.gap_l, <double*>c.gap + n * c.gap_k + m0)
    if c.next_fill != NULL:
        for m in range(m0, m1):
            _fill_one(c.next_fill, kind, n * c.M + m)
    if c.next_fill2 != NULL:
        for m in range(m0, m1):
            _fill_one(c.next_fill2, kind, n * c.M + m)


cdef void _fill_task(void* ctx, Py_ssize_t item, int tid) noexcept nogil:
    cdef _Fill* f = <_Fill*>ctx
    if f.is_double:
        _fill_one(f, <double*>NULL, item)
    else:
        _fill_one(f, <float*>NULL, item)


cdef inline void _fill_w2(_Fill* f, const real* x, real* planes, Py_ssize_t L) noexcept nogil:
    """_fill_one's values for a width stride of 2, input row by input row: its even values,
    then its odd ones, into the phase planes they belong to (a stride-2 copy the compiler
    vectorises; plane row by plane row, value by value with branches between, the 16 channels
    of resnet_small's 28 x 28 downsampling input took ~1/4 of that conv's time)."""
    cdef Py_ssize_t ih, e, i, m, a, rh, k, b0
    cdef const real* row
    cdef real* dst
    for ih in range(f.H):
        a = (ih + f.ph) // f.sh  # the padded row ih + ph: plane row a of phase rh
        rh = (ih + f.ph) % f.sh
        row = x + ih * f.W
        for e in range(2):  # columns e, e + 2, ...: padded column e + pw + 2i, phase (e + pw) % 2
            k = f.slot[rh * 2 + (e + f.pw) % 2]
            if k < 0:
                continue
            b0 = (e + f.pw) // 2
            m = (f.W - e + 1) // 2
            if b0 + m > f.Wq:
                m = f.Wq - b0
            dst = planes + k * L + a * f.Wq + b0
            for i in range(m):
                dst[i] = row[e + 2 * i]


cdef inline void _fill_one(_Fill* f, real* kind, Py_ssize_t item) noexcept nogil:
    """Channel item % C of sample item // C into its phase planes' interiors: the values
    _planes_one writes there, none of the zeros around them."""
    cdef Py_ssize_t n = item // f.C, c = item % f.C, rh, rw, a, b, ih, lo, hi, L = f.Hq * f.Wq
    cdef const real* x = <const real*>f.x + item * f.x_c
    cdef real* plane
    cdef const real* row
    cdef Py_ssize_t a0, a1
    if f.sw == 2 and f.nph == 2 * f.sh:  # every phase used (a 1x1 stride-2 conv's one phase
        # of four: the loop below, its rows' values alone, measured 0.3 us faster)
        _fill_w2(f, x, <real*>f.planes + n * f.S + c * f.nph * L, L)
        return
    if f.sw == 1:  # per phase rh: the plane rows a0 <= a < a1 hold input rows a*sh + rh - ph
        lo = f.pw  # the plane's columns pw <= b < pw + W (hi - lo values, Wq = W + 2pw)
        for rh in range(f.sh):
            if f.slot[rh] < 0:
                continue
            plane = <real*>f.planes + n * f.S + (c * f.nph + f.slot[rh]) * L
            a0 = (f.ph - rh + f.sh - 1) // f.sh if f.ph > rh else 0
            a1 = (f.H - 1 + f.ph - rh) // f.sh + 1 if f.H - 1 + f.ph - rh >= 0 else 0
            if a1 > f.Hq:
                a1 = f.Hq
            hi = lo + f.W if lo + f.W <= f.Wq else f.Wq
            if a0 < a1 and lo < hi:
                if real is float:
                    dc_copy_f(f.isa, x + (a0 * f.sh + rh - f.ph) * f.W, f.sh * f.W, a1 - a0,
                              hi - lo, plane + a0 * f.Wq + lo, f.Wq)
                else:
                    dc_copy_d(f.isa, x + (a0 * f.sh + rh - f.ph) * f.W, f.sh * f.W, a1 - a0,
                              hi - lo, plane + a0 * f.Wq + lo, f.Wq)
        return
    for rh in range(f.sh):
        for rw in range(f.sw):
            if f.slot[rh * f.sw + rw] < 0:
                continue
            plane = <real*>f.planes + n * f.S + (c * f.nph + f.slot[rh * f.sw + rw]) * L
            lo = (f.pw - rw + f.sw - 1) // f.sw if f.pw > rw else 0
            hi = (f.W - 1 + f.pw - rw) // f.sw + 1 if f.W - 1 + f.pw - rw >= 0 else 0
            if hi > f.Wq:
                hi = f.Wq
            if lo >= hi:
                continue
            for a in range(f.Hq):
                ih = a * f.sh + rh - f.ph
                if ih < 0 or ih >= f.H:
                    continue
                row = x + ih * f.W
                if f.sw == 1:
                    memcpy(plane + a * f.Wq + lo, row + lo + rw - f.pw, (hi - lo) * sizeof(real))
                else:
                    for b in range(lo, hi):
                        plane[a * f.Wq + b] = row[b * f.sw + rw - f.pw]


def helper_counts():
    """{name: count since load} of the batch-1 split's loops (helpers.h): run with the helpers,
    run alone (after a long wait for a preempted helper, or a second caller), long waits, and
    items the helpers ran."""
    return {"with_helpers": dn_count[0], "alone": dn_count[1], "long_waits": dn_count[2],
            "helper_items": dn_count[3]}


cdef enum:
    FILL_SPLIT = 4096  # values of input at least, for a split conv's planes fill to be shared


cdef class SplitConv:
    """forward's split path (parts > 1: a batch smaller than the threads) bound once to its
    buffers, for an inference program's conv called again and again with new inputs.

        conv = SplitConv(x_shape, planes, slot, off, wp, bias, grid, out, sh, sw, ph, pw, Hq,
                         Wq, Qr, isa, num_threads, has_residual, relu, pool, parts)
        conv(x, residual)   # as forward(x, ..., residual, relu, pool, parts) into out

    Why: forward takes its 20 arguments as typed memoryviews and checks their geometry on
    every call, ~2 us, a few percent of a batch-1 conv. The constructor runs forward once on
    zeros (its checks, unchanged) and keeps the pointers; a call checks only x and residual
    (C-contiguous arrays of out's dtype and shape, through numpy's C API).

    planes are the conv's own (no other call writes them): their zero borders and tail are
    written once, here, and a call copies x into their interiors alone, one item per sample
    and channel shared by the caller and the helpers (the serial fill, borders and all, took
    3-4 us of a 16-channel 28 x 28 conv's ~35 us on two threads)."""
    cdef object keep  # the bound arrays, alive while the pointers are used
    cdef _Split split
    cdef _Fill fill
    cdef Py_ssize_t N, C, H, W, sh, sw, ph, pw, Hq, Wq, nph, S, jobs
    cdef tuple x_shape, res_shape
    cdef const int32_t* slot
    cdef char* planes
    cdef int threads, fill_threads, num
    cdef bint has_res

    def __init__(self, tuple x_shape, planes, slot, off, wp, bias, grid, out, int sh, int sw,
                 int ph, int pw, int Hq, int Wq, int Qr, int isa, int num_threads,
                 bint has_residual, bint relu, pool, int parts):
        cdef cnp.ndarray o = out
        if parts < 2:
            raise ValueError("SplitConv: parts must be at least 2 (forward runs parts=1)")
        x0 = np.zeros(x_shape, out.dtype)
        res0 = None
        forward(x0, planes, slot, off, wp, bias, grid, out, sh, sw, ph, pw, Hq, Wq, Qr, isa,
                num_threads, None, relu, pool, parts)  # its checks (out's shape holds Ho, Wo)
        self.N, self.C, self.H, self.W = x_shape
        M = out.shape[1]
        Ho, Wo = (pool[0], pool[1]) if pool is not None else (out.shape[2], out.shape[3])
        if has_residual:  # forward checks the residual's shape in the call
            res0 = np.zeros((self.N, M, Ho, Wo), out.dtype)
            forward(x0, planes, slot, off, wp, bias, grid, out, sh, sw, ph, pw, Hq, Wq, Qr,
                    isa, num_threads, res0, relu, pool, parts)
        out[...] = 0
        self.keep = (planes, slot, off, wp, bias, grid, out)
        self.x_shape, self.res_shape = tuple(x_shape), (self.N, M, Ho, Wo)
        self.sh, self.sw, self.ph, self.pw, self.Hq, self.Wq = sh, sw, ph, pw, Hq, Wq
        self.slot = <const int32_t*>cnp.PyArray_DATA(<cnp.ndarray>slot)
        self.nph = int((slot >= 0).sum())
        self.planes = <char*>cnp.PyArray_DATA(<cnp.ndarray>planes)
        self.S = planes.shape[1]
        self.num, self.has_res = cnp.PyArray_TYPE(o), has_residual
        tiles = (M + DC_FR - 1) // DC_FR
        self.jobs = self.N * tiles
        self.threads = num_threads if num_threads <= self.jobs else self.jobs
        pkh, pkw, psh, psw = (pool[2], pool[3], pool[4], pool[5]) if pool is not None else (0, 0, 1, 1)
        # a small input is copied by the caller alone: the helpers' share would not pay for
        # the hand-over (LeNet's conv2 input, 2,880 values: 0.97x split)
        self.fill_threads = self.threads if self.N * self.C * self.H * self.W >= FILL_SPLIT else 1
        self.fill = _Fill(NULL, <void*>self.planes, self.slot, self.H * self.W,
                          self.S, self.C, self.H, self.W, Hq, Wq, self.nph, sh, sw, ph, pw,
                          isa, self.num == cnp.NPY_FLOAT64)
        self.split = _Split(<const void*>self.planes, <const int32_t*>cnp.PyArray_DATA(<cnp.ndarray>off),
                            <const void*>cnp.PyArray_DATA(<cnp.ndarray>wp),
                            <const void*>cnp.PyArray_DATA(<cnp.ndarray>bias),
                            <void*>cnp.PyArray_DATA(<cnp.ndarray>grid), <void*>cnp.PyArray_DATA(o),
                            NULL, self.S, grid.shape[1], M * out.shape[2] * out.shape[3],
                            M * Ho * Wo, M, off.shape[0], Qr, Wq, Ho, Wo, out.shape[2],
                            out.shape[3], tiles, isa, relu, pkh, pkw, psh, psw,
                            not has_residual and not relu and pool is None,
                            self.num == cnp.NPY_FLOAT64, NULL, NULL, NULL, 0, 0)

    def __call__(self, x, residual=None):
        """out = the conv of x (N, C, H, W) (+ residual, relu, pool as bound)."""
        self._set(x, residual)
        with nogil:
            self._run()
        self.split.res = NULL

    cdef int _set(self, x, residual) except -1:
        """Point the fill at x and the epilogue at residual, checked as the call checks them."""
        if not _c_floats(x, 4, self.num) or x.shape != self.x_shape:
            raise ValueError(f"SplitConv: x must be a C-contiguous {self.x_shape} array of the "
                             f"bound dtype")
        if self.has_res:
            if not _c_floats(residual, 4, self.num) or residual.shape != self.res_shape:
                raise ValueError(f"SplitConv: residual must be a C-contiguous {self.res_shape} "
                                 f"array of the bound dtype")
            self.split.res = cnp.PyArray_DATA(<cnp.ndarray>residual)
        elif residual is not None:
            raise ValueError("SplitConv: bound without a residual")
        self.fill.x = cnp.PyArray_DATA(<cnp.ndarray>x)
        return 0

    cdef void _run(self) noexcept nogil:
        _run_conv(&self.fill, &self.split, self.N * self.C, self.fill_threads, self.jobs,
                  self.threads)


cdef inline void _run_conv(_Fill* fill, _Split* split, Py_ssize_t fills, int fill_threads,
                           Py_ssize_t jobs, int threads) noexcept nogil:
    """A bound split conv: its planes filled, then its filter tiles."""
    dn_par_for(_fill_task, fill, fills, fill_threads)
    dn_par_for(_split_task, split, jobs, threads)
