"""The Numba CUDA lowering table: primitive name -> function(emitter, node) that adds the
node's generated kernel(s) and its launches to `bind`."""
from __future__ import annotations

import numpy as np

from ...errors import KcompileError
from ...ir import Kind, all_primitives
from ..common import LoweringTable, reject_epilogue
from ..numba_shared import resize_geometry, resize_tables, rnn_initial_states, rnn_operands
from ...ir.program import format_program, program_of
from ...passes.rewrite import per_channel
from . import gemm, movement, reduce, rnn, window
from .elementwise import elementwise_kernel, program_lines
from .elementwise import literal as scalar_literal
from .source import unflatten

LOWERINGS = LoweringTable()
lowering = LOWERINGS.register
missing_lowerings = LOWERINGS.missing


def _doc(node, text: str) -> str:
    """A one-line docstring for a generated kernel."""
    text = f"{node.meta.get('layer') or node.op}: {text}"
    return text.replace("\\", "/").replace('"', "'")


def _rows(em, value, trailing: int = 1) -> str:
    """Product of all but the last `trailing` dims, as an expression of `batch`."""
    dims = em.dims(value)[: value.rank - trailing]
    return " * ".join(dims) if dims else "1"


# -- elementwise ---------------------------------------------------------------------------
ELEMENTWISE_OPS = [name for name, p in all_primitives().items() if p.kind in (Kind.ELEMENTWISE, Kind.BROADCAST)]


@lowering(*ELEMENTWISE_OPS)
def lower_elementwise(em, node):
    out = node.output
    flat = all(v.shape == out.shape for v in node.inputs)
    text = format_program(program_of(node), [f"in{k}" for k in range(len(node.inputs))])
    name = em.shared_kernel(f"k_{out.name}", lambda kernel, doc: elementwise_kernel(kernel, node, flat, doc),
                            _doc(node, f"out = {text}"))
    if flat:
        args = [em.flat(v) for v in node.inputs + [out]]
    else:
        args = [em.ref(v) if v.rank else em.view(v, [1]) for v in node.inputs + [out]]
    em.comment(f"{node.meta.get('layer', node.op)}: {text}")
    em.launch_1d(name, em.size(out), *args)


# -- epilogues -------------------------------------------------------------------------------
def epilogue(em, node, res_dims):
    """The node's epilogue as extra kernel parameters, their arguments, and a `store(out,
    index, channel)` that builds the GEMM store: the program on the accumulated value, then
    out[index]. Per-channel constants arrive as vectors indexed by the output channel;
    a residual shaped like the output is viewed as `res_dims` and read at the store's index."""
    program = node.attrs.get("epilogue", ())
    extra = node.inputs[2:]
    out = node.output
    channels = out.shape[-1]
    params, args, kinds = [], [], {}
    for k, value in enumerate(extra):
        array = em.param_array(value)
        vector = per_channel(array, channels, out.rank) if array is not None else None
        params.append(f"e{k}")
        if vector is not None:
            args.append(em.const(vector.astype(np.float32)))
            kinds[k] = "channel"
        elif value.type == out.type:
            args.append(em.view(value, res_dims))
            kinds[k] = "residual"
        else:
            raise KcompileError(f"{node.op} {node.meta.get('layer')}: epilogue operand {value} is neither per-channel "
                                f"nor shaped like the output {out.type}")

    def store(out_param: str, index, channel):
        def emit(code, z, row, col, value):
            where, chan = index(z, row, col), channel(z, row, col)
            operands = {k: f"e{k}[{chan}]" if kind == "channel" else f"e{k}[{where}]" for k, kind in kinds.items()}
            code(f"y = {value}")
            result = program_lines(code, program, operands, [v.dtype for v in extra], prefix="p", acc="y")
            code(f"{out_param}[{where}] = {result}")

        return emit

    return params, args, store


def _epilogue_text(node) -> str:
    ep = node.attrs.get("epilogue")
    return f" then {format_program(ep, [v.name for v in node.inputs[2:]])}" if ep else ""


def _kernel_name(em, hint: str) -> str:
    """A fresh kernel name whose twins (a product's `_skinny` kernel, a scatter's `_zero`
    kernel) are free too, as names in the generated module."""
    while True:
        name = em.fresh(hint)
        twins = [f"{name}{suffix}" for suffix in ("_skinny", "_zero")]
        if not any(em.taken(t) for t in twins):
            em.reserve(*twins)
            return name


