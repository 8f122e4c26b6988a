"""Elementwise math as LLVM IR, written once for scalars and vectors.

`emit_op(f, op, args, dtypes, attrs)` computes one elementwise/broadcast primitive on
values already loaded (all of one width); `eval_program` runs a fused program (see
kcompile.ir.program). exp and tanh are open-coded polynomials (Cephes) so that
vector code stays vector code; the rarer functions (log1p, expm1, erf) call the C
library lane by lane."""
from __future__ import annotations

from llvmlite import ir

from ...errors import KcompileError
from .irhelp import F32, I32, const, elem_type, ir_type, width_of

FLOAT_ONLY = {"exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "erf", "softplus",
              "div", "pow", "relu_grad"}
COMPARISONS = {"greater": (">", "ogt"), "greater_equal": (">=", "oge"), "less": ("<", "olt"),
               "less_equal": ("<=", "ole"), "equal": ("==", "oeq"), "not_equal": ("!=", "une")}
LIBM = {"log1p": "log1pf", "expm1": "expm1f", "erf": "erff"}
# Ops on booleans: everything else raises (NumPy's bool arithmetic is logical, not 0/1 sums).
BOOL_OPS = {"identity", "cast", "where", "equal", "not_equal"}

SUPPORTED = set(COMPARISONS) | FLOAT_ONLY | {
    "identity", "neg", "abs", "square", "relu", "sign", "floor", "add", "sub", "mul", "maximum", "minimum", "clip",
    "cast", "where"}


def result_dtype(op: str, dtypes: list, attrs: dict) -> str:
    if op == "cast":
        return attrs["dtype"]
    if op == "where":
        return dtypes[1]
    return dtypes[0]


def check_supported(op: str, dtypes: list, attrs: dict):
    """Raise at build time for what the native backend does not compute."""
    if op not in SUPPORTED:
        raise KcompileError(f"the native backend has no elementwise rule for {op!r}")
    operand = dtypes[1] if op == "where" else dtypes[0]
    if op in FLOAT_ONLY and operand != "float32":
        raise KcompileError(f"native backend: {op} on {operand} tensors is not supported")
    if operand == "bool" and op not in BOOL_OPS:
        raise KcompileError(f"native backend: {op} on bool tensors is not supported")


def _fconst(x, v):
    return const(x.type, float(v))


def _select(f, cond, a, b):
    return f.b.select(cond, a, b)


def fmax(f, a, b):
    return _select(f, f.b.fcmp_ordered(">", a, b), a, b)


def fmin(f, a, b):
    return _select(f, f.b.fcmp_ordered("<", a, b), a, b)


def poly(f, x, coeffs):
    """Horner: ((c0 x + c1) x + c2) ..."""
    acc = _fconst(x, coeffs[0])
    for c in coeffs[1:]:
        acc = f.b.fadd(f.b.fmul(acc, x), _fconst(x, c))
    return acc


def exp(f, x):
    """Cephes expf: exp(x) = 2^n e^r, |r| <= ln2/2; inf above 88.7, 0 below -88.4."""
    b = f.b
    ity = ir.VectorType(I32, width_of(x)) if width_of(x) > 1 else I32
    xc = fmin(f, fmax(f, x, _fconst(x, -88.3762626647949)), _fconst(x, 88.3762626647949))
    fx = f.intrinsic("floor", [b.fadd(b.fmul(xc, _fconst(x, 1.44269504088896341)), _fconst(x, 0.5))])
    r = b.fsub(xc, b.fmul(fx, _fconst(x, 0.693359375)))
    r = b.fsub(r, b.fmul(fx, _fconst(x, -2.12194440e-4)))
    p = poly(f, r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                    5.0000001201e-1])
    y = b.fadd(b.fadd(b.fmul(b.fmul(p, r), r), r), _fconst(x, 1.0))
    n = b.fptosi(fx, ity)
    scale = b.bitcast(b.shl(b.add(n, const(ity, 127)), const(ity, 23)), x.type)
    y = b.fmul(y, scale)
    y = _select(f, b.fcmp_ordered(">", x, _fconst(x, 88.72283935546875)), _fconst(x, float("inf")), y)
    # NaN stays NaN
    return _select(f, b.fcmp_unordered("uno", x, x), x, y)


def tanh(f, x):
    """Cephes tanhf: an odd polynomial below 0.625, 1 - 2 / (e^{2|x|} + 1) above."""
    b = f.b
    ax = f.intrinsic("fabs", [x])
    z = b.fmul(x, x)
    small = b.fadd(b.fmul(b.fmul(poly(f, z, [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                              1.33314422036e-1, -3.33332819422e-1]), z), x), x)
    e = exp(f, b.fmul(ax, _fconst(x, 2.0)))
    large = b.fsub(_fconst(x, 1.0), b.fdiv(_fconst(x, 2.0), b.fadd(e, _fconst(x, 1.0))))
    large = f.intrinsic("copysign", [large, x])
    return _select(f, b.fcmp_ordered("<", ax, _fconst(x, 0.625)), small, large)


