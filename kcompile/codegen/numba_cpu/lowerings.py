"""The Numba CPU lowering table: primitive name -> function(emitter, node) writing the
node's part of `run` (and, for elementwise work, a generated kernel)."""
from __future__ import annotations

import numpy as np

from ...ir import Kind, all_primitives
from ...ir.program import format_program, program_of, program_type
from ...ir.shapes import normalize_axes
from ...passes.rewrite import per_channel
from ..common import LoweringTable, tuple_text
from ..numba_shared import resize_geometry, resize_tables, rnn_initial_states, rnn_operands
from .elementwise import elementwise_kernel, reduction_kernel
from .kernels.conv import IGEMM, WINOGRAD_2, WINOGRAD_4
from .kernels.epilogue import RESIDUAL
from .kernels.rnn import ACTIVATIONS as RNN_ACTIVATIONS
from .kernels.rnn import CELLS
from .kernels.scalar import OPCODES
from .tuning import conv_method, weight_grad_method

LOWERINGS = LoweringTable()
lowering = LOWERINGS.register
missing_lowerings = LOWERINGS.missing


# -- elementwise ---------------------------------------------------------------------------
ELEMENTWISE_OPS = [name for name, p in all_primitives().items() if p.kind in (Kind.ELEMENTWISE, Kind.BROADCAST)]


@lowering(*ELEMENTWISE_OPS)
def lower_elementwise(em, node):
    arrays, offsets = zip(*(_array_and_offsets(em, v) for v in node.inputs + [node.output]))
    text = format_program(program_of(node), [f"in{k}" for k in range(len(node.inputs))])
    name = em.shared_kernel(f"k_{node.output.name}",
                            lambda kernel, doc: elementwise_kernel(kernel, node, doc, offsets=offsets,
                                                                   threaded_from=em.threaded_from),
                            f"{node.meta.get('layer', '')}: out = {text}")
    em.comment(f"{node.meta.get('layer', node.op)}: {text}")
    em.call(name, *arrays)


def _array_and_offsets(em, value) -> tuple:
    """(array, None) for a value bound as its own array; (the whole array, where the value
    starts along each axis) for a slice read in place or a concat's piece written there."""
    storage = em.plan.storage[value.name]
    if storage[0] != "sliced":
        return em.ref(value), None
    offsets = [0] * value.rank
    for axis, start, _ in storage[2]:
        offsets[axis] = start
    return em.ref(em.values[storage[1]]), tuple(offsets)


# -- epilogues -------------------------------------------------------------------------------
def epilogue_args(em, node) -> tuple:
    """`steps, chan, res` arguments for a matmul/conv epilogue (see kernels.epilogue)."""
    program = node.attrs.get("epilogue", ())
    extra = node.inputs[2:]
    channels = node.output.shape[-1]
    width = max(channels, 2)
    steps, rows, residual, changing = [], [], None, []
    for op, args, attrs in program:
        attrs = dict(attrs)
        code = OPCODES[op]
        others = [a for a in args if a[0] == "in"]
        running_first = args[0][0] in ("acc", "t")
        if op == "clip":
            rows.append(np.pad(np.array([attrs["low"], attrs["high"]], np.float32), (0, width - 2)))
            steps.append((code, len(rows) - 1, 0))
        elif not others:
            steps.append((code, -1, 0))
        else:
            value = extra[others[0][1]]
            array = em.param_array(value)
            if array is not None:
                vector = per_channel(array, channels, node.output.rank)
                rows.append(np.pad(vector, (0, width - channels)))
                steps.append((code, len(rows) - 1, int(not running_first)))
            elif value.type == node.output.type:
                residual = value
                steps.append((code, RESIDUAL, int(not running_first)))
            else:  # per-channel but not constant (a training step's bias): its row is filled at each call
                rows.append(np.zeros(width, np.float32))
                changing.append((len(rows) - 1, value))
                steps.append((code, len(rows) - 1, int(not running_first)))
    steps_expr = em.const(np.array(steps, np.int32).reshape(-1, 3), key=("steps", tuple(steps)))
    chan = np.stack(rows) if rows else np.zeros((1, width), np.float32)
    chan_expr = em.const(chan.astype(np.float32))
    if changing:
        live = em.fresh("chan")
        em.line(f"{live} = {chan_expr}.copy()")
        for row, value in changing:
            em.call("np.copyto", f"{live}[{row}, :{channels}]", f"{em.ref(value)}.reshape({channels})")
        chan_expr = live
    if residual is not None:
        res_expr = f"{em.ref(residual)}.reshape((-1, {channels}))"
    else:
        res_expr = em.const(np.zeros((1, 1), np.float32), key="no_residual")
    return steps_expr, chan_expr, res_expr