def _add_gemm(em, spec):
    for source in gemm.gemm_kernels(spec):
        em.add_kernel(source)


# -- matrix products -----------------------------------------------------------------------
def _plain_product(em, node, name, a2, b2, out2, rows_expr, k, n, doc):
    """out2 (rows, n) = epilogue(a2 (rows, k) @ b2 (k, n))."""
    params, args, store = epilogue(em, node, [-1, n])
    spec = gemm.GemmSpec(
        name=name, params=["a", "b", "out"] + params, k=k, cols=n, rows="a.shape[0]", zs="1",
        load_a=lambda code, t, z, row, kk: code(f"{t} = a[{row}, {kk}]"),
        load_b=lambda code, t, z, kk, col: code(f"{t} = b[{kk}, {col}]"),
        store=store("out", lambda z, row, col: f"{row}, {col}", lambda z, row, col: col), doc=doc)
    _add_gemm(em, spec)
    em.launch_gemm(name, "1", rows_expr, n, a2, b2, out2, *args)


def _batch_map(code, target, z, own, out):
    """target = the index into an operand's flattened batch dims (`own`, left-padded with
    ones to len(out)) of the output's flattened batch index z (broadcast dims read 0)."""
    own = (1,) * (len(out) - len(own)) + tuple(own)
    if own == tuple(out):
        code(f"{target} = {z}")
        return
    if all(d == 1 for d in own):
        code(f"{target} = 0")
        return
    dims = ["zdyn" if d is None else str(d) for d in out]
    names = [f"{target}_{d}" for d in range(len(out))]
    unflatten(code, z, dims, names)
    terms, stride = [], "1"
    for d in range(len(out) - 1, -1, -1):
        if own[d] != 1:
            terms.append(f"{names[d]} * {stride}")
            stride = f"{stride} * {'zdyn' if own[d] is None else own[d]}"
    code(f"{target} = {' + '.join(terms)}")


@lowering("matmul")
def lower_matmul(em, node):
    a, b = node.inputs[:2]
    out = node.output
    k, n = a.shape[-1], b.shape[-1]
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"{a.type} @ {b.type}{_epilogue_text(node)}")
    em.comment(doc)
    if b.rank == 2:
        _plain_product(em, node, name, em.view(a, [-1, k]), em.ref(b), em.view(out, [-1, n]), _rows(em, a), k, n, doc)
        return
    # Batched: z runs over the output's flattened batch dims; operands map it (broadcasting).
    m = a.shape[-2]
    out_batch, a_batch, b_batch = out.shape[:-2], a.shape[:-2], b.shape[:-2]
    static = int(np.prod([d for d in out_batch if d is not None], dtype=np.int64))
    prelude = (f"zdyn = out.shape[0] // {static}",) if None in out_batch else ()
    params, args, store = epilogue(em, node, [-1, m, n])

    def load_a(code, t, z, row, kk):
        _batch_map(code, "za", z, a_batch, out_batch)
        code(f"{t} = a[za, {row}, {kk}]")

    def load_b(code, t, z, kk, col):
        _batch_map(code, "zb", z, b_batch, out_batch)
        code(f"{t} = b[zb, {kk}, {col}]")

    spec = gemm.GemmSpec(
        name=name, params=["a", "b", "out"] + params, k=k, cols=n, rows=str(m), zs="out.shape[0]",
        load_a=load_a, load_b=load_b, prelude=prelude,
        store=store("out", lambda z, row, col: f"{z}, {row}, {col}", lambda z, row, col: col), doc=doc)
    _add_gemm(em, spec)
    em.launch_gemm(name, _rows(em, out, 2), str(m), n, em.view(a, [-1, m, k]), em.view(b, [-1, k, n]),
                   em.view(out, [-1, m, n]), *args)


# -- convolution and pooling ------------------------------------------------------------------
def _as_3d(values, fill=1):
    """A per-spatial-axis tuple padded to three axes (leading unit axes)."""
    return (fill,) * (3 - len(values)) + tuple(values)


def _spatial(em, value, dims) -> str:
    """A channels-last value viewed as (N, *dims, C): its active spatial axes (see window.Geometry)."""
    return em.view(value, [-1, *dims, value.shape[-1]])


