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

from .scalar import FASTMATH, FIRST_BINARY, OPCODES, binary, unary

RESIDUAL = -1
NO_EPILOGUE = np.zeros((0, 3), np.int32)
NO_CHANNELS = np.zeros((1, 1), np.float32)
NO_RESIDUAL = np.zeros((1, 1), np.float32)


# The common steps get a loop of their own: dispatching on the opcode per element (the
# generic `unary`/`binary` below) kept the loop from vectorizing: 1-1.5 ns an element
# against 0.13-0.4 for these loops (ResNet20's input gradients: 82 -> 73 ms a step).
_RELU, _ADD, _SUB, _MUL, _MAXIMUM = OPCODES["relu"], OPCODES["add"], OPCODES["sub"], OPCODES["mul"], OPCODES["maximum"]
_RELU_GRAD = OPCODES["relu_grad"]


@njit(inline="always")
def _unary_rows(block, code, low, high):
    rows, n = block.shape
    if code == _RELU:
        for r in range(rows):
            for c in range(n):
                block[r, c] = max(block[r, c], np.float32(0))
    else:
        for r in range(rows):
            for c in range(n):
                block[r, c] = unary(code, block[r, c], low, high)


@njit(inline="always")
def _binary_rows(block, source, first, step, code, rev):
    """block row r (op)= source row first + r * step (step 0: one per-channel vector);
    the operands swapped when rev."""
    rows, n = block.shape
    if code == _ADD:
        for r in range(rows):
            for c in range(n):
                block[r, c] += source[first + r * step, c]
    elif code == _MUL:
        for r in range(rows):
            for c in range(n):
                block[r, c] *= source[first + r * step, c]
    elif code == _SUB and not rev:
        for r in range(rows):
            for c in range(n):
                block[r, c] -= source[first + r * step, c]
    elif code == _SUB:
        for r in range(rows):
            for c in range(n):
                block[r, c] = source[first + r * step, c] - block[r, c]
    elif code == _MAXIMUM and not rev:  # max(a, b) and max(b, a) differ on NaN
        for r in range(rows):
            for c in range(n):
                block[r, c] = max(block[r, c], source[first + r * step, c])
    elif code == _RELU_GRAD and not rev:  # an input gradient through the ReLU that made `source`
        for r in range(rows):
            for c in range(n):
                block[r, c] = block[r, c] if source[first + r * step, c] > 0 else np.float32(0)
    else:
        for r in range(rows):
            for c in range(n):
                a, b = block[r, c], source[first + r * step, c]
                block[r, c] = binary(code, b, a) if rev else binary(code, a, b)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def apply(block, steps, chan, res, row0):
    """Run the epilogue over block (rows, F); block row r is row row0 + r of res."""
    for i in range(steps.shape[0]):
        code, operand, rev = steps[i, 0], steps[i, 1], steps[i, 2]
        if code < FIRST_BINARY:
            low = chan[operand, 0] if operand >= 0 else np.float32(0)
            high = chan[operand, 1] if operand >= 0 else np.float32(0)
            _unary_rows(block, code, low, high)
        elif operand == RESIDUAL:
            _binary_rows(block, res, row0, 1, code, rev)
        else:
            _binary_rows(block, chan, operand, 0, code, rev)
