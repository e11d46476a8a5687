# The element types every kernel is compiled for (cimport them): one fused type each, so a
# function of two of them is specialised once per pair, the same way in every module.
from libc.stdint cimport int32_t, uint8_t

ctypedef fused real:
    float
    double

# a max-pool's argmax: uint8 for windows of up to 256 cells (a quarter of int32's traffic)
ctypedef fused index_t:
    uint8_t
    int32_t