def _geometry(x, out, shape, strides, dilations, pads) -> window.Geometry:
    return window.Geometry(window=_as_3d(shape), strides=_as_3d(strides), dilations=_as_3d(dilations),
                           pads=_as_3d([p[0] for p in pads], 0), in_spatial=_as_3d(x.shape[1:-1]),
                           out_spatial=_as_3d(out.shape[1:-1]), channels=out.shape[-1])


@lowering("conv")
def lower_conv(em, node):
    x, w = node.inputs[:2]
    out = node.output
    a = node.attrs
    window_shape = w.shape[:-2]
    cg, filters = w.shape[-2], w.shape[-1]
    groups = a.get("groups", 1)
    g = _geometry(x, out, window_shape, a["strides"], a["dilations"], a["pads"])
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"conv {x.type} * {w.type} -> {out.type}{_epilogue_text(node)}")
    em.comment(doc)
    out2 = em.view(out, [-1, filters])
    rows = f"{_rows(em, out)}"
    pointwise = (all(k == 1 for k in window_shape) and all(s == 1 for s in a["strides"]) and groups == 1
                 and all(p == (0, 0) for p in a["pads"]))
    if pointwise:  # a 1x1 convolution is a matmul over the pixels
        _plain_product(em, node, name, em.view(x, [-1, cg]), em.view(w, [cg, filters]), out2, rows, cg, filters, doc)
        return
    params, args, store = epilogue(em, node, [-1, filters])
    if groups > 1 and cg == 1:  # depthwise: a direct kernel
        source = window.depthwise_kernel(name, ["x", "w", "out"] + params, doc, g, filters // groups,
                                         store("out", lambda z, row, col: f"{row}, {col}", lambda z, row, col: col))
        em.add_kernel(source)
        em.launch_1d(name, f"{rows} * {filters}", _spatial(em, x, g.in_dims()), em.view(w, [*g.window_dims(), filters]),
                     out2, *args)
        return
    # Implicit GEMM: A(row = output pixel, k = (window position, channel)) read from x on the fly.
    fg = filters // groups
    base = lambda z: f"{z} * {cg}" if groups > 1 else "0"  # noqa: E731
    spec = gemm.GemmSpec(
        name=name, params=["x", "w", "out"] + params, k=int(np.prod(window_shape)) * cg, cols=fg,
        rows="out.shape[0]", zs=str(groups),
        load_a=lambda code, t, z, row, k: window.im2col_load(code, t, g, cg, row, k, base(z)),
        load_b=lambda code, t, z, k, col: code(f"{t} = w[{k}, {_group_column(z, fg, groups, col)}]"),
        store=store("out", lambda z, row, col: f"{row}, {_group_column(z, fg, groups, col)}",
                    lambda z, row, col: _group_column(z, fg, groups, col)),
        doc=doc)
    _add_gemm(em, spec)
    em.launch_gemm(name, str(groups), rows, fg, _spatial(em, x, g.in_dims()),
                   em.view(w, [int(np.prod(window_shape)) * cg, filters]), out2, *args)


def _group_column(z, per_group, groups, col) -> str:
    return f"{z} * {per_group} + {col}" if groups > 1 else col


@lowering("conv_transpose")
def lower_conv_transpose(em, node):
    x, w = node.inputs[:2]
    out = node.output
    a = node.attrs
    window_shape = w.shape[:-2]
    filters, channels = w.shape[-2], w.shape[-1]
    g = _geometry(x, out, window_shape, a["strides"], a["dilations"], a["pads"])
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"conv_transpose {x.type} * {w.type} -> {out.type}{_epilogue_text(node)}")
    em.comment(doc)
    params, args, store = epilogue(em, node, [-1, filters])
    em.add_kernel(window.conv_transpose_kernel(name, ["x", "w", "out"] + params, doc, g, channels,
                                               store("out", lambda z, row, col: f"{row}, {col}", lambda z, row, col: col)))
    em.launch_1d(name, f"{_rows(em, out)} * {filters}", _spatial(em, x, g.in_dims()),
                 em.view(w, [*g.window_dims(), filters, channels]), em.view(out, [-1, filters]), *args)


