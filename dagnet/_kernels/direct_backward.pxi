# The direct convolution's backward: dw and db from the planes the forward kept, dx by the
# products of direct.h over the phase planes of dout (included by direct.pyx; the kernels
# and why: direct.h).


cdef void _grid_one(const real* dout, Py_ssize_t M, Py_ssize_t Ho, Py_ssize_t Wo,
                    Py_ssize_t top, Py_ssize_t left, Py_ssize_t Wg, Py_ssize_t rows,
                    Py_ssize_t size, real* dst, double* sums) noexcept nogil:
    """dst (rows planes of size values, zeros around) gets dout (M, Ho, Wo) at row top, column
    left of planes Wg wide; sums[m] += the sum of dout[m] (if sums)."""
    cdef Py_ssize_t m, oh, ow
    cdef double s
    cdef const real* src
    memset(dst, 0, rows * size * sizeof(real))
    for m in range(M):
        s = 0
        for oh in range(Ho):
            src = dout + (m * Ho + oh) * Wo
            memcpy(dst + m * size + (top + oh) * Wg + left, src, Wo * sizeof(real))
            if sums != NULL:
                for ow in range(Wo):
                    s = s + src[ow]
        if sums != NULL:
            sums[m] += s


# positions a block of _transpose_one (their dst rows: 32 x Mp values, 4 KB for 32 filters)
DEF _TR_BLOCK = 32


cdef void _transpose_one(const real* dout, Py_ssize_t M, Py_ssize_t Ho, Py_ssize_t Wo,
                         Py_ssize_t Mp, real* dst, double* sums, int isa) noexcept nogil:
    """dst (Ho*Wo, Mp) = dout (M, Ho*Wo) transposed, zeros past M; sums[m] += the sum of
    dout[m] (_grid_one's loops, row by row: the same db bits). float on AVX-512: direct.h's
    dc_transpose_f (16 x 16 blocks in registers); else by blocks of _TR_BLOCK positions, whose
    Mp-wide rows of dst stay in L1 while every channel's values land in them: channel by
    channel over all Ho*Wo positions, each store touched a line evicted since. Transpose and
    db / dc_dwt's time (perf samples, convnet_deep's 32-channel 28 x 28 conv, one thread):
    0.40 channel by channel, 0.25 by blocks, 0.13 on dc_transpose_f."""
    cdef Py_ssize_t m, oh, ow, p, p0 = 0, p1, P = Ho * Wo
    cdef double s
    cdef const real* src
    cdef real* d
    if Mp > M:
        memset(dst, 0, P * Mp * sizeof(real))
    if real is float:
        if dc_transpose_f(isa, dout, M, P, dst, Mp):
            p0 = P  # done: 16 x 16 blocks in registers (direct.h)
    for p0 in range(p0, P, _TR_BLOCK):
        p1 = min(p0 + _TR_BLOCK, P)
        for m in range(M):
            src = dout + m * P
            d = dst + m
            for p in range(p0, p1):
                d[p * Mp] = src[p]
    for m in range(M):
        s = 0
        for oh in range(Ho):
            src = dout + (m * Ho + oh) * Wo
            for ow in range(Wo):
                s = s + src[ow]
        sums[m] += s