def _comment(em, node, what: str):
    ep = node.attrs.get("epilogue")
    text = f" then {format_program(ep, [v.name for v in node.inputs[2:]])}" if ep else ""
    em.comment(f"{node.meta.get('layer', node.op)}: {what}{text}")


# -- matrix products -----------------------------------------------------------------------
@lowering("matmul")
def lower_matmul(em, node):
    a, b = node.inputs[:2]
    out = node.output
    k, n = em.dims(a)[-1], b.shape[-1]  # k may be the batch (gradients of weights)
    _comment(em, node, f"{a.type} @ {b.type}")
    ep = epilogue_args(em, node)
    if b.rank == 2:
        matrix_product(em, f"{em.ref(a)}.reshape((-1, {k}))", em.ref(b), f"{em.ref(out)}.reshape((-1, {n}))", ep)
        return
    # Batched: bring both operands to the output's batch dimensions, flatten them.
    batch_dims = em.dims(out)[:-2]
    operands = []
    for v in (a, b):
        expr = em.ref(v)
        if v.shape[:-2] != out.shape[:-2]:
            target = tuple_text(batch_dims + [v.shape[-2], v.shape[-1]])
            expr = em.scratch(f"{v.name}_broadcast", target)
            em.call("np.copyto", expr, f"np.broadcast_to({em.ref(v)}, {target})")
        operands.append(f"{expr}.reshape((-1, {em.dims(v)[-2]}, {em.dims(v)[-1]}))")
    out3 = f"{em.ref(out)}.reshape((-1, {out.shape[-2]}, {n}))"
    em.call("G.batched_matmul", operands[0], operands[1], out3)
    if node.attrs.get("epilogue"):
        em.call("E.apply", f"{em.ref(out)}.reshape((-1, {n}))", *ep, "0")


def transposes_read_in_place(graph) -> set:
    """Outputs of 2-D transposes that only feed the operands of 2-D matmuls: G.matmul
    hands BLAS the transposed view (the backward pass's x^T @ g and g @ W^T), so the
    memory plan makes them views and lower_transpose writes nothing."""
    users = graph.users()
    outputs = {v.name for v in graph.outputs}

    def reads_in_place(node, name):
        return (node.op == "matmul" and all(v.rank == 2 for v in node.inputs[:2])
                and all(v.name != name for v in node.inputs[2:]))

    return {node.output.name for node in graph.nodes
            if node.op == "transpose" and tuple(node.attrs["perm"]) == (1, 0) and node.output.name not in outputs
            and all(reads_in_place(user, node.output.name) for user in users.get(node.output.name, []))}


def slices_read_in_place(graph) -> set:
    """Outputs of unit-step slices that only feed generated elementwise kernels: those
    index the slice's source at the slice's offsets (the backward pass's pieces of a
    concat's gradient; see _array_and_offsets), so the memory plan makes them views and
    lower_slice writes nothing."""
    users = graph.users()
    outputs = {v.name for v in graph.outputs}
    return {node.output.name for node in graph.nodes
            if node.op == "slice" and all(step == 1 for step in node.attrs["steps"])
            and node.output.name not in outputs and users.get(node.output.name)
            and all(user.op in ELEMENTWISE_OPS for user in users[node.output.name])}


