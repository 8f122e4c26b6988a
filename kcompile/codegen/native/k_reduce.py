"""Reductions, softmax / log_softmax, and pooling.

A reduction or softmax sees its input as (outer, R, inner): R the reduced extent,
inner the contiguous extent after it. With inner == 1 the reduced run is contiguous
and is summed in vectors; otherwise the inner axis is the vector axis. Reductions
over axes that are not adjacent first copy the input with those axes moved last."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...errors import KcompileError
from .irhelp import F32, Sym, const, i64
from .k_movement import emit_transpose_copy
from .mathops import exp, fmax, fmin

INIT = {"reduce_sum": 0.0, "reduce_mean": 0.0, "reduce_max": float("-inf"), "reduce_min": float("inf")}


def _prod(dims) -> Sym:
    n = Sym(1)
    for d in dims:
        n = n * d
    return n


def three_axes(nm, value, first: int, last: int) -> tuple:
    dims = nm.dims(value)
    return _prod(dims[:first]), _prod(dims[first:last + 1]), _prod(dims[last + 1:])


def _combine(f, op, a, b):
    if op in ("reduce_sum", "reduce_mean"):
        return f.b.fadd(a, b)
    if op == "reduce_max":
        return fmax(f, a, b)
    return fmin(f, a, b)


def _horizontal(f, op, v):
    w = v.type.count
    if op in ("reduce_sum", "reduce_mean"):
        fn = f.declare(f"llvm.vector.reduce.fadd.v{w}f32", F32, [F32, v.type])
        return f.b.call(fn, [ir.Constant(F32, 0.0), v], fastmath=("reassoc",))
    name = "fmax" if op == "reduce_max" else "fmin"
    fn = f.declare(f"llvm.vector.reduce.{name}.v{w}f32", F32, [v.type])
    return f.b.call(fn, [v])


def reduce_run(f, op: str, ptr, base, n, width: int):
    """op over ptr[base : base + n] (contiguous) -> a float."""
    init = INIT[op]
    vty = ir.VectorType(F32, width)
    vacc = f.var(vty, const(vty, init))
    sacc = f.var(F32, const(F32, init))
    b = f.b

    def body(i, w):
        slot = vacc if w > 1 else sacc
        b.store(_combine(f, op, b.load(slot), f.load(ptr, b.add(base, i), w)), slot)

    f.vloop(0, n, width, body)
    return _combine(f, op, _horizontal(f, op, b.load(vacc)), b.load(sacc))


def lower_reduce(nm, node):
    x, out = node.inputs[0], node.output
    if x.dtype != "float32":
        raise KcompileError(f"native backend: {node.op} supports float32 only")
    axes = sorted(a % x.rank for a in node.attrs["axes"])
    source = x
    if axes != list(range(axes[0], axes[-1] + 1)):
        perm = [i for i in range(x.rank) if i not in axes] + axes
        source = emit_transpose_copy(nm, x, perm, f"{x.name}_moved")
        first, last = x.rank - len(axes), x.rank - 1
    else:
        first, last = axes[0], axes[-1]
    outer, R, inner = three_axes(nm, source, first, last)
    emit_reduce(nm, f"{out.name}_{node.op}", node.op, source, out, outer, R.static(), inner)


def lower_reduce_batch(nm, node):
    """Sum over the dynamic axis (gradients of parameters): R depends on the batch."""
    x, out = node.inputs[0], node.output
    if x.dtype != "float32":
        raise KcompileError("native backend: reduce_batch supports float32 only")
    axis = node.attrs["axis"] % x.rank
    outer, R, inner = three_axes(nm, x, axis, axis)
    emit_reduce(nm, f"{out.name}_reduce_batch", "reduce_sum", x, out, outer, R, inner)


def emit_reduce(nm, label, op, source, out, outer, R, inner):
    """out[o, j] = op over r of source[o, r, j]; R is an int or a Sym."""
    W = nm.isa.width

    def body(f, lo, hi):
        b = f.b
        src = nm.ptr(f, source)
        dst = nm.ptr(f, out)
        n_red = f.sym(R)
        with f.loop(lo, hi, name="o") as o:
            if inner == Sym(1):
                value = reduce_run(f, op, src, b.mul(o, n_red), n_red, W)
                if op == "reduce_mean":
                    value = b.fdiv(value, ir.Constant(F32, float(R)))
                f.store(value, dst, o)
            else:
                n_inner = f.sym(inner)

                def lanes(j, w):
                    ty = ir.VectorType(F32, w) if w > 1 else F32
                    acc = f.var(ty, const(ty, INIT[op]))
                    with f.loop(0, n_red, name="r") as r:
                        idx = b.add(b.mul(b.add(b.mul(o, n_red), r), n_inner), j)
                        b.store(_combine(f, op, b.load(acc), f.load(src, idx, w)), acc)
                    value = b.load(acc)
                    if op == "reduce_mean":
                        value = b.fdiv(value, const(ty, float(R)))
                    f.store(value, dst, b.add(b.mul(o, n_inner), j))

                f.vloop(0, n_inner, W, lanes)

    nm.step(label, body, ntasks=outer, cost=nm.count(source))


def lower_softmax(nm, node):
    x, out = node.inputs[0], node.output
    if x.dtype != "float32":
        raise KcompileError(f"native backend: {node.op} supports float32 only")
    axis = node.attrs["axis"] % x.rank
    outer, R, inner = three_axes(nm, x, axis, axis)
    R = R.static()
    log = node.op == "log_softmax"
    W = nm.isa.width

    def body(f, lo, hi):
        b = f.b
        src, dst = nm.ptr(f, x), nm.ptr(f, out)
        with f.loop(lo, hi, name="o") as o:
            if inner == Sym(1):
                base = b.mul(o, i64(R))
                m = reduce_run(f, "reduce_max", src, base, R, W)
                vty = ir.VectorType(F32, W)
                vsum, ssum = f.var(vty, const(vty, 0.0)), f.var(F32, const(F32, 0.0))

                def expsum(i, w):
                    e = exp(f, b.fsub(f.load(src, b.add(base, i), w), f.splat(m, w)))
                    if not log:
                        f.store(e, dst, b.add(base, i))
                    slot = vsum if w > 1 else ssum
                    b.store(b.fadd(b.load(slot), e), slot)

                f.vloop(0, R, W, expsum)
                total = b.fadd(_horizontal(f, "reduce_sum", b.load(vsum)), b.load(ssum))
                if log:
                    logsum = f.intrinsic("log", [total])

                    def write(i, w):
                        shifted = b.fsub(f.load(src, b.add(base, i), w), f.splat(m, w))
                        f.store(b.fsub(shifted, f.splat(logsum, w)), dst, b.add(base, i))
                else:
                    def write(i, w):
                        f.store(b.fdiv(f.load(dst, b.add(base, i), w), f.splat(total, w)), dst, b.add(base, i))

                f.vloop(0, R, W, write)
            else:
                n_inner = f.sym(inner)

                def lanes(j, w):
                    ty = ir.VectorType(F32, w) if w > 1 else F32

                    def at(r):
                        return b.add(b.mul(b.add(b.mul(o, i64(R)), r), n_inner), j)

                    m = f.var(ty, const(ty, float("-inf")))
                    with f.loop(0, R, name="r1") as r:
                        b.store(fmax(f, b.load(m), f.load(src, at(r), w)), m)
                    mv = b.load(m)
                    s = f.var(ty, const(ty, 0.0))
                    with f.loop(0, R, name="r2") as r:
                        e = exp(f, b.fsub(f.load(src, at(r), w), mv))
                        if not log:
                            f.store(e, dst, at(r))
                        b.store(b.fadd(b.load(s), e), s)
                    sv = b.load(s)
                    logsum = f.intrinsic("log", [sv]) if log else None
                    with f.loop(0, R, name="r3") as r:
                        if log:
                            f.store(b.fsub(b.fsub(f.load(src, at(r), w), mv), logsum), dst, at(r))
                        else:
                            f.store(b.fdiv(f.load(dst, at(r), w), sv), dst, at(r))

                f.vloop(0, n_inner, W, lanes)

    nm.step(f"{out.name}_{node.op}", body, ntasks=outer, cost=nm.count(x) * 8)


def _as3(values, n, fill):
    return (fill,) * (3 - n) + tuple(values)


def lower_pool(nm, node):
    x, out = node.inputs[0], node.output
    if x.dtype != "float32":
        raise KcompileError(f"native backend: {node.op} supports float32 only")
    nsp = x.rank - 2
    if nsp > 3:
        raise KcompileError(f"native backend: {nsp}-D pooling is not supported")
    a = node.attrs
    window = _as3(a["window"], nsp, 1)
    strides = _as3(a["strides"], nsp, 1)
    lows = _as3([p[0] for p in a["pads"]], nsp, 0)
    spatial = _as3(x.shape[1:-1], nsp, 1)
    osp = _as3(out.shape[1:-1], nsp, 1)
    C = x.shape[-1]
    is_max = node.op == "max_pool"
    include_pad = bool(a.get("count_include_pad", False))
    W = nm.isa.width
    batch = nm.dims(x)[0]

    def body(f, lo, hi):
        b = f.b
        src, dst = nm.ptr(f, x), nm.ptr(f, out)
        with f.loop(lo, hi, name="prow") as r:
            n, rem = b.sdiv(r, i64(osp[0] * osp[1])), b.srem(r, i64(osp[0] * osp[1]))
            o12 = (b.sdiv(rem, i64(osp[1])), b.srem(rem, i64(osp[1])))
            with f.loop(0, osp[2], name="o3") as o3:
                bounds = []
                for o, s, lo_, k, size in zip(o12 + (o3,), strides, lows, window, spatial):
                    start = b.sub(b.mul(o, i64(s)), i64(lo_))
                    klo = f.max(b.sub(i64(0), start), 0)
                    khi = f.min(b.sub(i64(size), start), k)
                    bounds.append((start, klo, khi))
                count = i64(1)
                for _, klo, khi in bounds:
                    count = b.mul(count, f.max(b.sub(khi, klo), 0))
                divisor = b.sitofp(count, F32) if not include_pad else ir.Constant(F32, float(np.prod(window)))
                obase = b.mul(b.add(b.mul(b.add(b.mul(n, i64(osp[0])), o12[0]), i64(osp[1] * osp[2])),
                                    b.add(b.mul(o12[1], i64(osp[2])), o3)), i64(C))

                def lanes(c, w):
                    ty = ir.VectorType(F32, w) if w > 1 else F32
                    acc = f.var(ty, const(ty, float("-inf") if is_max else 0.0))
                    (s1, l1, h1), (s2, l2, h2), (s3, l3, h3) = bounds
                    with f.loop(l1, h1, name="k1") as k1:
                        i1 = b.add(b.mul(n, i64(spatial[0])), b.add(s1, k1))
                        with f.loop(l2, h2, name="k2") as k2:
                            i2 = b.add(b.mul(i1, i64(spatial[1])), b.add(s2, k2))
                            with f.loop(l3, h3, name="k3") as k3:
                                i3 = b.add(b.mul(i2, i64(spatial[2])), b.add(s3, k3))
                                v = f.load(src, b.add(b.mul(i3, i64(C)), c), w)
                                b.store(fmax(f, b.load(acc), v) if is_max else b.fadd(b.load(acc), v), acc)
                    value = b.load(acc)
                    if not is_max:
                        value = b.fdiv(value, f.splat(divisor, w))
                    f.store(value, dst, b.add(obase, c))

                f.vloop(0, C, W, lanes)

    rows = Sym(osp[0] * osp[1]) * batch
    nm.step(f"{out.name}_{node.op}", body, ntasks=rows, cost=nm.count(out) * int(np.prod(window)))


__all__ = ["emit_reduce", "lower_pool", "lower_reduce", "lower_reduce_batch", "lower_softmax", "reduce_run"]
