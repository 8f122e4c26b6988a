"""simple_rnn, lstm and gru with Keras semantics (see kcompile.ir.ops.rnn).

The input projection x @ kernel + bias runs for all time steps at once through the
GEMM kernel into scratch; the recurrence then runs per sample (samples are the
parallel tasks), each step a vector-times-matrix product with the recurrent kernel
followed by the cell's gate arithmetic in vectors over the units."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...errors import KcompileError
from ...ir.ops.rnn import ACTIVATIONS
from .irhelp import F32, Sym, const, i64
from .k_gemm import Gemm, emit_gemm
from .mathops import fmax, fmin, sigmoid, tanh

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def activation(f, name: str, x):
    b = f.b
    if name == "tanh":
        return tanh(f, x)
    if name == "sigmoid":
        return sigmoid(f, x)
    if name == "relu":
        return b.select(b.fcmp_ordered("<", x, const(x.type, 0.0)), const(x.type, 0.0), x)
    if name == "linear":
        return x
    if name in ("hard_sigmoid", "hard_sigmoid_keras2"):
        slope = float(np.float32(1 / 6 if name == "hard_sigmoid" else 0.2))
        y = b.fadd(b.fmul(x, const(x.type, slope)), const(x.type, 0.5))
        return fmin(f, fmax(f, y, const(x.type, 0.0)), const(x.type, 1.0))
    raise KcompileError(f"RNN activation {name!r} is not supported (use one of {sorted(ACTIVATIONS)})")


def _param(nm, value, what):
    if not nm.graph.is_param(value):
        raise KcompileError(f"native backend: the {what} of an RNN must be a constant")
    return np.asarray(nm.graph.params[value.name], np.float32)


def lower_rnn(nm, node):
    a = node.attrs
    op = node.op
    x, kernel, recurrent, bias = node.inputs[:4]
    rest = list(node.inputs[4:])
    mask = rest.pop(0) if a["has_mask"] else None
    states = rest
    units = a["units"]
    G = GATES[op]
    GU = G * units
    T, F = x.shape[1], x.shape[2]
    kernel_w = _param(nm, kernel, "kernel")
    rec_w = _param(nm, recurrent, "recurrent kernel")
    bias_w = _param(nm, bias, "bias")
    reset_after = bool(a.get("reset_after", False))
    input_bias = bias_w[0] if bias_w.ndim == 2 else bias_w
    rec_bias = bias_w[1] if bias_w.ndim == 2 else np.zeros(GU, np.float32)
    act_name = a["activation"]
    rec_name = a.get("recurrent_activation", "sigmoid")
    factor = nm.factor(x)

    # 1. xw = x @ kernel + input bias, every time step at once.
    xw = nm.temp(f"{node.outputs[0].name}_xw", (None, T, GU), "float32", factor)
    rows = nm.count(x)
    rows = Sym(rows.coef // F, rows.dyn)
    add_bias = (("add", (("acc",), ("in", 0)), ()),)
    emit_gemm(nm, Gemm(f"{xw.name}_proj", rows, lambda f, r: f.b.gep(nm.ptr(f, x), [f.b.mul(r, i64(F))]),
                       [(0, F)], kernel_w, 1, 0, xw, add_bias, (np.ascontiguousarray(input_bias),)))

    W = nm.isa.width
    go_backwards, return_sequences = bool(a["go_backwards"]), bool(a["return_sequences"])
    zero_output = bool(a["zero_output_for_mask"])
    outs = node.outputs
    batch = nm.dims(x)[0]

    def body(f, lo, hi):
        b = f.b
        pxw, prk = nm.ptr(f, xw), nm.const_ptr(f, rec_w)
        prb = nm.const_ptr(f, rec_bias.astype(np.float32))
        py = nm.ptr(f, outs[0])
        ph = nm.ptr(f, outs[1])
        pc = nm.ptr(f, outs[2]) if op == "lstm" else None
        pmask = nm.ptr(f, mask) if mask is not None else None
        pstates = [nm.ptr(f, s) for s in states]
        h = f.alloca(F32, units, name="h")
        c = f.alloca(F32, units, name="c")
        prev = f.alloca(F32, units, name="prev")
        hn = f.alloca(F32, units, name="hn")
        cn = f.alloca(F32, units, name="cn")
        hr = f.alloca(F32, GU, name="hr")
        rbuf = f.alloca(F32, units, name="rh")

        def fill(dst, src_ptr, base, n):
            if src_ptr is None:
                f.vloop(0, n, W, lambda j, w: f.store(const(_ty(w), 0.0), dst, j))
            else:
                f.vloop(0, n, W, lambda j, w: f.store(f.load(src_ptr, b.add(base, j), w), dst, j))

        def vecmat(dst, vec, col0, ncols, init_bias):
            """dst[0:ncols] = vec @ rec_w[:, col0:col0+ncols] (+ rec_bias[col0:...])."""
            if init_bias:
                fill(dst, prb, i64(col0), ncols)
            else:
                fill(dst, None, None, ncols)
            with f.loop(0, units, name="k") as k:
                hv = f.load(vec, k)
                row = b.add(b.mul(k, i64(GU)), i64(col0))

                def axpy(j, w):
                    prod = b.fmul(f.splat(hv, w), f.load(prk, b.add(row, j), w))
                    f.store(b.fadd(f.load(dst, j, w), prod), dst, j)

                f.vloop(0, ncols, W, axpy)

        with f.loop(lo, hi, name="sample") as s:
            sbase = b.mul(s, i64(units))
            fill(h, pstates[0] if states else None, sbase, units)
            fill(c, pstates[1] if len(states) > 1 else None, sbase, units)
            fill(prev, None, None, units)
            with f.loop(0, T, name="step") as step:
                t = b.sub(i64(T - 1), step) if go_backwards else step
                xrow = b.mul(b.add(b.mul(s, i64(T)), t), i64(GU))

                def xw_at(gate, j, w):
                    return f.load(pxw, b.add(xrow, b.add(i64(gate * units), j)), w)

                def hr_at(gate, j, w):
                    return f.load(hr, b.add(i64(gate * units), j), w)

                if op == "simple_rnn":
                    vecmat(hr, h, 0, GU, False)
                    f.vloop(0, units, W, lambda j, w: f.store(
                        activation(f, act_name, b.fadd(xw_at(0, j, w), hr_at(0, j, w))), hn, j))
                elif op == "lstm":
                    vecmat(hr, h, 0, GU, False)

                    def lstm(j, w):
                        z = [b.fadd(xw_at(g, j, w), hr_at(g, j, w)) for g in range(4)]
                        i_, f_, g_, o_ = z
                        cnew = b.fadd(b.fmul(activation(f, rec_name, f_), f.load(c, j, w)),
                                      b.fmul(activation(f, rec_name, i_), activation(f, act_name, g_)))
                        f.store(cnew, cn, j)
                        f.store(b.fmul(activation(f, rec_name, o_), activation(f, act_name, cnew)), hn, j)

                    f.vloop(0, units, W, lstm)
                elif reset_after:
                    vecmat(hr, h, 0, GU, True)

                    def gru(j, w):
                        z = activation(f, rec_name, b.fadd(xw_at(0, j, w), hr_at(0, j, w)))
                        r = activation(f, rec_name, b.fadd(xw_at(1, j, w), hr_at(1, j, w)))
                        hh = activation(f, act_name, b.fadd(xw_at(2, j, w), b.fmul(r, hr_at(2, j, w))))
                        hv = f.load(h, j, w)
                        one = const(_ty(w), 1.0)
                        f.store(b.fadd(b.fmul(z, hv), b.fmul(b.fsub(one, z), hh)), hn, j)

                    f.vloop(0, units, W, gru)
                else:
                    vecmat(hr, h, 0, 2 * units, False)

                    def gates(j, w):
                        z = activation(f, rec_name, b.fadd(xw_at(0, j, w), hr_at(0, j, w)))
                        r = activation(f, rec_name, b.fadd(xw_at(1, j, w), hr_at(1, j, w)))
                        f.store(z, cn, j)  # cn holds z for this cell
                        f.store(b.fmul(r, f.load(h, j, w)), rbuf, j)

                    f.vloop(0, units, W, gates)
                    vecmat(hr, rbuf, 2 * units, units, False)  # hr[0:units] = (r * h) @ K_h

                    def gru_h(j, w):
                        z = f.load(cn, j, w)
                        hh = activation(f, act_name, b.fadd(xw_at(2, j, w), f.load(hr, j, w)))
                        one = const(_ty(w), 1.0)
                        f.store(b.fadd(b.fmul(z, f.load(h, j, w)), b.fmul(b.fsub(one, z), hh)), hn, j)

                    f.vloop(0, units, W, gru_h)

                if mask is not None:
                    mv = f.load(pmask, b.add(b.mul(s, i64(T)), t))
                    keep = (b.fcmp_unordered("!=", mv, const(mv.type, 0.0)) if mv.type == F32
                            else b.icmp_signed("!=", mv, const(mv.type, 0)))
                else:
                    keep = ir.Constant(ir.IntType(1), 1)
                yrow = b.mul(b.add(b.mul(s, i64(T)), step), i64(units))

                def commit(j, w):
                    new_h = f.load(hn, j, w)
                    hold = const(_ty(w), 0.0) if zero_output else f.load(prev, j, w)
                    out = b.select(keep, new_h, hold)
                    f.store(out, prev, j)
                    if return_sequences:
                        f.store(out, py, b.add(yrow, j))
                    f.store(b.select(keep, new_h, f.load(h, j, w)), h, j)
                    if op == "lstm":
                        f.store(b.select(keep, f.load(cn, j, w), f.load(c, j, w)), c, j)

                f.vloop(0, units, W, commit)
            if not return_sequences:
                f.vloop(0, units, W, lambda j, w: f.store(f.load(prev, j, w), py, b.add(sbase, j)))
            f.vloop(0, units, W, lambda j, w: f.store(f.load(h, j, w), ph, b.add(sbase, j)))
            if op == "lstm":
                f.vloop(0, units, W, lambda j, w: f.store(f.load(c, j, w), pc, b.add(sbase, j)))

    nm.step(f"{outs[0].name}_{op}", body, ntasks=batch, cost=batch * (T * 2 * units * GU))


def _ty(w):
    return ir.VectorType(F32, w) if w > 1 else F32

