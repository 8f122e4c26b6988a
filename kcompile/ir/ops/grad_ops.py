"""What the gradient rules need beyond the forward primitives.

Four primitives the backward graph uses (each with infer, NumPy reference and its own
gradient rule):

    reduce_batch      sum over the dynamic (batch) dimension: parameter gradients
    conv_weight_grad  d(conv)/d(kernel): correlation of the input with the output gradient
    max_pool_grad     routes each window's gradient to the window's first maximum
    scatter_add       d(gather)/d(table): adds rows of updates into a zero table

and the helpers the rules in kcompile/ir/ops/*.py share: `unbroadcast` (sum a
gradient back to an operand's broadcast shape), `emit_program` (a fused program as
nodes), `backprop` (reverse mode over a list of nodes, the engine that
kcompile.autodiff runs over whole graphs) and `grad_by_decomposition` (the gradient of
a composite primitive as the gradient of its decomposition).

A gradient rule is `grad(b, node, out_grads) -> list`: `b` is a GraphBuilder appending
to the backward graph, `node` the forward node (its inputs, outputs and attrs are
values of that graph), `out_grads` one Value or None (no gradient flows) per output.
It returns one entry per input: a Value of exactly the input's type, or None for
"zero" (integer inputs, masks, comparisons). See kcompile.autodiff.
"""
from __future__ import annotations

import itertools

import numpy as np

from ...errors import IRError
from ..graph import TensorType, Value
from ..program import program_type, run_program
from ..registry import Kind, get_primitive, primitive
from ..shapes import window_output_size

FLOAT = "float32"


# -- helpers shared by the gradient rules --------------------------------------------------


def is_float(v: Value) -> bool:
    return v.dtype == FLOAT


def broadcast_like(b, g: Value, like: Value) -> Value:
    """g broadcast to the shape of `like` (including its dynamic dimension):
    where(like, g, g), which reads `like` only for its shape (NaN-safe)."""
    if g.shape == like.shape:
        return g
    return b.where(like, g, g)


def ones_like(b, v: Value) -> Value:
    """Ones of v's shape (float32), the dynamic dimension included."""
    one = b.const(1.0)
    return b.where(v, one, one)


def zeros_like(b, v: Value) -> Value:
    zero = b.const(0.0)
    return b.where(v, zero, zero)


def unbroadcast(b, g: Value, target: TensorType) -> Value:
    """Sum the gradient `g` of a broadcast result back to an operand of type `target`:
    over leading axes the operand lacks, over axes where it has size 1 (the dynamic
    batch axis through reduce_batch), then reshape to the operand's shape."""
    if g.shape == target.shape:
        return g
    lead = g.rank - target.rank
    if lead < 0:
        raise IRError(f"cannot unbroadcast a gradient {g.type} to {target}")

    def summed(i):
        return i < lead or (target.shape[i - lead] == 1 and g.shape[i] != 1)

    dyn = g.type.dynamic_axis
    if dyn is not None and summed(dyn):
        g = b.reduce_batch(g, axis=dyn, keepdims=True)
    axes = tuple(i for i in range(g.rank) if summed(i) and g.shape[i] not in (1, None))
    if axes:
        g = b.reduce_sum(g, axes=axes, keepdims=True)
    if g.shape != target.shape:
        g = b.reshape(g, shape=target.shape)
    return g


def emit_program(b, program, inputs, acc=None) -> Value:
    """Emit an elementwise program (see ir.program) as one node per instruction."""
    temps = []
    for op, args, attrs in program:
        values = []
        for arg in args:
            kind = arg[0]
            values.append(inputs[arg[1]] if kind == "in" else temps[arg[1]] if kind == "t" else acc)
        temps.append(b.emit(op, *values, **dict(attrs)))
    return temps[-1] if temps else acc


def accumulate(grads: dict, value: Value, g: Value, b) -> None:
    """Add `g` to the gradient collected for `value` (a value read several times)."""
    if g.type != value.type:
        raise IRError(f"gradient {g.type} for %{value.name}: {value.type}")
    prev = grads.get(value.name)
    grads[value.name] = g if prev is None else b.add(prev, g)