def backward(const real[:, :, :, ::1] dout, const real[:, ::1] planes,
             const int32_t[::1] off, real[:, :, ::1] dw_part, double[:, ::1] db_part,
             real[:, ::1] lanes_part, real[:, ::1] dgrid, int Wq, int Qr,
             real[:, :, :, ::1] dx, const int32_t[::1] ph_taps, const int32_t[::1] ph_off,
             const real[::1] ph_w, real[:, ::1] doutp, real[:, ::1] xgrid, int sh, int sw,
             int ph, int pw, int Hq, int Ti, int Tj, int Wd, int Qd, int isa, int num_threads,
             bint by_channels=False):
    """dw_part[chunk] (Mr, Kr) = the dw of the chunk's samples, db_part[chunk] (M,) += their
    dout sums; with dx (not None) its input gradient. The chunks split the batch evenly, in
    order. off: the forward's offsets padded to Kr (a multiple of DC_KR); lanes_part: one
    (Mr*Kr*dw_lanes,) row per thread for dw's lane sums; dgrid: one (Mr*Qr,) scratch row per thread. For dx, per phase rh*sw + rw: ph_taps[p] taps (of
    ph_taps[-1] = M, the output channels), their offsets ph_off and packed weights ph_w (in
    phase order), doutp and xgrid one scratch row per thread (the padded dout planes, Wd
    wide, and the (C*Qd,) products).

    by_channels: dw by dc_dwt (vectorised along the output channels) instead: dw_part[chunk]
    is then (Kr, Mp), Mp a multiple of 2 * dw_lanes and off padded to DWT_TAPS, dgrid one
    (Ho*Wo*Mp,) row per thread (dout transposed), lanes_part unused."""
    cdef Py_ssize_t N = dout.shape[0], M = dout.shape[1], Ho = dout.shape[2], Wo = dout.shape[3]
    cdef Py_ssize_t chunks = dw_part.shape[0], Mr = dw_part.shape[1], Kr = off.shape[0]
    cdef Py_ssize_t L = dc_lanes(isa, real is double), S = planes.shape[1]
    cdef Py_ssize_t Ld = dc_wide_lanes(isa, real is double)
    cdef Py_ssize_t C = 0, H = 0, W = 0, Ct = 0, Hd = 0, Sd = 0, nphase = sh * sw
    cdef Py_ssize_t ch, n, t, p, kp, k0, w0, a, b, c, ih, iw, rh, rw, i
    cdef bint need_dx = dx is not None
    cdef real* g
    cdef real* dp
    cdef real* xg
    cdef real* dxn
    cdef real* lp
    cdef real s
    if by_channels:  # dw_part[chunk] is (Kr, Mp)
        Mr = dw_part.shape[2]
        if (Kr % DC_KT2 or Mr % (2 * Ld) or Mr < M or dw_part.shape[1] != Kr
                or dgrid.shape[1] < Ho * Wo * Mr):
            raise ValueError("direct.backward: the buffers and the geometry disagree")
    elif (Kr % DC_KR or Mr % DC_DB or Mr < M or dw_part.shape[2] != Kr
            or lanes_part.shape[0] < num_threads or lanes_part.shape[1] < Mr * Kr * Ld
            or dgrid.shape[1] < Mr * Qr):
        raise ValueError("direct.backward: the buffers and the geometry disagree")
    if (db_part.shape[0] != chunks or db_part.shape[1] < M or chunks < 1
            or dgrid.shape[0] < num_threads or Qr % L or Qr < Ho * Wq or Wo > Wq
            or planes.shape[0] < N):
        raise ValueError("direct.backward: the buffers and the geometry disagree")
    if not 0 <= isa <= dn_best_isa():
        raise ValueError(f"direct.backward: isa {isa} is not one this CPU runs")
    for i in range(Kr):
        if off[i] < 0 or off[i] + Qr > S:
            raise ValueError(f"direct.backward: offset {off[i]} reads past the planes ({S})")
    if need_dx:
        C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
        Ct = (C + DC_FR - 1) // DC_FR * DC_FR
        Hd = Hq + Ti
        Sd = doutp.shape[1]
        kp = 0
        for p in range(nphase):
            kp += ph_taps[p]
        if (dx.shape[0] != N or ph_taps.shape[0] != nphase + 1 or ph_taps[nphase] != M
                or ph_off.shape[0] < kp or ph_w.shape[0] < kp * Ct or Sd < M * Hd * Wd
                or Qd % (DC_NV * L) or Qd < Hq * Wd or xgrid.shape[1] < C * Qd
                or xgrid.shape[0] < num_threads or doutp.shape[0] < num_threads):
            raise ValueError("direct.backward: the input gradient's buffers and geometry disagree")
        for i in range(kp):
            if ph_off[i] < 0 or ph_off[i] + Qd > Sd:
                raise ValueError(f"direct.backward: offset {ph_off[i]} reads past dout's planes")
    if N == 0:
        return
    with nogil:
        # dynamic: a thread that wakes late (another process on its core) takes fewer chunks
        for ch in prange(chunks, schedule="dynamic", num_threads=num_threads):
            t = threadid()
            g = &dgrid[t, 0]
            lp = NULL
            if by_channels:
                memset(&dw_part[ch, 0, 0], 0, Kr * Mr * sizeof(real))
            else:
                lp = &lanes_part[t, 0]
                memset(lp, 0, Mr * Kr * Ld * sizeof(real))
            for n in range(ch * N // chunks, (ch + 1) * N // chunks):
                if by_channels:
                    _transpose_one(&dout[n, 0, 0, 0], M, Ho, Wo, Mr, g, &db_part[ch, 0], isa)
                    if real is float:
                        dc_dwt_f(isa, Mr, Kr, Ho, Wo, Wq, &off[0], g, &planes[n, 0],
                                 &dw_part[ch, 0, 0])
                    else:
                        dc_dwt_d(isa, Mr, Kr, Ho, Wo, Wq, &off[0], g, &planes[n, 0],
                                 &dw_part[ch, 0, 0])
                else:
                    _grid_one(&dout[n, 0, 0, 0], M, Ho, Wo, 0, 0, Wq, Mr, Qr, g, &db_part[ch, 0])
                    if real is float:
                        dc_dw_f(isa, Mr, Kr, Qr, &off[0], g, Qr, &planes[n, 0], lp)
                    else:
                        dc_dw_d(isa, Mr, Kr, Qr, &off[0], g, Qr, &planes[n, 0], lp)
                if not need_dx:
                    continue
                dp = &doutp[t, 0]
                xg = &xgrid[t, 0]
                dxn = &dx[n, 0, 0, 0]
                _grid_one(&dout[n, 0, 0, 0], M, Ho, Wo, Ti, Tj, Wd, M, Hd * Wd, dp, NULL)
                memset(dp + M * Hd * Wd, 0, (Sd - M * Hd * Wd) * sizeof(real))
                k0 = 0
                w0 = 0
                for p in range(nphase):
                    rh = p // sw
                    rw = p % sw
                    kp = ph_taps[p]
                    if kp:
                        _gemm(isa, C, kp, Qd, &ph_off[k0], &ph_w[w0], NULL, dp, xg, Qd)
                    # every pixel of dx lies in one phase of the padded input: write it there
                    for c in range(C):
                        for a in range(Hq):
                            ih = a * sh + rh - ph
                            if ih < 0 or ih >= H:
                                continue
                            if sw == 1:  # the row is contiguous: columns pw .. pw + W - 1
                                if kp:
                                    memcpy(dxn + (c * H + ih) * W, xg + c * Qd + a * Wd + pw,
                                           W * sizeof(real))
                                else:
                                    memset(dxn + (c * H + ih) * W, 0, W * sizeof(real))
                                continue
                            for b in range((pw - rw + sw - 1) // sw if pw > rw else 0, Wd):
                                iw = b * sw + rw - pw
                                if iw >= W:
                                    break
                                dxn[(c * H + ih) * W + iw] = xg[c * Qd + a * Wd + b] if kp else 0
                    k0 = k0 + kp
                    w0 = w0 + kp * Ct
            if not by_channels:
                for i in range(Mr * Kr):  # the lanes of each dw entry, summed in order
                    s = 0
                    for a in range(Ld):
                        s = s + lp[i * Ld + a]
                    (&dw_part[ch, 0, 0])[i] = s
