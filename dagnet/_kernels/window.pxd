# Clipping a kernel window to the image, for the kernels' cimport: a window of k taps starting
# at `start` (negative in the padding) covers taps [first_tap, end_tap) inside an axis of `size`.

cdef inline Py_ssize_t first_tap(Py_ssize_t start) noexcept nogil:
    """First tap inside the image."""
    return -start if start < 0 else 0


cdef inline Py_ssize_t end_tap(Py_ssize_t start, Py_ssize_t k, Py_ssize_t size) noexcept nogil:
    """One past the last tap inside the image."""
    return size - start if start + k > size else k