def sigmoid(f, x):
    one = _fconst(x, 1.0)
    return f.b.fdiv(one, f.b.fadd(one, exp(f, f.b.fneg(x))))


def libm(f, name: str, x):
    """A C library float function, lane by lane for vectors."""
    fn = f.declare(name, F32, [F32], attrs=("nounwind", "readnone"))
    if width_of(x) == 1:
        return f.b.call(fn, [x])
    out = x
    for lane in range(width_of(x)):
        k = ir.Constant(I32, lane)
        out = f.b.insert_element(out, f.b.call(fn, [f.b.extract_element(x, k)]), k)
    return out


def _bool_to(f, cond, ty):
    """An i1 (vector) as 1/0 in type ty."""
    if isinstance(elem_type(ty), ir.FloatType):
        return f.b.uitofp(cond, ty)
    return f.b.zext(cond, ty)


def _nonzero(f, x):
    if isinstance(elem_type(x.type), ir.FloatType):
        return f.b.fcmp_unordered("!=", x, _fconst(x, 0.0))
    return f.b.icmp_signed("!=", x, const(x.type, 0))


def cast(f, x, src: str, dst: str):
    if src == dst:
        return x
    width = width_of(x)
    ty = ir_type(dst, width)
    b = f.b
    if dst == "bool":
        return b.zext(_nonzero(f, x), ty)
    if src == "bool":
        return b.uitofp(x, ty) if dst == "float32" else b.zext(x, ty)
    if src == "float32":  # truncate toward zero; saturating so that NaN/huge values stay defined
        return _fptosi_sat(f, x, ty)
    if dst == "float32":
        return b.sitofp(x, ty)
    if elem_type(ty).width > elem_type(x.type).width:
        return b.sext(x, ty)
    return b.trunc(x, ty)


def _fptosi_sat(f, x, ty):
    fn = f.declare(f"llvm.fptosi.sat.{_mangle(ty)}.{_mangle(x.type)}", ty, [x.type])
    return f.b.call(fn, [x])


def _mangle(ty):
    from .irhelp import mangle

    return mangle(ty)


def emit_op(f, op: str, args: list, dtypes: list, attrs: dict):
    """One primitive on loaded values (scalars or vectors of one width)."""
    b = f.b
    x = args[0]
    is_float = dtypes[1 if op == "where" else 0] == "float32"
    if op == "identity":
        return x
    if op == "cast":
        return cast(f, x, dtypes[0], attrs["dtype"])
    if op == "where":
        return b.select(_nonzero(f, x), args[1], args[2])
    if op in COMPARISONS:
        icmp, fcmp = COMPARISONS[op]
        if not is_float:
            cond = b.icmp_signed(icmp, x, args[1])
        elif fcmp == "une":  # NaN != anything
            cond = b.fcmp_unordered("!=", x, args[1])
        else:
            cond = b.fcmp_ordered(icmp, x, args[1])
        return _bool_to(f, cond, x.type)
    if op == "clip":
        low, high = attrs["low"], attrs["high"]
        if is_float:
            return fmin(f, fmax(f, x, _fconst(x, low)), _fconst(x, high))
        lo, hi = const(x.type, int(low)), const(x.type, int(high))
        x = b.select(b.icmp_signed("<", x, lo), lo, x)
        return b.select(b.icmp_signed(">", x, hi), hi, x)
    rules = FLOAT_RULES if is_float else INT_RULES
    if op not in rules:
        if not is_float:
            raise KcompileError(f"native backend: {op} on integer tensors is not supported")
        raise KcompileError(f"the native backend has no elementwise rule for {op!r}")
    return rules[op](f, *args)


def _f_relu(f, x):
    return f.b.select(f.b.fcmp_ordered("<", x, _fconst(x, 0.0)), _fconst(x, 0.0), x)


def _f_relu_grad(f, g, y):
    return f.b.select(f.b.fcmp_ordered(">", y, _fconst(y, 0.0)), g, _fconst(g, 0.0))


def _f_sign(f, x):
    b = f.b
    pos = b.select(b.fcmp_ordered(">", x, _fconst(x, 0.0)), _fconst(x, 1.0), x)
    return b.select(b.fcmp_ordered("<", x, _fconst(x, 0.0)), _fconst(x, -1.0), pos)


