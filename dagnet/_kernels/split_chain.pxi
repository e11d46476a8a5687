# A run of bound batch-1 split convs (direct_split.pxi SplitConv) as one call, the GIL released
# once, with the head after them (included by direct.pyx after direct_split.pxi): the inference
# program's chains (dagnet/runtime/calls.py chain_splits).

cdef struct _Bound:
    # a SplitConv's parts, for a chain to run without the GIL
    _Fill* fill
    _Split* split
    Py_ssize_t fills, jobs
    int fill_threads, threads


cdef class SplitChain:
    """Bound split convs run one after the other in one call, the GIL released once: an
    inference program's run of batch-1 convs each of which but the first reads outputs of
    convs before it (arrays of the program's arena, fixed while the program keeps its
    binding), and the head after them: a global average pool of their outputs and the fully
    connected layer reading it.

        chain = SplitChain(convs, inputs, link, means, affine)
                    # inputs[i]: (x, residual) of convs[i + 1]; means: (out, [(i, col)]):
                    # the means of convs[i]'s channels into out (N, K)'s columns col...;
                    # affine: (x, y, relu): y (N, M) = x (N, D) @ w + b after the convs
        chain(x, residual, w, b)
                    # convs[0](x, residual), then convs[i + 1](*inputs[i]), the means as
                    # their channels are written, then the affine (w, b: its params now);
                    # False, the affine not run, if w or b no longer fits its binding

    Why: the Python between two convs (a closure, its look-ups, the checks of its arrays) took
    ~1 us of each batch-1 conv's 8-35 us, and the head's two calls ~10 us (gap_concat read
    the pooled values back from memory, or from the other core's cache). The arrays of inputs
    are checked here, once, and kept alive; the convs are this chain's alone (their input and
    residual pointers stay set). The numbers are the convs' own: each runs as its call would,
    the means are gap_concat's (gap.h), the affine is affine_small's."""
    cdef object keep
    cdef list convs
    cdef _Bound* parts
    cdef Py_ssize_t n
    cdef _Affine fc
    cdef Py_ssize_t fc_items
    cdef int fc_threads
    cdef bint has_fc
    cdef char* gap_own
    cdef char* gap_out
    cdef Py_ssize_t gap_bytes

    def __cinit__(self):
        self.parts = NULL

    def __init__(self, list convs, list inputs, bint link=True, means=None, affine=None):
        cdef SplitConv c, w
        cdef Py_ssize_t i, k, col, M
        if not convs or len(convs) != len(inputs) + 1:
            raise ValueError("SplitChain: one (x, residual) for each conv after the first")
        for i in range(1, len(convs)):
            c = convs[i]
            x, res = inputs[i - 1]
            c._set(x, res)
        c = convs[0]
        self.gap_bytes = 0
        if means is not None:
            out, cols = means
            if not _c_floats(out, 2, c.num) or out.shape[0] != c.N:
                raise ValueError("SplitChain: the means need a C-contiguous (N, K) array of the "
                                 "convs' dtype")
            own = np.zeros_like(out)  # the items' (the arena may lend out's memory to a conv
            for i, col in cols:  # after them: the means are copied there at the end)
                w = convs[i]
                M = w.split.M
                if not 0 <= col <= out.shape[1] - M:
                    raise ValueError(f"SplitChain: the means of conv {i} need columns {col}.."
                                     f"{col + M - 1} of {out.shape[1]}")
                w.split.gap = <char*>cnp.PyArray_DATA(<cnp.ndarray>own) + col * cnp.PyArray_ITEMSIZE(<cnp.ndarray>own)
                w.split.gap_k, w.split.gap_l = out.shape[1], w.split.out_n // M
            self.gap_own = <char*>cnp.PyArray_DATA(<cnp.ndarray>own)
            self.gap_out = <char*>cnp.PyArray_DATA(<cnp.ndarray>out)
            self.gap_bytes = out.nbytes
            means = (out, own)
        self.has_fc = affine is not None
        if self.has_fc:
            fx, fy, relu = affine
            if not (_c_floats(fx, 2, c.num) and _c_floats(fy, 2, c.num) and
                    fx.shape[0] == fy.shape[0] == c.N):
                raise ValueError("SplitChain: the affine's x and y must be C-contiguous (N, D) and "
                                 "(N, M) arrays of the convs' dtype")
            self.fc.x = <const char*>cnp.PyArray_DATA(<cnp.ndarray>fx)
            self.fc.y = <char*>cnp.PyArray_DATA(<cnp.ndarray>fy)
            self.fc.N, self.fc.D, self.fc.M = fy.shape[0], fx.shape[1], fy.shape[1]
            self.fc.relu, self.fc.is_double = relu, c.num == cnp.NPY_FLOAT64
            self.fc_items = (self.fc.M + DN_AF_CB - 1) // DN_AF_CB
            self.fc_threads = c.threads
        self.parts = <_Bound*>malloc(len(convs) * sizeof(_Bound))
        if self.parts == NULL:
            raise MemoryError()
        for i in range(len(convs)):
            c = convs[i]
            self.parts[i] = _Bound(&c.fill, &c.split, c.N * c.C, c.jobs, c.fill_threads,
                                   c.threads)
        for i in range(1, len(convs) if link else 0):  # a conv reading the output of one
            c = convs[i]  # before it: its planes filled by that one's items
            for k in range(i - 1, -1, -1):  # the last to write that buffer (the arena reuses
                w = convs[k]  # buffers: an earlier conv may have written it with other values)
                if c.fill.x != w.split.out:
                    continue
                if w.split.next_fill == NULL:
                    w.split.next_fill = &c.fill
                    self.parts[i].fills = 0
                elif w.split.next_fill2 == NULL:
                    w.split.next_fill2 = &c.fill
                    self.parts[i].fills = 0
                break
        self.convs, self.keep, self.n = list(convs), [inputs, means, affine], len(convs)

    def __dealloc__(self):
        free(self.parts)

    def __call__(self, x, residual=None, w=None, b=None):
        """Every conv of the chain, the first on x (+ residual), checked as its call checks
        them; then the affine with weights w (D, M) and bias b (M,) if bound: False (and
        the affine not run) unless they are C-contiguous arrays of that shape and dtype."""
        cdef Py_ssize_t i
        cdef bint fc = self.has_fc
        cdef SplitConv first = self.convs[0]
        first._set(x, residual)
        if fc:
            fc = _c_floats(w, 2, first.num) and _c_floats(b, 1, first.num) and \
                cnp.PyArray_DIM(<cnp.ndarray>w, 0) == self.fc.D and \
                cnp.PyArray_DIM(<cnp.ndarray>w, 1) == self.fc.M and \
                cnp.PyArray_DIM(<cnp.ndarray>b, 0) == self.fc.M
            if fc:
                self.fc.w = <const char*>cnp.PyArray_DATA(<cnp.ndarray>w)
                self.fc.b = <const char*>cnp.PyArray_DATA(<cnp.ndarray>b)
        with nogil:
            for i in range(self.n):
                _run_conv(self.parts[i].fill, self.parts[i].split, self.parts[i].fills,
                          self.parts[i].fill_threads, self.parts[i].jobs, self.parts[i].threads)
            if self.gap_bytes:
                memcpy(self.gap_out, self.gap_own, self.gap_bytes)
            if fc:
                dn_par_for(_affine_task, &self.fc, self.fc_items, self.fc_threads)
        return fc or not self.has_fc