def concats_written_in_place(graph) -> set:
    """Outputs of concats whose inputs generated elementwise kernels write straight into
    their place in the output (antirectifier's concat of relu(x) and relu(-x)): each
    input is computed by such a kernel and read only by the concat and by such kernels,
    which all index it in the concat's buffer at its offset, so lower_concat copies
    nothing."""
    users = graph.users()
    producers = {v.name: node for node in graph.nodes for v in node.outputs}
    outputs = {v.name for v in graph.outputs}

    def piece(v, concat):
        producer = producers.get(v.name)
        return (producer is not None and producer.op in ELEMENTWISE_OPS and v.name not in outputs
                and all(user is concat or user.op in ELEMENTWISE_OPS for user in users[v.name]))

    return {node.output.name for node in graph.nodes
            if node.op == "concat" and node.output.shape[node.attrs["axis"] % node.output.rank] is not None
            and len({v.name for v in node.inputs}) == len(node.inputs)
            and all(piece(v, node) for v in node.inputs)}


def matrix_product(em, a2: str, b: str, out2: str, ep: tuple):
    """out2 = epilogue(a2 @ b)."""
    em.call("G.matmul", a2, b, out2, *ep)


# -- convolution and pooling ------------------------------------------------------------------
def _as_3d(values, rank_spatial):
    """Pad a per-spatial-axis tuple to three axes (leading unit axes)."""
    return (1,) * (3 - rank_spatial) + tuple(values)


def _shape_5d(value) -> tuple:
    """(batch, D, H, W, C) of a channels-last tensor with 1 to 3 spatial axes."""
    spatial = value.shape[1:-1]
    return (value.shape[0],) + _as_3d(spatial, len(spatial)) + (value.shape[-1],)


def _as_5d(em, value) -> str:
    return f"{em.ref(value)}.reshape({tuple_text((-1,) + _shape_5d(value)[1:])})"


def _conv_call(em, x, w2d: str, w2d_shape: tuple, out, geometry: tuple, groups: int, ep, constant: bool):
    """C.conv with the algorithm measured fastest for this shape (tuning.py); the implicit
    GEMM and Winograd on constant weights (`constant`: w2d is a weights pool view) pack
    them once, when the program is bound."""
    method = conv_method(_shape_5d(x), w2d_shape, _shape_5d(out), geometry, groups)
    if method == IGEMM and constant:
        packed = em.fresh("packed")
        em.line(f"{packed} = I.pack({w2d})")
        em.call("I.conv_packed", _as_5d(em, x), packed, str(w2d_shape[0]), _as_5d(em, out), tuple_text(geometry),
                *ep)
        return
    if method in (WINOGRAD_2, WINOGRAD_4) and constant:
        tile = 2 if method == WINOGRAD_2 else 4
        packed = em.fresh("packed")
        em.line(f"{packed} = WG.pack({w2d}, {tile})")
        em.call("WG.conv_winograd_packed", _as_5d(em, x), packed, _as_5d(em, out), tuple_text(geometry), str(tile),
                *ep)
        return
    em.call("C.conv", _as_5d(em, x), w2d, _as_5d(em, out), tuple_text(geometry), str(groups), str(method), *ep)


@lowering("conv")
def lower_conv(em, node):
    x, w = node.inputs[:2]
    out = node.output
    n = x.rank - 2
    window = w.shape[:-2]
    cg, filters = w.shape[-2], w.shape[-1]
    groups = node.attrs.get("groups", 1)
    geometry = (_as_3d(window, n) + _as_3d(node.attrs["strides"], n) + _as_3d(node.attrs["dilations"], n)
                + (0,) * (3 - n) + tuple(p[0] for p in node.attrs["pads"]))
    _comment(em, node, f"conv {x.type} * {w.type} -> {out.type}")
    ep = epilogue_args(em, node)
    if groups > 1 and cg == 1:
        kernel = f"{em.ref(w)}.reshape({tuple_text(_as_3d(window, n) + (filters,))})"
        em.call("C.depthwise_conv", _as_5d(em, x), kernel, _as_5d(em, out), tuple_text(geometry), *ep)
        return
    k = int(np.prod(window)) * cg
    _conv_call(em, x, f"{em.ref(w)}.reshape(({k}, {filters}))", (k, filters), out, geometry, groups, ep,
               constant=em.param_array(w) is not None)


