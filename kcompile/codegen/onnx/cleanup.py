"""Peephole cleanup of the ONNX node list the lowerings produced.

The channels-first ONNX operators are wrapped in transposes; between two of them the
pair Transpose(to channels-last) -> Transpose(to channels-first) composes to nothing.
sink_transposes moves a transpose below the elementwise nodes that follow it (a
BatchNorm's scale and shift, an activation) so that it meets the next one;
cancel_transposes composes consecutive transposes (cancel_squeezes drops the
Squeeze/Unsqueeze pairs lifted 1-D layers leave), and remove_dead drops what no output
needs any more (and initializers nobody reads). Subgraphs (Scan bodies) may read
the enclosing graph's tensors, so renames reach into them and their reads count."""
from __future__ import annotations

import numpy as np
from onnx import AttributeProto, helper, numpy_helper

# ONNX operators computed element by element (after NumPy broadcasting).
ELEMENTWISE = {
    "Abs", "Add", "And", "Cast", "Clip", "Div", "Equal", "Erf", "Exp", "Floor", "Greater", "GreaterOrEqual",
    "HardSigmoid", "Identity", "LeakyRelu", "Less", "LessOrEqual", "Log", "Max", "Min", "Mul", "Neg", "Not", "Or",
    "Pow", "Reciprocal", "Relu", "Sigmoid", "Sign", "Softplus", "Sqrt", "Sub", "Tanh", "Where",
}


def subgraphs(node):
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def rename_inputs(node, rename: dict):
    """Apply `rename` to what `node` reads, inside its subgraphs too."""
    node.input[:] = [rename.get(n, n) for n in node.input]
    for graph in subgraphs(node):
        for inner in graph.node:
            rename_inputs(inner, rename)


def reads(node) -> set:
    """Every tensor name `node` reads, its subgraphs' reads included."""
    names = {n for n in node.input if n}
    for graph in subgraphs(node):
        for inner in graph.node:
            names |= reads(inner)
    return names


def _perm(node) -> list:
    return list(next(a for a in node.attribute if a.name == "perm").ints)


def _fold_pairs(nodes: list, keep: set, fold) -> list:
    """Walk `nodes` in order, renames applied. fold(inner, node, removable) sees each node
    with `inner`, the node producing its first input: it returns True when `node` gives
    back inner's input (and `removable`: its output is not in `keep`), and the node is
    dropped, its readers reading inner's input; else False (it may rewrite `node`)."""
    producer: dict = {}
    rename: dict = {}
    result = []
    for node in nodes:
        rename_inputs(node, rename)
        inner = producer.get(node.input[0]) if node.input else None
        if inner is not None and fold(inner, node, node.output[0] not in keep):
            rename[node.output[0]] = inner.input[0]
            continue
        for out in node.output:
            producer[out] = node
        result.append(node)
    return result


def cancel_transposes(nodes: list, keep: set) -> list:
    """Transpose(Transpose(x, p), q) -> Transpose(x, p[q]), or x itself when that is the
    identity; `keep` holds tensor names that must stay (the graph outputs)."""
    def fold(inner, node, removable):
        if node.op_type != "Transpose" or inner.op_type != "Transpose":
            return False
        p, q = _perm(inner), _perm(node)
        composed = [p[i] for i in q]
        if composed == list(range(len(composed))) and removable:
            return True
        node.input[0] = inner.input[0]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("perm", composed))
        return False

    return _fold_pairs(nodes, keep, fold)


def cancel_squeezes(nodes: list, initializers: list, keep: set) -> list:
    """Unsqueeze(Squeeze(x, axes), axes) -> x (the pair between two lifted 1-D layers);
    `keep` holds tensor names that must stay (the graph outputs)."""
    constants = {t.name: t for t in initializers}

    def fold(inner, node, removable):
        return (removable and node.op_type == "Unsqueeze" and inner.op_type == "Squeeze"
                and _same_constant(constants, inner.input[1], node.input[1]))

    return _fold_pairs(nodes, keep, fold)


def _same_constant(constants: dict, a: str, b: str) -> bool:
    if a not in constants or b not in constants:
        return False
    return np.array_equal(numpy_helper.to_array(constants[a]), numpy_helper.to_array(constants[b]))


def remove_dead(nodes: list, initializers: list, keep: set) -> tuple:
    """Drop nodes none of whose outputs is needed, then unread initializers."""
    needed = set(keep)
    live = []
    for node in reversed(nodes):
        if any(out in needed for out in node.output if out):
            live.append(node)
            needed |= reads(node)
    live.reverse()
    return live, [t for t in initializers if t.name in needed]


