"""The primitives gradient rules emit (kcompile/ir/ops/grad_ops.py): a native library
is for inference, but the table covers every primitive so that any graph lowers.
These kernels are plain loops; they sum across the batch, so their tasks never split
a sum between threads."""
from __future__ import annotations

from llvmlite import ir

from ...errors import KcompileError
from ..common import reject_epilogue
from .irhelp import F32, I32, I8P, I64, VOID, Sym, const, i64, ir_type
from .k_movement import KC_ERROR_INPUT_VALUE


def _as3(values, n, fill):
    return (fill,) * (3 - n) + tuple(values)


def _zeros(w, dtype="float32"):
    return const(ir_type(dtype, w), 0)


def lower_conv_weight_grad(nm, node):
    """out[k, c, f] = sum over n, o of x[n, o*s + k*d - pad, c] * g[n, o, f]."""
    x, g = node.inputs
    out = node.output
    if x.dtype != "float32":
        raise KcompileError("native backend: conv_weight_grad supports float32 only")
    a = node.attrs
    nsp = x.rank - 2
    window = _as3(a["window"], nsp, 1)
    strides = _as3(a["strides"], nsp, 1)
    dil = _as3(a["dilations"], nsp, 1)
    lows = _as3([p[0] for p in a["pads"]], nsp, 0)
    spatial = _as3(x.shape[1:-1], nsp, 1)
    osp = _as3(g.shape[1:-1], nsp, 1)
    C, F = x.shape[-1], g.shape[-1]
    positions = window[0] * window[1] * window[2]
    W = nm.isa.width
    batch = nm.dims(x)[0]

    def body(f, lo, hi):
        b = f.b
        px, pg, po = nm.ptr(f, x), nm.ptr(f, g), nm.ptr(f, out)
        with f.loop(lo, hi, name="kc") as t:
            kp, c = b.sdiv(t, i64(C)), b.srem(t, i64(C))
            ks = (b.sdiv(kp, i64(window[1] * window[2])), b.srem(b.sdiv(kp, i64(window[2])), i64(window[1])),
                  b.srem(kp, i64(window[2])))
            orow = b.mul(t, i64(F))
            f.vloop(0, F, W, lambda j, w: f.store(_zeros(w), po, b.add(orow, j)))
            with f.loop(0, batch, name="n") as n:
                with f.loop(0, osp[0] * osp[1] * osp[2], name="op") as op:
                    o = (b.sdiv(op, i64(osp[1] * osp[2])), b.srem(b.sdiv(op, i64(osp[2])), i64(osp[1])),
                         b.srem(op, i64(osp[2])))
                    valid = ir.Constant(ir.IntType(1), 1)
                    idx = []
                    for oo, k, s, d, lo_, size in zip(o, ks, strides, dil, lows, spatial):
                        i_ = b.sub(b.add(b.mul(oo, i64(s)), b.mul(k, i64(d))), i64(lo_))
                        valid = b.and_(valid, b.and_(b.icmp_signed(">=", i_, i64(0)),
                                                     b.icmp_signed("<", i_, i64(size))))
                        idx.append(i_)
                    with f.if_then(valid):
                        pix = b.add(b.mul(b.add(b.mul(b.add(b.mul(n, i64(spatial[0])), idx[0]), i64(spatial[1])),
                                                idx[1]), i64(spatial[2])), idx[2])
                        xv = f.load(px, b.add(b.mul(pix, i64(C)), c))
                        grow = b.mul(b.add(b.mul(n, i64(osp[0] * osp[1] * osp[2])), op), i64(F))

                        def axpy(j, w):
                            prod = b.fmul(f.splat(xv, w), f.load(pg, b.add(grow, j), w))
                            f.store(b.fadd(f.load(po, b.add(orow, j), w), prod), po, b.add(orow, j))

                        f.vloop(0, F, W, axpy)

    nm.step(f"{out.name}_conv_weight_grad", body, ntasks=positions * C,
            cost=nm.count(g) * (2 * positions * C))