@lowering("conv_transpose")
def lower_conv_transpose(em, node):
    x, w = node.inputs[:2]
    out = node.output
    n = x.rank - 2
    window = w.shape[:-2]
    filters, channels = w.shape[-2], w.shape[-1]
    strides, dilations, pads = node.attrs["strides"], node.attrs["dilations"], node.attrs["pads"]
    positions = int(np.prod(window))
    weights = em.param_array(w)
    _comment(em, node, f"conv_transpose {x.type} -> {out.type}")
    ep = epilogue_args(em, node)
    if all(s == 1 for s in strides):
        # Stride 1: a convolution of the zero-padded input with the flipped kernel (im2col + GEMM).
        flip = tuple(slice(None, None, -1) for _ in window)
        if weights is not None:
            kernel = em.const(np.ascontiguousarray(np.swapaxes(weights[flip], -1, -2)).reshape(positions * channels, filters))
        else:
            kernel = em.scratch(f"{w.name}_flipped", tuple_text(window + (channels, filters)))
            flipped = f"{em.ref(w)}[{', '.join(['::-1'] * len(window))}]"
            em.call("np.copyto", kernel, f"np.swapaxes({flipped}, -1, -2)")
            kernel = f"{kernel}.reshape(({positions * channels}, {filters}))"
        leading = tuple((k - 1) * d - lo for k, d, (lo, _) in zip(window, dilations, pads))
        geometry = _as_3d(window, n) + (1, 1, 1) + _as_3d(dilations, n) + (0,) * (3 - n) + leading
        _conv_call(em, x, kernel, (positions * channels, filters), out, geometry, 1, ep, constant=weights is not None)
        return
    if weights is not None:  # packed once, at compile time
        packed = em.const(np.ascontiguousarray(weights.reshape(positions, filters, channels).transpose(0, 2, 1)))
    else:  # weights that change (training): packed at each call
        packed = em.scratch(f"{w.name}_packed", f"({positions}, {channels}, {filters})")
        em.call("np.copyto", packed, f"{em.ref(w)}.reshape(({positions}, {filters}, {channels})).transpose(0, 2, 1)")
    geometry = _as_3d(window, n) + _as_3d(strides, n) + _as_3d(dilations, n)
    crops = (0,) * (3 - n) + tuple(p[0] for p in pads)
    em.call("C.conv_transpose", _as_5d(em, x), packed, _as_5d(em, out), tuple_text(geometry), tuple_text(crops), *ep)


@lowering("max_pool", "avg_pool")
def lower_pool(em, node):
    x, out = node.inputs[0], node.output
    n = x.rank - 2
    geometry = _as_3d(node.attrs["window"], n) + _as_3d(node.attrs["strides"], n) + (0,) * (3 - n)
    geometry += tuple(p[0] for p in node.attrs["pads"])
    is_max = node.op == "max_pool"
    include = bool(node.attrs.get("count_include_pad", False))
    em.comment(f"{node.meta.get('layer', node.op)}: {node.op} {x.type} -> {out.type}")
    em.call("P.pool", _as_5d(em, x), _as_5d(em, out), tuple_text(geometry), str(is_max), str(include))


# -- reductions ------------------------------------------------------------------------------------
def _three_axes(em, value, first: int, last: int) -> str:
    """value viewed as (outer, axes first..last, inner), -1 where the batch falls."""
    shape = value.shape
    groups = [shape[:first], shape[first : last + 1], shape[last + 1 :]]
    dims = ["-1" if None in g else str(int(np.prod(g))) for g in groups]
    return f"{em.ref(value)}.reshape(({', '.join(dims)}))"