@lowering("max_pool", "avg_pool")
def lower_pool(em, node):
    x, out = node.inputs[0], node.output
    a = node.attrs
    n = x.rank - 2
    g = _geometry(x, out, a["window"], a["strides"], (1,) * n, a["pads"])
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"{node.op} {x.type} -> {out.type}")
    em.comment(doc)
    em.add_kernel(window.pool_kernel(name, doc, g, node.op == "max_pool", bool(a.get("count_include_pad", False))))
    em.launch_1d(name, f"{_rows(em, out)} * {out.shape[-1]}", _spatial(em, x, g.in_dims()), em.view(out, [-1, out.shape[-1]]))


# -- reductions ------------------------------------------------------------------------------------
REDUCTIONS = {"reduce_sum": "sum", "reduce_mean": "mean", "reduce_max": "max", "reduce_min": "min"}


@lowering(*REDUCTIONS)
def lower_reduce(em, node):
    x, out = node.inputs[0], node.output
    axes = tuple(sorted(a % x.rank for a in node.attrs["axes"]))
    kind = REDUCTIONS[node.op]
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"{node.op} of {x.type} over axes {axes}")
    em.comment(doc)
    trailing = axes == tuple(range(axes[0], x.rank)) if axes else False
    if trailing and axes[0] > 0:  # whole rows: a block per row
        length = int(np.prod([x.shape[d] for d in axes]))
        em.add_kernel(reduce.row_reduce_kernel(name, doc, kind, length, x.dtype))
        rows = _rows(em, x, len(axes))
        em.launch(name, f"blocks({rows}, 1)", "TPB", em.view(x, [-1, length]), em.view(out, [rows]))
        return
    kept = [d for d in range(x.rank) if d not in axes]
    em.add_kernel(reduce.loop_reduce_kernel(name, doc, kind, x.shape, axes, x.dtype))
    kept_dims = [em.dims(x)[d] for d in kept] or ["1"]
    em.launch_1d(name, " * ".join(kept_dims), em.ref(x), em.view(out, kept_dims))


@lowering("softmax", "log_softmax")
def lower_softmax(em, node):
    x, out = node.inputs[0], node.output
    axis = node.attrs["axis"] % x.rank
    log = node.op == "log_softmax"
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"{node.op} of {x.type} along axis {axis}")
    em.comment(doc)
    length = x.shape[axis]
    if axis == x.rank - 1:
        em.add_kernel(reduce.row_softmax_kernel(name, doc, length, log))
        rows = _rows(em, x)
        em.launch(name, f"blocks({rows}, 1)", "TPB", em.view(x, [-1, length]), em.view(out, [-1, length]))
        return
    inner = int(np.prod(x.shape[axis + 1 :]))
    em.add_kernel(reduce.strided_softmax_kernel(name, doc, length, inner, log))
    outer = _rows(em, x, x.rank - axis)
    em.launch_1d(name, f"{outer} * {inner}", em.view(x, [-1, length, inner]), em.view(out, [-1, length, inner]))


# -- data movement ---------------------------------------------------------------------------------
def _injective(em, node, params, inputs, body, text):
    out = node.output
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, text)
    em.comment(doc)
    em.add_kernel(movement.injective_kernel(name, params + ["out"], doc, out.shape, body))
    em.launch_1d(name, em.size(out), *[em.ref(v) for v in inputs], em.ref(out))


@lowering("reshape")
def lower_reshape(em, node):
    em.ref(node.output)  # a view of its input (see passes.memory)


@lowering("transpose")
def lower_transpose(em, node):
    perm = tuple(node.attrs["perm"])
    _injective(em, node, ["x"], node.inputs, movement.transpose_body(perm), f"transpose {perm}")


@lowering("slice")
def lower_slice(em, node):
    x = node.inputs[0]
    starts = {}
    for axis, start, stop, step in zip(*(node.attrs[k] for k in ("axes", "starts", "stops", "steps"))):
        first, _, step = slice(start, stop, step).indices(x.shape[axis % x.rank])
        starts[axis % x.rank] = (first, step)
    _injective(em, node, ["x"], node.inputs, movement.slice_body(starts), f"slice {starts}")


@lowering("pad")
def lower_pad(em, node):
    x = node.inputs[0]
    value = float(node.attrs.get("value", 0.0))
    literal = scalar_literal(value, x.dtype)
    pads = tuple(tuple(p) for p in node.attrs["pads"])
    _injective(em, node, ["x"], node.inputs, movement.pad_body(pads, x.shape, literal), f"pad {pads} with {value}")