def backprop(b, nodes, grads: dict, active=None) -> dict:
    """Reverse mode over `nodes` (topological order). `grads` maps value names to the
    gradient Values collected so far (the seeds); it is extended with the gradient of
    every value the nodes read and returned. With `active` (a set of value names) only
    nodes reading an active value are differentiated, and only active inputs collect
    gradients."""
    for node in reversed(list(nodes)):
        out_grads = [grads.get(v.name) for v in node.outputs]
        if all(g is None for g in out_grads):
            continue
        if active is not None and not any(v.name in active for v in node.inputs):
            continue
        prim = get_primitive(node.op)
        if prim.grad is None:
            raise IRError(f"primitive {node.op!r} has no gradient rule")
        meta = {"backward_of": node.outputs[0].name}
        if "layer" in node.meta:
            meta["layer"] = node.meta["layer"]
        with b.meta(**meta):
            in_grads = prim.grad(b, node, out_grads)
        if len(in_grads) != len(node.inputs):
            raise IRError(f"gradient rule of {node.op} gave {len(in_grads)} gradients for {len(node.inputs)} inputs")
        for value, g in zip(node.inputs, in_grads):
            if g is None or not is_float(value) or (active is not None and value.name not in active):
                continue
            if g.type != value.type:
                raise IRError(f"gradient rule of {node.op} gave {g.type} for input %{value.name}: {value.type}")
            accumulate(grads, value, g, b)
    return grads


def grad_by_decomposition(b, node, out_grads, build=None) -> list:
    """The gradient of a composite node: emit its decomposition (`build(b, *inputs)`,
    default the primitive's decompose rule with the node's attrs) and differentiate it."""
    if build is None:
        decompose = get_primitive(node.op).decompose
        build = lambda bb, *inputs: decompose(bb, *inputs, **node.attrs)  # noqa: E731
    if b.insert_at is not None:
        raise IRError("gradient rules append to the backward graph; the builder inserts")
    start = len(b.graph.nodes)
    outs = build(b, *node.inputs)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    sub_nodes = b.graph.nodes[start:]
    grads: dict = {}
    for value, original, g in zip(outs, node.outputs, out_grads):
        if g is None:
            continue
        if value.type != original.type:  # a decomposition may broadcast less (RNN zero states)
            g = unbroadcast(b, g, value.type)
        accumulate(grads, value, g, b)
    backprop(b, sub_nodes, grads)
    return [grads.get(v.name) for v in node.inputs]


def transpose_pads(in_spatial, out_spatial, window, strides, dilations, pads) -> tuple:
    """conv_transpose crops (lo, hi) that map the gradient of a windowed op's output
    back onto its input: the full transposed length minus lo and the input length."""
    crops = []
    for n, o, k, s, d, (lo, _hi) in zip(in_spatial, out_spatial, window, strides, dilations, pads):
        full = (o - 1) * s + (k - 1) * d + 1
        crops.append((lo, full - lo - n))  # a negative hi: input cells no window reached
    return tuple(crops)


# -- epilogues ----------------------------------------------------------------------------------
# Fusion puts an elementwise epilogue (bias, activation, residual add) into matmul and
# conv, and in training graphs into max_pool_grad (ReLU's gradient after a pool's): the
# extra inputs follow the two operands and `epilogue` is a program over them and
# ("acc",), the primitive's own result. Without an epilogue it is the plain primitive.
def epilogue_infer(base):
    def infer(a, b, *extra, epilogue=(), **attrs):
        acc = base(a, b, **attrs)
        if not epilogue:
            return acc
        out = program_type(epilogue, list(extra), acc)
        if out.shape != acc.shape:
            raise IRError(f"epilogue changes the shape {acc} to {out}")
        return out

    return infer


def epilogue_reference(base):
    def reference(a, b, *extra, epilogue=(), **attrs):
        acc = base(a, b, **attrs)
        return run_program(epilogue, list(extra), acc) if epilogue else acc

    return reference


def epilogue_grad(plain_grad):
    """The gradient rule of a product with an optional epilogue: without one,
    `plain_grad(b, node, g)`; with one, the product and the program as separate nodes,
    differentiated (the backward pass runs on unfused graphs, so this is rare)."""

    def grad(b, node, out_grads):
        attrs = dict(node.attrs)
        program = attrs.pop("epilogue", ())
        if not program:
            return plain_grad(b, node, out_grads[0])

        def build(bb, a, w, *extra):
            return emit_program(bb, program, list(extra), bb.emit(node.op, a, w, **attrs))

        return grad_by_decomposition(b, node, out_grads, build)

    return grad