REDUCTIONS = {"reduce_sum": "R.SUM", "reduce_mean": "R.MEAN", "reduce_max": "R.MAX", "reduce_min": "R.MIN"}


@lowering(*REDUCTIONS)
def lower_reduce(em, node):
    x, out = node.inputs[0], node.output
    axes = sorted(a % x.rank for a in node.attrs["axes"])
    em.comment(f"{node.meta.get('layer', node.op)}: {node.op} over axes {tuple(axes)}")
    if axes == list(range(axes[0], axes[-1] + 1)):
        view = _three_axes(em, x, axes[0], axes[-1])
        outer, inner = x.shape[: axes[0]], x.shape[axes[-1] + 1 :]
    else:
        # Make the reduced axes adjacent (last) with a transposed copy.
        perm = [i for i in range(x.rank) if i not in axes] + axes
        moved = em.scratch(f"{x.name}_moved", tuple_text([em.dims(x)[i] for i in perm]))
        em.call("np.copyto", moved, f"np.transpose({em.ref(x)}, {tuple_text(perm)})")
        view = f"{moved}.reshape((-1, {int(np.prod([x.shape[a] for a in axes]))}, 1))"
        outer, inner = tuple(x.shape[i] for i in range(x.rank) if i not in axes), ()
    dims = ["-1" if None in g else str(int(np.prod(g))) for g in (outer, inner)]
    em.call("R.reduce", view, f"{em.ref(out)}.reshape(({dims[0]}, {dims[1]}))", REDUCTIONS[node.op])


@lowering("fused_reduce_sum")
def lower_fused_reduce_sum(em, node):
    rank = program_type(node.attrs["program"], [v.type for v in node.inputs]).rank
    axes = normalize_axes(node.attrs["axes"], rank)
    # The output with its reduced axes as size 1, as the kernel writes it.
    dims = iter(em.dims(node.output))
    kept = list(dims) if node.attrs.get("keepdims") else ["1" if d in axes else next(dims) for d in range(rank)]
    program = format_program(node.attrs["program"], [f"in{k}" for k in range(len(node.inputs))])
    text = f"sum of {program} over axes {tuple(axes)}"
    name = em.shared_kernel(f"k_{node.output.name}", lambda kernel, doc: reduction_kernel(kernel, node, doc),
                            f"{node.meta.get('layer', '')}: out = {text}")
    em.comment(f"{node.meta.get('layer', node.op)}: {text}")
    em.call(name, *[em.ref(v) for v in node.inputs], f"{em.ref(node.output)}.reshape(({', '.join(kept)},))")


@lowering("softmax", "log_softmax")
def lower_softmax(em, node):
    x, out = node.inputs[0], node.output
    axis = node.attrs["axis"] % x.rank
    em.comment(f"{node.meta.get('layer', node.op)}: {node.op} along axis {axis}")
    em.call("R.softmax", _three_axes(em, x, axis, axis), _three_axes(em, out, axis, axis), str(node.op == "log_softmax"))


# -- data movement ---------------------------------------------------------------------------------
def _index(rank, entries: dict) -> str:
    return ", ".join(entries.get(d, ":") for d in range(rank))


@lowering("reshape")
def lower_reshape(em, node):
    em.ref(node.output)  # a view of its input (see passes.memory)


@lowering("transpose")
def lower_transpose(em, node):
    perm = tuple(node.attrs["perm"])
    if em.plan.storage[node.output.name][0] == "transposed":
        em.comment(f"{node.meta.get('layer', node.op)}: transpose read in place by BLAS")
        return
    if perm == (1, 0):
        em.call("T.transpose2d", em.ref(node.inputs[0]), em.ref(node.output))
        return
    em.call("np.copyto", em.ref(node.output), f"np.transpose({em.ref(node.inputs[0])}, {tuple_text(perm)})")


