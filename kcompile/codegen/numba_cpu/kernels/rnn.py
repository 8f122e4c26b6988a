"""SimpleRNN, LSTM and GRU over whole sequences (Keras semantics: masks hold states and
outputs, go_backwards, return_sequences in processing order).

The input projection x @ kernel + bias is one matmul before this kernel (xw); the loop
here adds the recurrent part step by step, samples in parallel."""
import math

import numpy as np
from numba import njit, prange

from .scalar import FASTMATH, sigmoid

SIMPLE_RNN, LSTM, GRU = 0, 1, 2
ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2, "linear": 3, "hard_sigmoid": 4, "hard_sigmoid_keras2": 5}
CELLS = {"simple_rnn": SIMPLE_RNN, "lstm": LSTM, "gru": GRU}


@njit(inline="always")
def activate(code, x):
    if code == 0:
        return math.tanh(x)
    if code == 1:
        return sigmoid(x)
    if code == 2:
        return max(x, np.float32(0))
    if code == 3:
        return x
    slope = np.float32(1.0 / 6.0) if code == 4 else np.float32(0.2)
    return min(max(x * slope + np.float32(0.5), np.float32(0)), np.float32(1))


@njit(cache=True, nogil=True, parallel=True, fastmath=FASTMATH)
def rnn(cell, xw, rk, rbias, mask, h0, c0, y, h_out, c_out, act, rec, flags):
    """y is (B, T, U) with return_sequences, else (B, 1, U);
    flags = (go_backwards, return_sequences, zero_output_for_mask, has_mask, reset_after)."""
    go_backwards, return_sequences, zero_output, has_mask, reset_after = flags
    batch, steps, gates = xw.shape
    units = rk.shape[0]
    for b in prange(batch):
        row = np.int64(b)  # prange indices are unsigned; mixing them with ints makes floats
        h = h0[min(row, h0.shape[0] - 1)].copy()  # zero states arrive as one row
        c = c0[min(row, c0.shape[0] - 1)].copy()
        out = np.zeros(units, np.float32)
        z = np.empty(gates, np.float32)
        for step in range(steps):
            t = steps - 1 - step if go_backwards else step
            keep = (not has_mask) or mask[b, t] != 0
            if keep:
                # z = recurrent part; for GRU with reset before, only the z and r columns.
                z[:] = 0
                cols = 2 * units if cell == GRU and not reset_after else gates
                for k in range(units):
                    hk = h[k]
                    row = rk[k]
                    for g in range(cols):
                        z[g] += hk * row[g]
                x = xw[b, t]
                if cell == SIMPLE_RNN:
                    for u in range(units):
                        h[u] = activate(act, x[u] + z[u])
                elif cell == LSTM:
                    for u in range(units):
                        i = activate(rec, x[u] + z[u])
                        f = activate(rec, x[units + u] + z[units + u])
                        g = activate(act, x[2 * units + u] + z[2 * units + u])
                        o = activate(rec, x[3 * units + u] + z[3 * units + u])
                        c[u] = f * c[u] + i * g
                        h[u] = o * activate(act, c[u])
                else:
                    hh = np.empty(units, np.float32)
                    update = np.empty(units, np.float32)
                    if reset_after:
                        for u in range(units):
                            update[u] = activate(rec, x[u] + z[u] + rbias[u])
                            r = activate(rec, x[units + u] + z[units + u] + rbias[units + u])
                            hh[u] = activate(act, x[2 * units + u] + r * (z[2 * units + u] + rbias[2 * units + u]))
                    else:
                        reset_h = np.empty(units, np.float32)
                        for u in range(units):
                            update[u] = activate(rec, x[u] + z[u])
                            reset_h[u] = activate(rec, x[units + u] + z[units + u]) * h[u]
                        for u in range(units):
                            acc = x[2 * units + u]
                            for k in range(units):
                                acc += reset_h[k] * rk[k, 2 * units + u]
                            hh[u] = activate(act, acc)
                    for u in range(units):
                        h[u] = update[u] * h[u] + (1 - update[u]) * hh[u]
                out[:] = h
            elif zero_output:
                out[:] = 0
            if return_sequences:
                y[b, step] = out
        if not return_sequences:
            y[b, 0] = out
        h_out[b] = h
        c_out[b] = c
