"""Random draws for training-mode layers (Dropout's masks). Counter-based: entry i is a
hash of (key, i), so threads fill disjoint parts of an array with no shared state, and
one key gives the same draws whatever the number of threads."""
import numpy as np
from numba import njit, prange, uint32

MIX1, MIX2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)
S15, S16 = np.uint32(15), np.uint32(16)


@njit(cache=True, nogil=True, inline="always")
def lowbias32(x):
    """A bijective 32-bit mix with low avalanche bias (Wellons's "lowbias32"). Every step
    is cast back to 32 bits: Numba widens integer arithmetic to 64 bits. In 32 bits the
    loop vectorizes (AVX2 multiplies 32-bit lanes, not 64-bit ones): a 65k-entry mask
    filled 2.4x faster than with splitmix64 (timed once, AVX2 EPYC)."""
    x = uint32(x ^ (x >> S16))
    x = uint32(x * MIX1)
    x = uint32(x ^ (x >> S15))
    x = uint32(x * MIX2)
    return uint32(x ^ (x >> S16))


@njit(cache=True, nogil=True, parallel=True)
def bernoulli_fill(out, key, threshold, value):
    """out (1-D float32)[i] = value where lowbias32(lowbias32(i ^ key_low) ^ key_high) is
    below `threshold` (keep probability x 2**32), else 0. key: uint64; the counter is
    32 bits, so draws repeat only past 2**32 entries (a 16 GiB mask)."""
    low, high = uint32(key & np.uint64(0xFFFFFFFF)), uint32(key >> np.uint64(32))
    for i in prange(out.shape[0]):
        bits = lowbias32(uint32(lowbias32(uint32(uint32(i) ^ low)) ^ high))
        out[i] = value if bits < threshold else np.float32(0.0)