@lowering("concat")
def lower_concat(em, node):
    out = node.output
    if em.plan.storage[node.inputs[0].name][:2] == ("sliced", out.name):
        em.comment(f"{node.meta.get('layer', node.op)}: concat, its inputs written in place")
        return
    axis = node.attrs["axis"] % out.rank
    start = 0
    target = em.ref(out)
    for v in node.inputs:
        stop = start + v.shape[axis]
        em.call("np.copyto", f"{target}[{_index(out.rank, {axis: f'{start}:{stop}'})}]", em.ref(v))
        start = stop


@lowering("slice")
def lower_slice(em, node):
    if em.plan.storage[node.output.name][0] == "sliced":
        em.comment(f"{node.meta.get('layer', node.op)}: slice read in place by its consumers")
        return
    x = node.inputs[0]
    entries = {}
    for axis, start, stop, step in zip(*(node.attrs[k] for k in ("axes", "starts", "stops", "steps"))):
        entries[axis % x.rank] = f"{start}:{stop}:{step}"
    em.call("np.copyto", em.ref(node.output), f"{em.ref(x)}[{_index(x.rank, entries)}]")


@lowering("pad")
def lower_pad(em, node):
    x, out = node.inputs[0], node.output
    target = em.ref(out)
    em.call(f"{target}.fill", f"{node.attrs.get('value', 0.0)!r}")
    entries = {d: f"{lo}:{lo + x.shape[d]}" for d, (lo, hi) in enumerate(node.attrs["pads"]) if lo or hi}
    em.call("np.copyto", f"{target}[{_index(out.rank, entries)}]", em.ref(x))


@lowering("broadcast_to")
def lower_broadcast_to(em, node):
    em.call("np.copyto", em.ref(node.output), em.ref(node.inputs[0]))


@lowering("repeat")
def lower_repeat(em, node):
    x, out = node.inputs[0], node.output
    axis, repeats = node.attrs["axis"], node.attrs["repeats"]
    dims = em.dims(x)
    target = dims[: axis + 1] + [str(repeats)] + dims[axis + 1 :]
    source = dims[: axis + 1] + ["1"] + dims[axis + 1 :]
    em.call("np.copyto", f"{em.ref(out)}.reshape(({', '.join(target)}))", f"{em.ref(x)}.reshape(({', '.join(source)}))")


@lowering("gather")
def lower_gather(em, node):
    table, indices = node.inputs
    row = int(np.prod(table.shape[1:]))
    em.call("T.gather_rows", f"{em.ref(table)}.reshape(({table.shape[0]}, {row}))", f"{em.ref(indices)}.reshape(-1)",
            f"{em.ref(node.output)}.reshape((-1, {row}))")


@lowering("resize")
def lower_resize(em, node):
    x, out = node.inputs[0], node.output
    method = node.attrs["method"]
    spatial_in, spatial_out = resize_geometry(node, "Numba")
    x4 = f"{em.ref(x)}.reshape((-1, {spatial_in[0]}, {spatial_in[1]}, {x.shape[-1]}))"
    out4 = f"{em.ref(out)}.reshape((-1, {spatial_out[0]}, {spatial_out[1]}, {x.shape[-1]}))"
    kernel = "T.resize_nearest" if method == "nearest" else "T.resize_bilinear"
    em.call(kernel, x4, out4, *resize_tables(em, spatial_in, spatial_out, method))


