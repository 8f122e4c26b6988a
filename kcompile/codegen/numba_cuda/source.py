"""Helpers for writing kernel source: an indenting line writer and index arithmetic."""
from __future__ import annotations

import contextlib


class Code:
    """Lines of Python source with an indentation level."""

    def __init__(self, level: int = 0):
        self.lines: list = []
        self.level = level

    def __call__(self, *lines: str):
        for line in lines:
            self.lines.append("    " * self.level + line if line else "")

    @contextlib.contextmanager
    def block(self, header: str):
        self(header)
        self.level += 1
        try:
            yield self
        finally:
            self.level -= 1

    def text(self) -> str:
        return "\n".join(self.lines)


def dim_exprs(shape, array: str) -> list:
    """Sizes of `shape` as kernel expressions: constants, `array.shape[d]` for the dynamic one."""
    return [f"{array}.shape[{d}]" if size is None else str(size) for d, size in enumerate(shape)]


def unflatten(code: Code, flat: str, dims: list, names: list):
    """Emit `names[d] = ...`: the row-major coordinates of index `flat` over sizes `dims`
    (the first size is never needed)."""
    if len(names) == 1:
        code(f"{names[0]} = {flat}")
        return
    code(f"rest = {flat}")
    for d in range(len(names) - 1, 0, -1):
        code(f"{names[d]} = rest % {dims[d]}")
        if d > 1:
            code(f"rest = rest // {dims[d]}")
    code(f"{names[0]} = rest // {dims[1]}")
