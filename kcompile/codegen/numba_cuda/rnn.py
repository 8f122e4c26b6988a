"""Generated SimpleRNN, LSTM and GRU kernels (Keras semantics: masks hold states and
outputs, go_backwards, return_sequences in processing order).

The input projection x @ kernel + bias runs before as a matrix product into `xw`. Here
one block owns one sequence at a time (blocks loop over the batch): h, c and the gate
pre-activations live in shared memory, the threads split the gate columns of h @
recurrent_kernel (coalesced reads of the kernel), then the units' cell updates; two or
three barriers a time step."""
from __future__ import annotations

from .source import Code

# Activation name -> expression template.
ACTIVATIONS = {
    "tanh": "math.tanh({0})",
    "sigmoid": "(ONE / (ONE + math.exp(-{0})))",
    "relu": "max({0}, ZERO)",
    "linear": "{0}",
    "hard_sigmoid": "min(max({0} * np.float32(1.0 / 6.0) + HALF, ZERO), ONE)",
    "hard_sigmoid_keras2": "min(max({0} * np.float32(0.2) + HALF, ZERO), ONE)",
}


def rnn_kernel(name: str, doc: str, cell: str, units: int, steps: int, act: str, rec: str, flags: dict) -> str:
    """name(xw, rk, rbias, mask, h0, c0, y, h_out, c_out): xw (B, T, G); rk (U, G); rbias (G,)
    (GRU reset_after's recurrent bias, else zeros); mask (B, T) or a dummy; h0/c0 (B or 1, U);
    y (B, T or 1, U); h_out, c_out (B, U)."""
    u = units
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell] * u
    reset_after = flags["reset_after"]
    # GRU with the reset gate before the product multiplies (r * h) by the candidate columns.
    product_cols = 2 * u if cell == "gru" and not reset_after else gates
    A = lambda x: ACTIVATIONS[act].format(f"({x})")  # noqa: E731
    R = lambda x: ACTIVATIONS[rec].format(f"({x})")  # noqa: E731
    code = Code()
    code("@cuda.jit(cache=CACHE)")
    with code.block(f"def {name}(xw, rk, rbias, mask, h0, c0, y, h_out, c_out):"):
        code(f'"""{doc}"""')
        code(f"h = cuda.shared.array({u}, float32)",
             f"c = cuda.shared.array({u}, float32)",
             f"out = cuda.shared.array({u}, float32)",
             f"z = cuda.shared.array({gates}, float32)  # h @ recurrent_kernel")
        if cell == "gru" and not reset_after:
            code(f"keep_update = cuda.shared.array({u}, float32)", f"rh = cuda.shared.array({u}, float32)  # r * h")
        code("tid = cuda.threadIdx.x")
        with code.block("for b in range(cuda.blockIdx.x, xw.shape[0], cuda.gridDim.x):"):
            code("hb = min(b, h0.shape[0] - 1)  # zero states arrive as one row", "cb = min(b, c0.shape[0] - 1)")
            with code.block(f"for j in range(tid, {u}, TPB):"):
                code("h[j] = h0[hb, j]", "c[j] = c0[cb, j]", "out[j] = ZERO")
            code("cuda.syncthreads()")
            with code.block(f"for step in range({steps}):"):
                code(f"t = {steps - 1} - step" if flags["go_backwards"] else "t = step")
                if flags["has_mask"]:
                    with code.block("if mask[b, t] != 0:  # the same for the whole block: barriers inside are safe"):
                        _cell_update(code, cell, u, product_cols, reset_after, A, R)
                else:
                    _cell_update(code, cell, u, product_cols, reset_after, A, R)
                if flags["zero_output_for_mask"] and flags["has_mask"]:
                    with code.block("else:"):
                        with code.block(f"for j in range(tid, {u}, TPB):"):
                            code("out[j] = ZERO")
                if flags["return_sequences"]:
                    with code.block(f"for j in range(tid, {u}, TPB):"):
                        code("y[b, step, j] = out[j]")
                code("cuda.syncthreads()")
            with code.block(f"for j in range(tid, {u}, TPB):"):
                if not flags["return_sequences"]:
                    code("y[b, 0, j] = out[j]")
                code("h_out[b, j] = h[j]", "c_out[b, j] = c[j]")
            code("cuda.syncthreads()")
    return code.text()


def _cell_update(code: Code, cell: str, u: int, product_cols: int, reset_after: bool, A, R):
    """One time step's state update: z = h @ recurrent_kernel, then each unit's cell."""
    with code.block(f"for g in range(tid, {product_cols}, TPB):"):
        code("total = ZERO")
        with code.block(f"for k in range({u}):"):
            code("total += h[k] * rk[k, g]")
        code("z[g] = total")
    code("cuda.syncthreads()")
    with code.block(f"for j in range(tid, {u}, TPB):"):
        if cell == "simple_rnn":
            code(f"h[j] = {A('xw[b, t, j] + z[j]')}")
        elif cell == "lstm":
            code(f"i_gate = {R('xw[b, t, j] + z[j]')}",
                 f"f_gate = {R(f'xw[b, t, {u} + j] + z[{u} + j]')}",
                 f"g_gate = {A(f'xw[b, t, {2 * u} + j] + z[{2 * u} + j]')}",
                 f"o_gate = {R(f'xw[b, t, {3 * u} + j] + z[{3 * u} + j]')}",
                 "c[j] = f_gate * c[j] + i_gate * g_gate",
                 f"h[j] = o_gate * {A('c[j]')}")
        elif reset_after:
            code(f"update = {R('xw[b, t, j] + z[j] + rbias[j]')}",
                 f"reset = {R(f'xw[b, t, {u} + j] + z[{u} + j] + rbias[{u} + j]')}",
                 f"candidate = {A(f'xw[b, t, {2 * u} + j] + reset * (z[{2 * u} + j] + rbias[{2 * u} + j])')}",
                 "h[j] = update * h[j] + (ONE - update) * candidate")
        else:
            code(f"keep_update[j] = {R('xw[b, t, j] + z[j]')}",
                 f"rh[j] = {R(f'xw[b, t, {u} + j] + z[{u} + j]')} * h[j]")
    if cell == "gru" and not reset_after:
        code("cuda.syncthreads()")
        with code.block(f"for j in range(tid, {u}, TPB):"):
            code(f"total = xw[b, t, {2 * u} + j]")
            with code.block(f"for k in range({u}):"):
                code(f"total += rh[k] * rk[k, {2 * u} + j]")
            code(f"candidate = {A('total')}",
                 "h[j] = keep_update[j] * h[j] + (ONE - keep_update[j]) * candidate")
    with code.block(f"for j in range(tid, {u}, TPB):"):
        code("out[j] = h[j]")