def lower_max_pool_grad(nm, node):
    """Each window's gradient goes to its first maximum; samples are the tasks (windows
    of one sample overlap, samples never do)."""
    reject_epilogue(node, "native")
    x, g = node.inputs
    out = node.output
    if x.dtype != "float32":
        raise KcompileError("native backend: max_pool_grad supports float32 only")
    a = node.attrs
    nsp = x.rank - 2
    window = _as3(a["window"], nsp, 1)
    strides = _as3(a["strides"], nsp, 1)
    lows = _as3([p[0] for p in a["pads"]], nsp, 0)
    spatial = _as3(x.shape[1:-1], nsp, 1)
    osp = _as3(g.shape[1:-1], nsp, 1)
    C = x.shape[-1]
    image = spatial[0] * spatial[1] * spatial[2] * C
    n_out = osp[0] * osp[1] * osp[2]
    W = nm.isa.width

    def body(f, lo, hi):
        b = f.b
        px, pg, po = nm.ptr(f, x), nm.ptr(f, g), nm.ptr(f, out)
        best = f.var(F32, name="best")
        where = f.var(I64, name="where")
        with f.loop(lo, hi, name="n") as n:
            base = b.mul(n, i64(image))
            f.vloop(0, image, W, lambda j, w: f.store(_zeros(w), po, b.add(base, j)))
            with f.loop(0, n_out, name="op") as op:
                o = (b.sdiv(op, i64(osp[1] * osp[2])), b.srem(b.sdiv(op, i64(osp[2])), i64(osp[1])),
                     b.srem(op, i64(osp[2])))
                with f.loop(0, C, name="c") as c:
                    b.store(ir.Constant(F32, float("-inf")), best)
                    b.store(i64(-1), where)
                    with f.loop(0, window[0] * window[1] * window[2], name="kp") as kp:
                        ks = (b.sdiv(kp, i64(window[1] * window[2])),
                              b.srem(b.sdiv(kp, i64(window[2])), i64(window[1])), b.srem(kp, i64(window[2])))
                        valid = ir.Constant(ir.IntType(1), 1)
                        idx = []
                        for oo, k, s, lo_, size in zip(o, ks, strides, lows, spatial):
                            i_ = b.sub(b.add(b.mul(oo, i64(s)), k), i64(lo_))
                            valid = b.and_(valid, b.and_(b.icmp_signed(">=", i_, i64(0)),
                                                         b.icmp_signed("<", i_, i64(size))))
                            idx.append(i_)
                        with f.if_then(valid):
                            pos = b.add(b.mul(b.add(b.mul(idx[0], i64(spatial[1])), idx[1]), i64(spatial[2])), idx[2])
                            at = b.add(base, b.add(b.mul(pos, i64(C)), c))
                            v = f.load(px, at)
                            with f.if_then(b.or_(b.fcmp_ordered(">", v, b.load(best)),
                                                 b.icmp_signed("<", b.load(where), i64(0)))):
                                b.store(v, best)
                                b.store(at, where)
                    target = b.load(where)
                    with f.if_then(b.icmp_signed(">=", target, i64(0))):
                        gv = f.load(pg, b.add(b.mul(b.add(b.mul(n, i64(n_out)), op), i64(C)), c))
                        f.store(b.fadd(f.load(po, target), gv), po, target)

    batch = nm.dims(x)[0]
    nm.step(f"{out.name}_max_pool_grad", body, ntasks=batch, cost=nm.count(g) * (window[0] * window[1] * window[2]))


def lower_scatter_add(nm, node):
    """out = zeros; out[indices[i]] += updates[i]: one task (repeated indices add up)."""
    indices, updates = node.inputs
    out = node.output
    if updates.dtype != "float32":
        raise KcompileError("native backend: scatter_add supports float32 only")
    rows = node.attrs["rows"]
    row = Sym(1)
    for d in nm.dims(out)[1:]:
        row = row * d
    row = row.static()
    count = nm.count(indices)
    W = nm.isa.width

    def body(f, lo, hi):
        b = f.b
        pi, pu, po = nm.ptr(f, indices), nm.ptr(f, updates), nm.ptr(f, out)
        report = f.declare("kcrt_report_error", VOID, [I8P, I32])
        f.vloop(0, rows * row, W, lambda j, w: f.store(_zeros(w), po, j))
        with f.loop(0, count, name="i") as i:
            idx = f.load(pi, i)
            idx = b.sext(idx, I64) if idx.type.width < 64 else idx
            ok = b.and_(b.icmp_signed(">=", idx, i64(0)), b.icmp_signed("<", idx, i64(rows)))
            with b.if_else(ok) as (then, otherwise):
                with then:
                    dst, src = b.mul(idx, i64(row)), b.mul(i, i64(row))
                    f.vloop(0, row, W, lambda j, w: f.store(
                        b.fadd(f.load(po, b.add(dst, j), w), f.load(pu, b.add(src, j), w)), po, b.add(dst, j)))
                with otherwise:
                    b.call(report, [f.exec, ir.Constant(I32, KC_ERROR_INPUT_VALUE)])

    nm.step(f"{out.name}_scatter_add", body, ntasks=1, cost=0)