@lowering("concat")
def lower_concat(em, node):
    axis = node.attrs["axis"] % node.output.rank
    sizes = [v.shape[axis] for v in node.inputs]
    params = [f"x{k}" for k in range(len(node.inputs))]
    _injective(em, node, params, node.inputs, movement.concat_body(axis, sizes), f"concat along axis {axis}")


@lowering("broadcast_to")
def lower_broadcast_to(em, node):
    x, out = node.inputs[0], node.output
    _injective(em, node, ["x"], node.inputs, movement.broadcast_body(x.shape, out.shape), f"broadcast to {out.type}")


@lowering("repeat")
def lower_repeat(em, node):
    axis, repeats = node.attrs["axis"] % node.output.rank, node.attrs["repeats"]
    _injective(em, node, ["x"], node.inputs, movement.repeat_body(axis, repeats), f"repeat x{repeats} on axis {axis}")


@lowering("gather")
def lower_gather(em, node):
    table, indices = node.inputs
    out = node.output
    width = int(np.prod(table.shape[1:]))
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"rows of {table.type} at {indices.type}")
    em.comment(doc)
    em.add_kernel(movement.gather_kernel(name, doc, table.shape[0], width))
    em.checks = True
    em.launch_1d(name, f"{em.size(indices)} * {width}", em.view(table, [table.shape[0], width]), em.flat(indices),
                 em.view(out, [em.size(indices), width]), "flags")


@lowering("resize")
def lower_resize(em, node):
    x, out = node.inputs[0], node.output
    method = node.attrs["method"]
    spatial_in, spatial_out = resize_geometry(node, "CUDA")
    channels = x.shape[-1]
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"{method} resize {x.type} -> {out.type}")
    em.comment(doc)
    em.add_kernel(movement.resize_kernel(name, doc, spatial_out, channels, method == "bilinear"))
    args = resize_tables(em, spatial_in, spatial_out, method)
    em.launch_1d(name, em.size(out), em.view(x, [-1, *spatial_in, channels]), em.view(out, [-1, *spatial_out, channels]),
                 *args)


# -- recurrent layers ---------------------------------------------------------------------------------
@lowering("simple_rnn", "lstm", "gru")
def lower_rnn(em, node):
    a = node.attrs
    operands = rnn_operands(em, node, "CUDA")
    x, kernel, recurrent, mask = operands.x, operands.kernel, operands.recurrent, operands.mask
    units, steps, features, gates = operands.units, operands.steps, operands.x.shape[-1], operands.gates
    layer = node.meta.get("layer") or node.op
    shared_bytes = 4 * (gates + 5 * units)
    if shared_bytes > 48 * 1024:
        raise KcompileError(f"{node.op} {layer}: {units} units need {shared_bytes} bytes of shared memory per block; "
                            "the CUDA backend's recurrent kernel holds at most 48 KiB")
    em.comment(f"{layer}: {node.op} over {steps} steps, {units} units")
    # 1. xw = x @ kernel + input bias for every time step at once.
    batch = em.dims(x)[0]
    xw = em.scratch(f"{node.outputs[0].name}_xw", f"({batch}, {steps}, {gates})")
    projection = _kernel_name(em, f"k_{node.outputs[0].name}_xw")
    bias_vector = em.const(np.asarray(operands.input_bias, np.float32))

    def store(code, z, row, col, value):
        code(f"out[{row}, {col}] = {value} + bias[{col}]")

    spec = gemm.GemmSpec(
        name=projection, params=["a", "b", "out", "bias"], k=features, cols=gates, rows="a.shape[0]", zs="1",
        load_a=lambda code, t, z, row, k: code(f"{t} = a[{row}, {k}]"),
        load_b=lambda code, t, z, k, col: code(f"{t} = b[{k}, {col}]"),
        store=store, doc=_doc(node, "input projection x @ kernel + bias, every time step at once"))
    _add_gemm(em, spec)
    em.launch_gemm(projection, "1", f"{batch} * {steps}", gates, em.view(x, [-1, features]), em.ref(kernel),
                   f"{xw}.reshape(({batch} * {steps}, {gates}))", bias_vector)
    # 2. The recurrence: a block per sequence.
    h0, c0 = rnn_initial_states(em, operands)
    mask_arg = em.ref(mask) if mask is not None else em.const(np.zeros((1, 1), np.float32), key="no_mask")
    outs = node.outputs
    y = em.view(outs[0], [-1, steps if a["return_sequences"] else 1, units])
    c_out = em.ref(outs[2]) if len(outs) > 2 else em.scratch(f"{outs[0].name}_c", f"({batch}, {units})")
    flags = dict(go_backwards=a["go_backwards"], return_sequences=a["return_sequences"],
                 zero_output_for_mask=a["zero_output_for_mask"], has_mask=mask is not None, reset_after=operands.reset_after)
    name = _kernel_name(em, f"k_{outs[0].name}")
    doc = _doc(node, f"{node.op} recurrence, {units} units, {steps} steps, {flags}")
    em.add_kernel(rnn.rnn_kernel(name, doc, node.op, units, steps, a["activation"],
                                 a.get("recurrent_activation", "sigmoid"), flags))
    em.launch(name, f"blocks({batch}, 1)", "TPB", xw, em.ref(recurrent), em.const(np.asarray(operands.recurrent_bias, np.float32)),
              mask_arg, h0, c0, y, em.ref(outs[1]), c_out)


