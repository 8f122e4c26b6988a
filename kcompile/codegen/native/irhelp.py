"""Small helpers over llvmlite.ir for writing kernels: types per dtype, symbolic sizes
(`Sym`: a constant or a constant times the batch), and `Fn`, a function under
construction with loops, pointers, vector loads/stores and constants.

Scalars and vectors are handled alike: a "width" of 1 means scalar values, a width
of W means `<W x T>` vectors; the math in mathops.py is written once for both."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from llvmlite import ir

F32 = ir.FloatType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VOID = ir.VoidType()
I8P = ir.PointerType(I8)

DTYPE_IR = {"float32": F32, "int32": I32, "int64": I64, "bool": I8}
ITEMSIZE = {"float32": 4, "int32": 4, "int64": 8, "bool": 1}


def ir_type(dtype: str, width: int = 1):
    elem = DTYPE_IR[dtype]
    return elem if width == 1 else ir.VectorType(elem, width)


def mangle(ty) -> str:
    """LLVM's overload suffix for a type: f32, v16f32, i32, v8i64."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{mangle(ty.element)}"
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    raise TypeError(f"no mangling for {ty}")


def width_of(value) -> int:
    ty = value.type
    return ty.count if isinstance(ty, ir.VectorType) else 1


def elem_type(ty):
    return ty.element if isinstance(ty, ir.VectorType) else ty


@dataclass(frozen=True)
class Sym:
    """A size known up to the batch: `coef * batch` when `dyn`, else `coef`."""

    coef: int
    dyn: bool = False

    def __mul__(self, other):
        if isinstance(other, Sym):
            if self.dyn and other.dyn:
                raise ValueError("a size cannot hold the batch twice")
            return Sym(self.coef * other.coef, self.dyn or other.dyn)
        return Sym(self.coef * int(other), self.dyn)

    __rmul__ = __mul__

    def static(self) -> int:
        if self.dyn:
            raise ValueError("size depends on the batch")
        return self.coef

    def __str__(self):
        return f"{self.coef}*batch" if self.dyn else str(self.coef)


