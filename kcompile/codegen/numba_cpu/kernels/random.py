"""Random draws for training-mode layers (Dropout's masks). Counter-based: entry i is a
hash of (key, i), so threads fill disjoint parts of an array with no shared state, and
one key gives the same draws whatever the number of threads."""
import numpy as np
from numba import njit, prange

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment: counters spread over 64 bits
MIX1, MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
S27, S30, S31, S32 = np.uint64(27), np.uint64(30), np.uint64(31), np.uint64(32)


@njit(cache=True, nogil=True, inline="always")
def splitmix64(z):
    """SplitMix64's output function (Steele, Lea and Flood 2014): a bijective mix whose
    outputs for consecutive counters pass BigCrush."""
    z = (z ^ (z >> S30)) * MIX1
    z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


@njit(cache=True, nogil=True, parallel=True)
def bernoulli_fill(out, key, threshold, value):
    """out (1-D float32)[i] = value where the high 32 bits of splitmix64(key + (i+1) * GOLDEN)
    are below `threshold` (keep probability x 2**32), else 0."""
    for i in prange(out.shape[0]):
        bits = splitmix64(key + np.uint64(i + 1) * GOLDEN) >> S32
        out[i] = value if bits < threshold else np.float32(0.0)