# -- primitives -------------------------------------------------------------------------------


def _windows(*args, **kwargs):
    from .linalg import _spatial_windows  # linalg imports this module's helpers

    return _spatial_windows(*args, **kwargs)


@primitive("reduce_batch", Kind.REDUCTION)
class ReduceBatch:
    """Sum over the dynamic (batch) dimension `axis`, which is dropped (kept as size 1
    with keepdims): parameter gradients sum the per-example contributions."""

    @staticmethod
    def infer(x, *, axis, keepdims=False):
        if x.dynamic_axis is None or x.dynamic_axis != axis:
            raise IRError(f"reduce_batch over axis {axis} of {x}, whose dynamic axis is {x.dynamic_axis}")
        shape = tuple(1 if i == axis else d for i, d in enumerate(x.shape) if keepdims or i != axis)
        return TensorType(shape, x.dtype)

    @staticmethod
    def reference(x, *, axis, keepdims=False):
        return np.asarray(np.sum(x, axis=axis, keepdims=keepdims), dtype=x.dtype)

    @staticmethod
    def grad(b, node, out_grads):
        (x,), (g,) = node.inputs, out_grads
        if not node.attrs.get("keepdims", False):
            g = b.reshape(g, shape=tuple(1 if i == node.attrs["axis"] else d for i, d in enumerate(x.shape)))
        return [broadcast_like(b, g, x)]


def _conv_weight_grad_type(x, g, *, window, strides, dilations, pads):
    spatial, out = x.shape[1:-1], g.shape[1:-1]
    if len(spatial) != len(window) or len(out) != len(window) or x.shape[0] != g.shape[0]:
        raise IRError(f"conv_weight_grad: input {x} and output gradient {g} for window {window}")
    expected = tuple(
        window_output_size(n, k, s, d, p) for n, k, s, d, p in zip(spatial, window, strides, dilations, pads)
    )
    if expected != tuple(out):
        raise IRError(f"conv_weight_grad: output gradient {g} does not fit input {x} (expected spatial {expected})")
    return TensorType(tuple(window) + (x.shape[-1], g.shape[-1]), x.dtype)


@primitive("conv_weight_grad", Kind.OPAQUE)
class ConvWeightGrad:
    """The gradient of conv (groups=1) with respect to its kernel: for input x (N, *S, C)
    and output gradient g (N, *O, F), out[*k, c, f] = sum over n and o of
    x_padded[n, o * strides + k * dilations, c] * g[n, o, f]; shape (*window, C, F)."""

    infer = staticmethod(_conv_weight_grad_type)

    @staticmethod
    def reference(x, g, *, window, strides, dilations, pads):
        patches = _windows(x, window, strides, dilations, pads)  # (N, *O, C, *K)
        n_sp = len(window)
        out_letters, k_letters = "OPQ"[:n_sp], "hij"[:n_sp]
        spec = f"n{out_letters}c{k_letters},n{out_letters}f->{k_letters}cf"
        return np.einsum(spec, patches, g, optimize=True).astype(x.dtype)

    @staticmethod
    def grad(b, node, out_grads):
        x, g = node.inputs
        (h,) = out_grads  # (*window, C, F)
        attrs = node.attrs
        crops = transpose_pads(x.shape[1:-1], g.shape[1:-1], attrs["window"], attrs["strides"], attrs["dilations"],
                               attrs["pads"])
        dx = b.conv_transpose(g, h, strides=attrs["strides"], dilations=attrs["dilations"], pads=crops)
        dg = b.conv(x, h, strides=attrs["strides"], dilations=attrs["dilations"], pads=attrs["pads"], groups=1)
        return [dx, dg]


def _pool_grad_type(x, g, *, window, strides, pads):
    spatial = x.shape[1:-1]
    expected = tuple(window_output_size(n, k, s, 1, p) for n, k, s, p in zip(spatial, window, strides, pads))
    if g.shape != (x.shape[0],) + expected + (x.shape[-1],) or g.dtype != x.dtype:
        raise IRError(f"max_pool_grad: gradient {g} does not fit max_pool of {x}")
    return x