def sink_transposes(nodes: list, initializers: list, keep: set, fresh) -> list:
    """Elementwise(Transpose(x, p), constants) -> Transpose(Elementwise(x, constants'), p)
    where the transpose has no other reader; constants' are the constants permuted back
    (new initializers, appended to `initializers`). Operands that are transposes by the
    same p are read untransposed too. `fresh(hint)` makes new tensor names."""
    constants = {t.name: t for t in initializers}
    changed = True
    while changed:
        changed = False
        producer = {out: node for node in nodes for out in node.output}
        readers: dict = {}
        for node in nodes:
            for name in reads(node):
                readers.setdefault(name, []).append(node)
        for index, node in enumerate(nodes):
            if node.op_type != "Transpose" or node.output[0] in keep:
                continue
            users = readers.get(node.output[0], [])
            user = users[0] if len(users) == 1 else None
            if user is None or user.op_type not in ELEMENTWISE or user.output[0] in keep or len(user.output) != 1:
                continue
            perm = _perm(node)
            inputs = _untransposed(user, node, perm, producer, constants, initializers, fresh)
            if inputs is None:
                continue
            # user now computes in x's layout; the transpose moves below it.
            result = user.output[0]
            user.input[:] = inputs
            user.output[0] = fresh(result + ".untransposed")
            node.input[0] = user.output[0]
            node.output[0] = result
            nodes.remove(node)
            nodes.insert(nodes.index(user) + 1, node)
            changed = True
            break
    return nodes


def _untransposed(user, transpose, perm, producer, constants, initializers, fresh):
    """`user`'s inputs with `transpose` undone, or None when some operand cannot follow."""
    rank = len(perm)
    inverse = list(np.argsort(perm))
    inputs = []
    for name in user.input:
        source = producer.get(name)
        if name == transpose.output[0]:
            inputs.append(transpose.input[0])
        elif source is not None and source.op_type == "Transpose" and _perm(source) == perm:
            inputs.append(source.input[0])
        elif name in constants:
            array = numpy_helper.to_array(constants[name])
            if array.size == 1 or array.ndim == 0:
                inputs.append(name)
                continue
            if array.ndim > rank:
                return None
            permuted = np.ascontiguousarray(array.reshape((1,) * (rank - array.ndim) + array.shape).transpose(inverse))
            tensor = numpy_helper.from_array(permuted, fresh(name + ".permuted"))
            initializers.append(tensor)
            constants[tensor.name] = tensor
            inputs.append(tensor.name)
        elif name == "":
            inputs.append(name)
        else:
            return None
    return inputs


def fold_transpose_into_weights(nodes: list, initializers: list, shapes: dict, fresh) -> list:
    """Transpose(x, p) -> Reshape(to (batch, K)) -> Gemm/MatMul(., W) becomes
    Reshape(x) -> Gemm/MatMul(., W') with W's rows permuted to x's own element order:
    a channels-first conv stack flattened into a Dense layer needs no transpose back to
    Keras's channels-last order. `shapes` gives the transposes' output shapes (the IR
    shapes bound to them); W' is a new initializer, so a shared W stays as it was."""
    constants = {t.name: t for t in initializers}
    producer = {out: node for node in nodes for out in node.output}
    readers: dict = {}
    for node in nodes:
        for name in reads(node):
            readers.setdefault(name, []).append(node)

    def only_reader(name):
        users = readers.get(name, [])
        return users[0] if len(users) == 1 else None

    for reshape in nodes:
        if reshape.op_type != "Reshape" or reshape.input[1] not in constants:
            continue
        transpose = producer.get(reshape.input[0])
        product = only_reader(reshape.output[0])
        if transpose is None or transpose.op_type != "Transpose" or only_reader(transpose.output[0]) is not reshape:
            continue
        if product is None or product.op_type not in ("Gemm", "MatMul") or product.input[0] != reshape.output[0]:
            continue
        if any(a.name in ("transA", "transB") and a.i for a in product.attribute) or product.input[1] not in constants:
            continue
        perm, shape = _perm(transpose), shapes.get(transpose.output[0])
        target = numpy_helper.to_array(constants[reshape.input[1]])
        weight = numpy_helper.to_array(constants[product.input[1]])
        if shape is None or perm[0] != 0 or any(not isinstance(d, int) for d in shape[1:]):
            continue
        rows = int(np.prod(shape[1:]))
        if target.tolist() not in ([-1, rows], [0, rows]) or weight.ndim != 2 or weight.shape[0] != rows:
            continue
        # Row r of W multiplies element r of the transposed flattening; x's element at
        # its own index i sits at transposed position positions[i].
        axes = [p - 1 for p in perm[1:]]
        positions = np.arange(rows).reshape(shape[1:]).transpose(np.argsort(axes)).ravel()
        permuted = numpy_helper.from_array(np.ascontiguousarray(weight[positions]),
                                           fresh(product.input[1] + ".unpermuted"))
        initializers.append(permuted)
        constants[permuted.name] = permuted
        reshape.input[0] = transpose.input[0]
        product.input[1] = permuted.name
    return nodes


def unit_transposes_to_reshapes(nodes: list, initializers: list, shapes: dict, fresh) -> list:
    """A Transpose that moves only axes of size 1 (a one-channel image to channels-first)
    keeps the elements in order: it becomes a Reshape, which copies nothing. `shapes`
    gives the input shapes known from the IR (None: the batch)."""
    for node in nodes:
        shape = shapes.get(node.input[0]) if node.op_type == "Transpose" else None
        if shape is None or sum(d is None for d in shape) > 1:
            continue
        perm = _perm(node)
        moved = [axis for axis in perm if shape[axis] != 1]
        if moved != sorted(moved):
            continue
        target = numpy_helper.from_array(np.array([-1 if shape[p] is None else shape[p] for p in perm], np.int64),
                                         fresh(node.output[0] + ".shape"))
        initializers.append(target)
        node.op_type = "Reshape"
        del node.attribute[:]
        node.input.append(target.name)
    return nodes