# -- primitives of the backward pass (kcompile/ir/ops/grad_ops.py) ----------------------------------
@lowering("reduce_batch")
def lower_reduce_batch(em, node):
    x, out = node.inputs[0], node.output
    axis = node.attrs["axis"]
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"sum of {x.type} over its batch axis {axis}")
    em.comment(doc)
    em.add_kernel(reduce.loop_reduce_kernel(name, doc, "sum", x.shape, (axis,), x.dtype))
    kept_dims = [em.dims(x)[d] for d in range(x.rank) if d != axis] or ["1"]
    em.launch_1d(name, " * ".join(kept_dims), em.ref(x), em.view(out, kept_dims))


@lowering("conv_weight_grad")
def lower_conv_weight_grad(em, node):
    """dW[(window position, c), f] = sum over output pixels p of im2col(x)[p, (window, c)] * g[p, f]:
    a GEMM whose contraction runs over the batch (no atomics)."""
    x, grad = node.inputs
    out = node.output
    a = node.attrs
    channels, filters = x.shape[-1], grad.shape[-1]
    g = _geometry(x, grad, a["window"], a["strides"], a["dilations"], a["pads"])
    rows = int(np.prod(g.window)) * channels
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"conv kernel gradient of {x.type} and {grad.type} -> {out.type}")
    em.comment(doc)

    def store(code, z, row, col, value):
        code(f"out[{row}, {col}] = {value}")

    spec = gemm.GemmSpec(
        name=name, params=["x", "g", "out"], k="g.shape[0]", cols=filters, rows=str(rows), zs="1",
        load_a=lambda code, t, z, row, k: window.im2col_load(code, t, g, channels, k, row, "0"),
        load_b=lambda code, t, z, k, col: code(f"{t} = g[{k}, {col}]"), store=store, doc=doc)
    _add_gemm(em, spec)
    em.launch_gemm(name, "1", str(rows), filters, _spatial(em, x, g.in_dims()), em.view(grad, [-1, filters]),
                   em.view(out, [rows, filters]))


@lowering("max_pool_grad")
def lower_max_pool_grad(em, node):
    reject_epilogue(node, "Numba CUDA")
    x, grad = node.inputs
    out = node.output
    a = node.attrs
    g = _geometry(x, grad, a["window"], a["strides"], (1,) * (x.rank - 2), a["pads"])
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"max_pool gradient {grad.type} -> {out.type}")
    em.comment(doc)
    em.add_kernel(window.max_pool_grad_kernel(name, doc, g))
    em.launch_1d(name, em.size(out), _spatial(em, x, g.in_dims()), _spatial(em, grad, g.out_dims()),
                 _spatial(em, out, g.in_dims()))


@lowering("scatter_add")
def lower_scatter_add(em, node):
    indices, updates = node.inputs
    out = node.output
    rows = node.attrs["rows"]
    width = int(np.prod(out.shape[1:]))
    name = _kernel_name(em, f"k_{out.name}")
    doc = _doc(node, f"scatter-add {updates.type} into {rows} rows at {indices.type}")
    em.comment(doc)
    em.add_kernel(movement.scatter_add_kernels(name, doc, rows, width))
    em.checks = True
    table = em.view(out, [rows, width])
    em.launch_1d(f"{name}_zero", str(rows * width), table)
    em.launch_1d(name, f"{em.size(indices)} * {width}", em.flat(indices), em.view(updates, [em.size(indices), width]),
                 table, "flags")