# -- recurrent layers ---------------------------------------------------------------------------------
@lowering("simple_rnn", "lstm", "gru")
def lower_rnn(em, node):
    a = node.attrs
    operands = rnn_operands(em, node, "Numba")
    x, kernel, recurrent, mask = operands.x, operands.kernel, operands.recurrent, operands.mask
    units, gates, steps = operands.units, operands.gates, operands.steps
    em.comment(f"{node.meta.get('layer', node.op)}: {node.op} over {steps} steps, {units} units")
    xw = em.scratch(f"{node.outputs[0].name}_xw", f"(batch, {steps}, {gates})")
    add = em.const(np.array([[OPCODES["add"], 0, 0]], np.int32), key="add_row0")
    bias_ep = (add, em.const(operands.input_bias.reshape(1, -1).astype(np.float32)),
               em.const(np.zeros((1, 1), np.float32), key="no_residual"))
    matrix_product(em, f"{em.ref(x)}.reshape((-1, {x.shape[-1]}))", em.ref(kernel), f"{xw}.reshape((-1, {gates}))",
                   bias_ep)
    h0, c0 = rnn_initial_states(em, operands)
    mask_expr = em.ref(mask) if mask is not None else em.const(np.zeros((1, 1), np.float32), key="no_residual")
    outs = node.outputs
    y = f"{em.ref(outs[0])}.reshape((-1, {steps if a['return_sequences'] else 1}, {units}))"
    h_out = em.ref(outs[1])
    if len(outs) > 2:
        c_out = em.ref(outs[2])
    else:
        c_out = em.scratch(f"{node.outputs[0].name}_c", f"(batch, {units})")
    flags = (int(a["go_backwards"]), int(a["return_sequences"]), int(a["zero_output_for_mask"]), int(mask is not None),
             int(operands.reset_after))
    act = RNN_ACTIVATIONS[a["activation"]]
    rec = RNN_ACTIVATIONS[a.get("recurrent_activation", "sigmoid")]
    em.call("N.rnn", str(CELLS[node.op]), xw, em.ref(recurrent), em.const(operands.recurrent_bias.astype(np.float32)),
            mask_expr, h0, c0, y, h_out, c_out, str(act), str(rec), tuple_text(flags))



# -- backward-only primitives (training graphs) ------------------------------------------------------
@lowering("reduce_batch")
def lower_reduce_batch(em, node):
    x, out = node.inputs[0], node.output
    axis = node.attrs["axis"]
    outer, inner = int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis + 1 :]))
    em.comment(f"{node.meta.get('layer', node.op)}: sum over the batch axis {axis}")
    em.call("R.reduce", f"{em.ref(x)}.reshape(({outer}, -1, {inner}))", f"{em.ref(out)}.reshape(({outer}, {inner}))", "R.SUM")


@lowering("conv_weight_grad")
def lower_conv_weight_grad(em, node):
    x, g = node.inputs
    out = node.output
    n = x.rank - 2
    a = node.attrs
    geometry = (_as_3d(a["window"], n) + _as_3d(a["strides"], n) + _as_3d(a["dilations"], n) + (0,) * (3 - n)
                + tuple(p[0] for p in a["pads"]))
    em.comment(f"{node.meta.get('layer', node.op)}: kernel gradient {out.type}")
    method = weight_grad_method(_shape_5d(x), _shape_5d(g), geometry)
    em.call("D.conv_weight_grad", _as_5d(em, x), _as_5d(em, g), f"{em.ref(out)}.reshape((-1, {out.shape[-1]}))",
            tuple_text(geometry), str(method))


@lowering("max_pool_grad")
def lower_max_pool_grad(em, node):
    x, g = node.inputs[:2]
    n = x.rank - 2
    a = node.attrs
    geometry = _as_3d(a["window"], n) + _as_3d(a["strides"], n) + (0,) * (3 - n) + tuple(p[0] for p in a["pads"])
    ep = epilogue_args(em, node)
    _comment(em, node, "max_pool gradient")
    em.call("D.max_pool_grad", _as_5d(em, x), _as_5d(em, g), _as_5d(em, node.output), tuple_text(geometry), *ep)


@lowering("scatter_add")
def lower_scatter_add(em, node):
    indices, updates = node.inputs
    out = node.output
    row = int(np.prod(out.shape[1:]))
    em.comment(f"{node.meta.get('layer', node.op)}: scatter-add into {out.type}")
    em.call("D.scatter_add", f"{em.ref(indices)}.reshape(-1)", f"{em.ref(updates)}.reshape((-1, {row}))",
            f"{em.ref(out)}.reshape(({out.shape[0]}, {row}))")
