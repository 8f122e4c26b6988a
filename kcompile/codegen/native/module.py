"""NativeModule: what lowerings write with, and the LLVM module they fill.

The generated code is a list of *steps*. A step is a function
`void body(env, lo, hi)` that does tasks [lo, hi) of one node's work; the entry point

    void kcgen_forward(i8 *arena, const i8 *weights, i64 batch, void *exec)

calls the C runtime's `kc_parallel_for(exec, body, env, ntasks, cost)` for each step
in order, which runs the tasks on the model's thread pool or inline.

Memory, in bytes from the arena's start (B = the batch, 64-byte aligned pieces):

    [0, ps*B)                 the memory plan's batch-sized buffers (graph inputs too)
    [ps*B, (ps+D)*B)          per-sample scratch of the node running now
    [(ps+D)*B, +S)            the plan's static buffers
    [(ps+D)*B + S, +Q)        static scratch

where D and Q are the largest scratch any node asks for (known once every node is
lowered: D is read from the constant global @kc_scratch_per_sample). Parameters and
packed weights live in one read-only blob linked into the library."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...ir import Graph
from ...passes.memory import MemoryPlan
from ..common import unique_name
from .irhelp import I8P, I64, VOID, Fn, Sym, i64

ALIGN = 64


@dataclass
class Isa:
    """What the code generator targets: vector width (floats) and vector registers."""

    width: int = 16
    registers: int = 32
    cpu: str = ""
    features: str = ""


class Blob:
    """The read-only weights blob: arrays at 64-byte aligned offsets."""

    def __init__(self):
        self.chunks: list = []
        self.size = 0
        self._keys: dict = {}

    def add(self, array: np.ndarray, key=None) -> int:
        if key is not None and key in self._keys:
            return self._keys[key]
        data = np.ascontiguousarray(array).tobytes()
        offset = self.size
        self.chunks.append((offset, data))
        self.size = offset + -(-max(len(data), 1) // ALIGN) * ALIGN
        if key is not None:
            self._keys[key] = offset
        return offset

    def data(self) -> bytes:
        out = bytearray(max(self.size, ALIGN))
        for offset, data in self.chunks:
            out[offset : offset + len(data)] = data
        return bytes(out)


def _round(n: int) -> int:
    return -(-int(n) // ALIGN) * ALIGN


@dataclass
class Step:
    label: str
    body: object  # ir.Function
    ntasks: object  # callable(Fn) -> i64 value
    cost: object


@dataclass
class Scratch:
    dynamic: bool
    offset: int  # bytes (per sample when dynamic) within this node's scratch


class Temp:
    """A tensor in scratch memory that lowerings use like a graph Value."""

    def __init__(self, name: str, type_, scratch: Scratch, factor: int):
        self.name, self.type, self.scratch, self.factor = name, type_, scratch, factor

    shape = property(lambda self: self.type.shape)
    dtype = property(lambda self: self.type.dtype)
    rank = property(lambda self: self.type.rank)


@dataclass
class Address:
    """base + per_sample * B + static bytes; `plan_static` adds D * B (see module doc)."""

    base: str  # "arena" or "weights"
    per_sample: int = 0
    static: int = 0
    plan_static: bool = False


class NativeModule:
    def __init__(self, graph: Graph, plan: MemoryPlan, isa: Isa):
        self.graph = graph
        self.plan = plan
        self.isa = isa
        self.module = ir.Module(name=f"kcompile_{graph.name}")
        self.blob = Blob()
        self.values = {v.name: v for v in graph.values()}
        self.env_ty = ir.LiteralStructType([I8P, I8P, I64, I8P])
        self.body_ty = ir.FunctionType(VOID, [I8P, I64, I64])
        self.steps: list[Step] = []
        self.scratch_dyn_max = 0
        self.scratch_static_max = 0
        self._dyn_used = 0
        self._static_used = 0
        self._names: set = set()
        self._kernels: dict = {}
        self.node = None
        self.dmax = ir.GlobalVariable(self.module, I64, "kc_scratch_per_sample")
        self.dmax.global_constant = True
        self.dmax.linkage = "internal"

    # -- naming -------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c in "._" else "_" for c in hint)[:60] or "k"
        return unique_name(base, self._names, ".", 2)

    # -- nodes and scratch ------------------------------------------------------------------------
    def begin_node(self, node):
        self.node = node
        self._dyn_used = 0
        self._static_used = 0

    def end_node(self):
        self.scratch_dyn_max = max(self.scratch_dyn_max, self._dyn_used)
        self.scratch_static_max = max(self.scratch_static_max, self._static_used)
        self.node = None

    def scratch(self, nbytes: Sym) -> Scratch:
        """Scratch memory for the current node (valid until the node's last step ends)."""
        if nbytes.dyn:
            s = Scratch(True, self._dyn_used)
            self._dyn_used += _round(nbytes.coef)
        else:
            s = Scratch(False, self._static_used)
            self._static_used += _round(nbytes.coef)
        return s

    def temp(self, hint: str, shape: tuple, dtype: str = "float32", factor: int = 1) -> Temp:
        """A scratch tensor for the current node (None in shape: the batch, times factor)."""
        from ...ir import TensorType
        from .irhelp import ITEMSIZE

        type_ = TensorType(shape, dtype)
        nbytes = Sym(type_.static_size() * ITEMSIZE[dtype] * (factor if None in shape else 1), None in shape)
        return Temp(self.fresh(hint), type_, self.scratch(nbytes), factor)

    # -- addresses -----------------------------------------------------------------------------------
    def param_offset(self, name: str) -> int:
        return self.blob.add(self.graph.params[name], key=("param", name))

    def address(self, value) -> Address:
        name = value.name if not isinstance(value, str) else value
        storage = self.plan.storage[name]
        while storage[0] == "view":
            name = storage[1]
            storage = self.plan.storage[name]
        if storage[0] == "param":
            return Address("weights", 0, self.param_offset(name))
        buf = self.plan.buffers[storage[1]]
        if buf.dynamic:
            return Address("arena", buf.offset, 0)
        return Address("arena", self.plan.per_sample_bytes, buf.offset, plan_static=True)

    def _offset(self, f: Fn, addr: Address):
        b = f.b
        per = i64(addr.per_sample)
        if addr.plan_static:
            per = b.add(per, b.load(self.dmax))
        off = b.mul(per, f.batch) if (addr.per_sample or addr.plan_static) else i64(0)
        return b.add(off, i64(addr.static)) if addr.static else off

    def ptr(self, f: Fn, value, dtype: str | None = None):
        """A typed pointer to `value`'s data inside step function f."""
        key = ("value", value.name, dtype)
        if isinstance(value, Temp):
            if key not in f._cache:
                f._cache[key] = self.scratch_ptr(f, value.scratch, dtype or value.dtype)
            return f._cache[key]
        if key not in f._cache:
            addr = self.address(value)
            base = f.arena if addr.base == "arena" else f.weights
            with at_start(f):
                f._cache[key] = f.byte_ptr(base, self._offset(f, addr), dtype or value.dtype)
        return f._cache[key]

    def const_ptr(self, f: Fn, array: np.ndarray, key=None):
        """A typed pointer to a constant array stored in the weights blob."""
        array = np.ascontiguousarray(array)
        offset = self.blob.add(array, key=key)
        with at_start(f):
            return f.byte_ptr(f.weights, i64(offset), str(array.dtype))

    def scratch_ptr(self, f: Fn, s: Scratch, dtype: str = "float32"):
        with at_start(f):
            b = f.b
            if s.dynamic:
                off = b.mul(i64(self.plan.per_sample_bytes + s.offset), f.batch)
            else:
                per = b.add(i64(self.plan.per_sample_bytes), b.load(self.dmax))
                off = b.add(b.mul(per, f.batch), i64(self.plan.static_bytes + s.offset))
            return f.byte_ptr(f.arena, off, dtype)

    def factor(self, value) -> int:
        if isinstance(value, Temp):
            return value.factor
        return int(self.plan.factors.get(value.name, 1))

    def dims(self, value) -> list:
        """Each dimension as an int or a Sym (the dynamic one: factor * batch)."""
        factor = self.factor(value)
        return [Sym(max(factor, 1), True) if d is None else int(d) for d in value.shape]

    def count(self, value) -> Sym:
        n = Sym(1)
        for d in self.dims(value):
            n = n * d
        return n

    def strides(self, value) -> list:
        """Row-major element strides (ints or Syms)."""
        out, acc = [], Sym(1)
        for d in reversed(self.dims(value)):
            out.append(acc)
            acc = acc * d
        return [s if s.dyn else s.coef for s in reversed(out)]

    # -- steps -----------------------------------------------------------------------------------------
    def step(self, label: str, body, ntasks=1, cost=0):
        """Add a step: body(f, lo, hi) writes tasks [lo, hi); ntasks/cost are ints, Syms or
        callables (forward Fn -> i64 value). cost (roughly: flops) decides parallelism."""
        fn = Fn(self.module, self.fresh(label), VOID, [I8P, I64, I64])
        fn.fn.args[0].name, fn.fn.args[1].name, fn.fn.args[2].name = "env", "lo", "hi"
        env = fn._entry.bitcast(fn.args[0], ir.PointerType(self.env_ty))
        fields = [fn._entry.load(fn._entry.gep(env, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), k)]))
                  for k in range(4)]
        fn.arena, fn.weights, fn.batch, fn.exec = fields
        fn.nm = self
        body(fn, fn.args[1], fn.args[2])
        fn.finish()
        self.steps.append(Step(label, fn.fn, ntasks, cost))

    def kernel(self, key, build):
        """A module-level helper function built once (micro-kernels)."""
        if key not in self._kernels:
            self._kernels[key] = build()
        return self._kernels[key]

    # -- the entry point ----------------------------------------------------------------------------
    def finish(self):
        """Emit kcgen_forward and fix the scratch constants. Returns the module."""
        self.dmax.initializer = ir.Constant(I64, self.scratch_dyn_max)
        f = Fn(self.module, "kcgen_forward", VOID, [I8P, I8P, I64, I8P], linkage="external")
        arena, weights, batch, exec_ = f.args
        for a, n in zip(f.args, ("arena", "weights", "batch", "exec")):
            a.name = n
        f.batch = batch
        env = f.alloca(self.env_ty, align=16)
        for k, v in enumerate((arena, weights, batch, exec_)):
            f.b.store(v, f.b.gep(env, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), k)]))
        env8 = f.b.bitcast(env, I8P)
        pfor = f.declare("kcrt_parallel_for", VOID, [I8P, ir.PointerType(self.body_ty), I8P, I64, I64])
        for step in self.steps:
            ntasks = _value(f, step.ntasks)
            cost = _value(f, step.cost)
            f.b.call(pfor, [exec_, step.body, env8, ntasks, cost])
        f.finish()
        return self.module

    def arena_sizes(self) -> tuple:
        """(bytes per sample, static bytes) of the whole arena."""
        return (self.plan.per_sample_bytes + self.scratch_dyn_max,
                self.plan.static_bytes + self.scratch_static_max)

    def c_address(self, value) -> tuple:
        """(base 0=arena 1=weights, bytes per sample, static bytes) for the C tables."""
        addr = self.address(value)
        per = addr.per_sample + (self.scratch_dyn_max if addr.plan_static else 0)
        return (0 if addr.base == "arena" else 1, per, addr.static)


def _value(f: Fn, spec):
    if callable(spec):
        return spec(f)
    return f.sym(spec)


@contextlib.contextmanager
def at_start(f: Fn):
    """Emit into the function's first code block, so the values dominate every later use."""
    saved = f.b.block
    if saved is not f._start:
        f.b.position_before(f._start.terminator)
    try:
        yield
    finally:
        if saved is not f._start:
            f.b.position_at_end(saved)


__all__ = ["Address", "Blob", "Isa", "NativeModule", "Scratch", "Temp"]