def _f_softplus(f, x):
    b = f.b
    return b.fadd(b.select(b.fcmp_ordered(">", x, _fconst(x, 0.0)), x, _fconst(x, 0.0)),
                  libm(f, "log1pf", exp(f, b.fneg(f.intrinsic("fabs", [x])))))


# float32 primitives: name -> function(f, *operands) emitting the result.
FLOAT_RULES = {
    "neg": lambda f, x: f.b.fneg(x),
    "abs": lambda f, x: f.intrinsic("fabs", [x]),
    "exp": exp,
    "log": lambda f, x: f.intrinsic("log", [x]),
    **{op: (lambda name: lambda f, x: libm(f, name, x))(name) for op, name in LIBM.items()},
    "sqrt": lambda f, x: f.intrinsic("sqrt", [x]),
    "rsqrt": lambda f, x: f.b.fdiv(_fconst(x, 1.0), f.intrinsic("sqrt", [x])),
    "square": lambda f, x: f.b.fmul(x, x),
    "reciprocal": lambda f, x: f.b.fdiv(_fconst(x, 1.0), x),
    "tanh": tanh,
    "sigmoid": sigmoid,
    "relu": _f_relu,
    "relu_grad": _f_relu_grad,
    "sign": _f_sign,
    "floor": lambda f, x: f.intrinsic("floor", [x]),
    "softplus": _f_softplus,
    "add": lambda f, x, y: f.b.fadd(x, y),
    "sub": lambda f, x, y: f.b.fsub(x, y),
    "mul": lambda f, x, y: f.b.fmul(x, y),
    "div": lambda f, x, y: f.b.fdiv(x, y),
    "pow": lambda f, x, y: f.intrinsic("pow", [x, y]),
    "maximum": fmax,
    "minimum": fmin,
}


def _i_select(f, pred, x, y):
    """x where x `pred` y (signed), else y."""
    return f.b.select(f.b.icmp_signed(pred, x, y), x, y)


def _i_sign(f, x):
    b = f.b
    zero = const(x.type, 0)
    pos = b.select(b.icmp_signed(">", x, zero), const(x.type, 1), zero)
    return b.select(b.icmp_signed("<", x, zero), const(x.type, -1), pos)


# int32/int64 primitives (the float-only ones are refused earlier, by check_supported).
INT_RULES = {
    "neg": lambda f, x: f.b.sub(const(x.type, 0), x),
    "abs": lambda f, x: f.b.select(f.b.icmp_signed("<", x, const(x.type, 0)), f.b.sub(const(x.type, 0), x), x),
    "square": lambda f, x: f.b.mul(x, x),
    "relu": lambda f, x: f.b.select(f.b.icmp_signed("<", x, const(x.type, 0)), const(x.type, 0), x),
    "sign": _i_sign,
    "floor": lambda f, x: x,
    "add": lambda f, x, y: f.b.add(x, y),
    "sub": lambda f, x, y: f.b.sub(x, y),
    "mul": lambda f, x, y: f.b.mul(x, y),
    "maximum": lambda f, x, y: _i_select(f, ">", x, y),
    "minimum": lambda f, x, y: _i_select(f, "<", x, y),
}


def program_dtypes(program, in_dtypes: list, acc_dtype: str | None = None) -> list:
    """The dtype of every instruction's result; checks each is supported."""
    temps = []
    for op, args, attrs in program:
        dts = [_arg(a, in_dtypes, temps, acc_dtype) for a in args]
        check_supported(op, dts, dict(attrs))
        temps.append(result_dtype(op, dts, dict(attrs)))
    return temps


def _arg(a, inputs, temps, acc):
    return inputs[a[1]] if a[0] == "in" else temps[a[1]] if a[0] == "t" else acc


def eval_program(f, program, in_values: list, in_dtypes: list, acc=None, acc_dtype: str | None = None):
    """The program's result for loaded operand values: (value, dtype)."""
    temps, tdts = [], []
    for op, args, attrs in program:
        values = [_arg(a, in_values, temps, acc) for a in args]
        dts = [_arg(a, in_dtypes, tdts, acc_dtype) for a in args]
        attrs = dict(attrs)
        temps.append(emit_op(f, op, values, dts, attrs))
        tdts.append(result_dtype(op, dts, attrs))
    if not temps:
        return acc, acc_dtype
    return temps[-1], tdts[-1]


def node_program(node) -> tuple:
    """A node as a program (a lone primitive is a program of one instruction)."""
    if node.op == "fused_elementwise":
        return node.attrs["program"]
    args = tuple(("in", k) for k in range(len(node.inputs)))
    return ((node.op, args, tuple(sorted(node.attrs.items()))),)


__all__ = ["emit_op", "eval_program", "exp", "node_program", "program_dtypes", "sigmoid", "tanh"]