def const(ty, value):
    """A constant of type `ty` (a vector type gets `value` in every lane)."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def i64(n: int):
    return ir.Constant(I64, int(n))


class Fn:
    """A function being written. Allocas go to the entry block; code to `self.b`."""

    def __init__(self, module: ir.Module, name: str, ret, args: list, linkage: str = "internal"):
        self.module = module
        self.fn = ir.Function(module, ir.FunctionType(ret, args), name)
        self.fn.linkage = linkage
        self.fn.attributes.add("nounwind")
        entry = self.fn.append_basic_block("entry")
        start = self.fn.append_basic_block("start")
        self._entry = ir.IRBuilder(entry)
        self.b = ir.IRBuilder(start)
        self._start = start
        self.args = self.fn.args
        self.batch = None  # set by the owner for kernels that see the batch
        self._cache: dict = {}

    def finish(self, value=None):
        """Close the function: the entry block falls through to the code."""
        if not self.b.block.is_terminated:
            if value is None:
                self.b.ret_void()
            else:
                self.b.ret(value)
        self._entry.branch(self._start)
        return self.fn

    # -- constants and symbolic sizes ------------------------------------------------------
    def sym(self, s):
        """An i64 value for an int, a Sym, or a tuple of them (their sum)."""
        if isinstance(s, tuple):
            total = i64(0)
            for part in s:
                total = self.b.add(total, self.sym(part))
            return total
        if isinstance(s, Sym):
            if not s.dyn:
                return i64(s.coef)
            return self.b.mul(self.batch, i64(s.coef)) if s.coef != 1 else self.batch
        if isinstance(s, int):
            return i64(s)
        return s

    def alloca(self, ty, count: int = 1, align: int = 64, name: str = ""):
        slot = self._entry.alloca(ty, size=None if count == 1 else i64(count), name=name)
        slot.align = align
        return slot

    def var(self, ty, init=None, name=""):
        """A mutable local (mem2reg turns it into SSA)."""
        slot = self.alloca(ty, align=64 if isinstance(ty, ir.VectorType) else 8, name=name)
        if init is not None:
            self.b.store(init, slot)
        return slot

    # -- control flow ------------------------------------------------------------------------
    @contextlib.contextmanager
    def loop(self, start, stop, step: int = 1, name: str = "i"):
        """for (i = start; i < stop; i += step): yields i (i64)."""
        b = self.b
        start, stop = self.sym(start), self.sym(stop)
        pre = b.block
        header = self.fn.append_basic_block(f"{name}.head")
        body = self.fn.append_basic_block(f"{name}.body")
        exit_ = self.fn.append_basic_block(f"{name}.exit")
        b.branch(header)
        b.position_at_end(header)
        index = b.phi(I64, name=name)
        index.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", index, stop), body, exit_)
        b.position_at_end(body)
        yield index
        latch = b.block
        nxt = b.add(index, i64(step), name=f"{name}.next")
        b.branch(header)
        index.add_incoming(nxt, latch)
        b.position_at_end(exit_)

    @contextlib.contextmanager
    def if_then(self, cond):
        with self.b.if_then(cond):
            yield

    def if_else(self, cond):
        return self.b.if_else(cond)

    def vloop(self, start, stop, width: int, body):
        """body(index, lanes) over [start, stop): vectors of `width`, then a scalar tail."""
        b = self.b
        start, stop = self.sym(start), self.sym(stop)
        if width > 1:
            count = b.sub(stop, start)
            vec_stop = b.add(start, b.and_(count, i64(-width)))
            with self.loop(start, vec_stop, width, name="v") as i:
                body(i, width)
            start = vec_stop
        with self.loop(start, stop, 1, name="s") as i:
            body(i, 1)

    def min(self, a, b_):
        a, b_ = self.sym(a), self.sym(b_)
        return self.b.select(self.b.icmp_signed("<", a, b_), a, b_)

    def max(self, a, b_):
        a, b_ = self.sym(a), self.sym(b_)
        return self.b.select(self.b.icmp_signed(">", a, b_), a, b_)

    def ceil_div(self, a, d: int):
        a = self.sym(a)
        return self.b.sdiv(self.b.add(a, i64(d - 1)), i64(d))

    # -- memory ----------------------------------------------------------------------------------
    def byte_ptr(self, base, offset, dtype: str):
        """A typed pointer at `offset` bytes (i64 value or int) past the i8* `base`."""
        p = self.b.gep(base, [self.sym(offset)])
        return self.b.bitcast(p, ir.PointerType(DTYPE_IR[dtype]))

    def elem_ptr(self, ptr, index):
        return self.b.gep(ptr, [self.sym(index)])

    def load(self, ptr, index, width: int = 1, align: int | None = None):
        """ptr[index] (a scalar) or ptr[index : index + width] (a vector)."""
        p = self.b.gep(ptr, [self.sym(index)]) if index is not None else ptr
        elem = p.type.pointee
        size = _size(elem)
        if width == 1:
            return self.b.load(p, align=size)
        vp = self.b.bitcast(p, ir.PointerType(ir.VectorType(elem, width)))
        return self.b.load(vp, align=align or size)

    def store(self, value, ptr, index, align: int | None = None):
        p = self.b.gep(ptr, [self.sym(index)]) if index is not None else ptr
        elem = p.type.pointee
        size = _size(elem)
        width = width_of(value)
        if width == 1:
            self.b.store(value, p, align=size)
            return
        vp = self.b.bitcast(p, ir.PointerType(ir.VectorType(elem, width)))
        self.b.store(value, vp, align=align or size)

    def splat(self, scalar, width: int):
        if width == 1:
            return scalar
        ty = ir.VectorType(scalar.type, width)
        v = self.b.insert_element(ir.Constant(ty, ir.Undefined), scalar, ir.Constant(I32, 0))
        mask = ir.Constant(ir.VectorType(I32, width), [0] * width)
        return self.b.shuffle_vector(v, ir.Constant(ty, ir.Undefined), mask)

    # -- calls -------------------------------------------------------------------------------------
    def declare(self, name: str, ret, args: list, attrs=("nounwind",)):
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
            for a in attrs:
                fn.attributes.add(a)
        return fn

    def intrinsic(self, name: str, args: list, ret=None, fastmath=()):
        """Call llvm.<name>.<suffix of the first argument's type>."""
        ty = args[0].type
        ret = ret or ty
        fn = self.declare(f"llvm.{name}.{mangle(ty)}", ret, [a.type for a in args])
        return self.b.call(fn, args, fastmath=fastmath)


def _size(elem) -> int:
    if isinstance(elem, ir.FloatType):
        return 4
    if isinstance(elem, ir.IntType):
        return max(elem.width // 8, 1)
    return 8