def _max_pool_grad_grad(b, node, h):
    """max_pool_grad's gradient rule (h is x-shaped). Linear in g: each window reads the
    incoming gradient at its first maximum. Piecewise constant in x (no gradient)."""
    x, g = node.inputs
    window, strides, pads = node.attrs["window"], node.attrs["strides"], node.attrs["pads"]
    n_sp = len(window)
    y = b.max_pool(x, window=window, strides=strides, pads=pads)
    full_pads = ((0, 0),) + tuple(pads) + ((0, 0),)
    xp = b.pad(x, pads=full_pads, value=-np.inf) if any(p != (0, 0) for p in pads) else x
    hp = b.pad(h, pads=full_pads, value=0.0) if any(p != (0, 0) for p in pads) else h
    one = b.const(1.0)
    taken = None  # 1 where an earlier window cell already was the maximum
    total = None
    for pos in itertools.product(*[range(k) for k in window]):
        axes = tuple(range(1, n_sp + 1))
        starts = tuple(pos)
        stops = tuple(p + (o - 1) * s + 1 for p, o, s in zip(pos, y.shape[1:-1], strides))
        cut = dict(axes=axes, starts=starts, stops=stops, steps=tuple(strides))
        is_max = b.equal(b.slice(xp, **cut), y)
        first = is_max if taken is None else b.mul(is_max, b.sub(one, taken))
        taken = first if taken is None else b.add(taken, first)
        term = b.mul(first, b.slice(hp, **cut))
        total = term if total is None else b.add(total, term)
    return [None, total]


@primitive("max_pool_grad", Kind.OPAQUE)
class MaxPoolGrad:
    """The gradient of max_pool with respect to x: each window's output gradient g goes
    to the window's maximum (the first one in row-major window order on ties, as
    TensorFlow does); overlapping windows add up. Output has x's type."""

    infer = staticmethod(epilogue_infer(_pool_grad_type))

    @staticmethod
    @epilogue_reference
    def reference(x, g, *, window, strides, pads):
        n_sp = len(window)
        patches = _windows(x, window, strides, (1,) * n_sp, pads, -np.inf)  # (N, *O, C, *K)
        flat = patches.reshape(patches.shape[: n_sp + 2] + (-1,))
        offsets = np.unravel_index(np.argmax(flat, axis=-1), tuple(window))  # first maximum
        grids = np.indices(flat.shape[:-1], sparse=True)  # n, *o, c
        index = [grids[0]]
        for axis in range(n_sp):
            index.append(grids[1 + axis] * strides[axis] + offsets[axis])
        index.append(grids[-1])
        padded_shape = (x.shape[0],) + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[1:-1], pads)) + (x.shape[-1],)
        out = np.zeros(padded_shape, dtype=x.dtype)
        np.add.at(out, tuple(index), g)
        crop = (slice(None),) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[1:-1], pads)) + (slice(None),)
        return np.ascontiguousarray(out[crop])

    grad = staticmethod(epilogue_grad(_max_pool_grad_grad))


@primitive("scatter_add", Kind.OPAQUE)
class ScatterAdd:
    """The gradient of gather with respect to its table: a (rows, *row shape) zero table
    to which updates[i] is added at row indices[i] (repeated indices add up)."""

    @staticmethod
    def infer(indices, updates, *, rows):
        if indices.dtype not in ("int32", "int64"):
            raise IRError(f"scatter_add indices must be integers, got {indices}")
        if updates.shape[: indices.rank] != indices.shape:
            raise IRError(f"scatter_add updates {updates} do not start with the indices' shape {indices}")
        return TensorType((rows,) + updates.shape[indices.rank :], updates.dtype)

    @staticmethod
    def reference(indices, updates, *, rows):
        if indices.size and (indices.min() < 0 or indices.max() >= rows):
            raise IndexError(f"scatter_add index out of range [0, {rows})")
        out = np.zeros((rows,) + updates.shape[indices.ndim :], dtype=updates.dtype)
        np.add.at(out, indices, updates)
        return out

    @staticmethod
    def grad(b, node, out_grads):
        indices, _ = node.inputs
        return [None, b.gather(out_grads[0], indices)]
