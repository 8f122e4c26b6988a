"""Epilogues: the elementwise chain fusion attached to a matmul or conv, applied to each
output block while it is still in cache.

An epilogue is an int32 array with one row per step: (opcode, operand, reversed).
Opcodes are scalar.OPCODES. A binary step's other operand is row `operand` of `chan`
(a per-channel vector; scalars are stored broadcast) or, when operand is -1, the
matching rows of `res` (a residual tensor shaped like the output). `reversed` swaps
the operands (for sub, div, pow and comparisons). Clip reads (low, high) from
chan[operand, 0:2]."""
import numpy as np
from numba import njit

from .scalar import FASTMATH, FIRST_BINARY, binary, unary

RESIDUAL = -1
NO_EPILOGUE = np.zeros((0, 3), np.int32)
NO_CHANNELS = np.zeros((1, 1), np.float32)
NO_RESIDUAL = np.zeros((1, 1), np.float32)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def apply(block, steps, chan, res, row0):
    """Run the epilogue over block (rows, F); block row r is row row0 + r of res."""
    rows, cols = block.shape
    for i in range(steps.shape[0]):
        code, operand, rev = steps[i, 0], steps[i, 1], steps[i, 2]
        if code < FIRST_BINARY:
            low = chan[operand, 0] if operand >= 0 else np.float32(0)
            high = chan[operand, 1] if operand >= 0 else np.float32(0)
            for r in range(rows):
                for c in range(cols):
                    block[r, c] = unary(code, block[r, c], low, high)
        elif operand == RESIDUAL:
            for r in range(rows):
                other = res[row0 + r]
                if rev:
                    for c in range(cols):
                        block[r, c] = binary(code, other[c], block[r, c])
                else:
                    for c in range(cols):
                        block[r, c] = binary(code, block[r, c], other[c])
        else:
            other = chan[operand]
            for r in range(rows):
                if rev:
                    for c in range(cols):
                        block[r, c] = binary(code, other[c], block[r, c])
                else:
                    for c in range(cols):
                        block[r, c] = binary(code, block[r, c], other[c])
