"""The primitive registry: one definition holds all of a primitive's rules.

A primitive is declared as a class whose static methods are its rules:

    @primitive("exp", kind=Kind.ELEMENTWISE)
    class Exp:
        infer = same_as_input          # input types + attrs -> output types
        reference = staticmethod(np.exp)   # the NumPy oracle
        grad = ...                     # gradient rule written as IR (training)
        decompose = ...                # optional: the op in terms of simpler ones

Backends keep their own lowering tables keyed by the primitive's name.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import KcompileError


class Kind(enum.Enum):
    """How a primitive may take part in fusion."""

    ELEMENTWISE = "elementwise"  # out[i] = f(in[i])
    BROADCAST = "broadcast"  # elementwise after broadcasting the inputs
    INJECTIVE = "injective"  # each output element reads one input element (reshape, slice, ...)
    REDUCTION = "reduction"  # reduces over some axes
    OUT_FUSABLE = "out-elementwise-fusable"  # matmul/conv: an elementwise epilogue can join
    OPAQUE = "opaque"  # none of the above
    COMPOSITE = "composite"  # its decomposition replaces it before lowering (expand_composites)


@dataclass(frozen=True)
class Primitive:
    name: str
    kind: Kind
    infer: Callable  # (list[TensorType], **attrs) -> list[TensorType]
    reference: Callable  # (*np.ndarray, **attrs) -> np.ndarray | tuple
    grad: Optional[Callable] = None  # (GradBuilder, node, output grads) -> input grads
    decompose: Optional[Callable] = None  # (GraphBuilder, *Value, **attrs) -> Value | tuple
    doc: str = ""

    def run_reference(self, *arrays, **attrs) -> list:
        out = self.reference(*arrays, **attrs)
        return list(out) if isinstance(out, (tuple, list)) else [out]


_PRIMITIVES: dict[str, Primitive] = {}


def primitive(name: str, kind: Kind):
    """Class decorator: register the class's rules as primitive `name`."""

    def register(cls):
        def rule(attr):
            fn = cls.__dict__.get(attr)
            return fn.__func__ if isinstance(fn, staticmethod) else fn

        prim = Primitive(
            name=name,
            kind=kind,
            infer=rule("infer"),
            reference=rule("reference"),
            grad=rule("grad"),
            decompose=rule("decompose"),
            doc=(cls.__doc__ or "").strip(),
        )
        if prim.infer is None or prim.reference is None:
            raise TypeError(f"primitive {name} needs infer and reference rules")
        define(prim)
        return cls

    return register


def define(prim: Primitive) -> Primitive:
    if prim.name in _PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} is defined twice")
    _PRIMITIVES[prim.name] = prim
    return prim


def get_primitive(name: str) -> Primitive:
    try:
        return _PRIMITIVES[name]
    except KeyError:
        raise KcompileError(f"unknown primitive {name!r}") from None


def all_primitives() -> dict[str, Primitive]:
    return dict(_PRIMITIVES)
