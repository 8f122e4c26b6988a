"""Generated kernels that slide a window over channels-last data: depthwise and
transposed convolution (with the epilogue), pooling and its gradient, one thread per
output element; and the im2col loads of the implicit-GEMM convolutions.

Ops are described on three spatial axes (1-D and 2-D ones have unit leading axes), but
the kernels keep only the `active` axes: tensors arrive viewed as (N, *active spatial,
C), and a bounds check is emitted only where a window can actually leave the input."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .source import Code

AXES = "dhw"


@dataclass(frozen=True)
class Geometry:
    window: tuple  # (KD, KH, KW)
    strides: tuple
    dilations: tuple
    pads: tuple  # leading pad (or, transposed, crop) per axis
    in_spatial: tuple  # (D, H, W)
    out_spatial: tuple  # (OD, OH, OW)
    channels: int  # of the output

    @property
    def pixels(self) -> int:
        return int(np.prod(self.out_spatial))

    @property
    def active(self) -> list:
        """Axes that are not a unit placeholder (window, input and output 1, no padding)."""
        return [a for a in range(3) if (self.window[a], self.in_spatial[a], self.out_spatial[a], self.pads[a]) != (1, 1, 1, 0)]

    def in_dims(self) -> list:
        return [self.in_spatial[a] for a in self.active]

    def out_dims(self) -> list:
        return [self.out_spatial[a] for a in self.active]

    def window_dims(self) -> list:
        return [self.window[a] for a in self.active]

    def may_leave(self, a: int) -> tuple:
        """(may the input index on axis a go below 0, may it reach the input size) for a window."""
        low = -self.pads[a]
        high = (self.out_spatial[a] - 1) * self.strides[a] - self.pads[a] + (self.window[a] - 1) * self.dilations[a]
        return low < 0, high >= self.in_spatial[a]


def digit(flat: str, sizes: list, a: int, first: bool) -> str:
    """Coordinate a of row-major `flat` over `sizes` (the first one needs no modulo)."""
    inner = int(np.prod(sizes[a + 1 :]))
    text = f"{flat} // {inner}" if inner > 1 else flat
    return text if first else f"{text} % {sizes[a]}"


def position(out: str, stride: int, pad: int, offset: str, dilation: int) -> str:
    """`out * stride - pad + offset * dilation`, without the multiplications by one and the zeros."""
    text = out if stride == 1 else f"{out} * {stride}"
    if pad:
        text += f" - {pad}"
    return f"{text} + {offset if dilation == 1 else f'{offset} * {dilation}'}"


def _start(code: Code, name: str, params: list, doc: str):
    code("@cuda.jit(cache=CACHE)")
    code(f"def {name}({', '.join(params)}):")
    code.level += 1
    code(f'"""{doc}"""')


def _loop_outputs(code: Code, g: Geometry):
    """Open the grid-stride loop over out (pixels, channels): defines row, ch, n and o<axis>."""
    code(f"for e in range(cuda.grid(1), out.shape[0] * {g.channels}, cuda.gridsize(1)):")
    code.level += 1
    code(f"row = e // {g.channels}", f"ch = e % {g.channels}", f"n = row // {g.pixels}")
    for a in g.active:
        code(f"o{AXES[a]} = {digit('row', list(g.out_spatial), a, False)}")


def _skip_outside(code: Code, g: Geometry, a: int, index: str):
    below, above = g.may_leave(a)
    tests = ([f"{index} < 0"] if below else []) + ([f"{index} >= {g.in_spatial[a]}"] if above else [])
    if tests:
        code(f"if {' or '.join(tests)}:", "    continue")


def _window_loops(code: Code, g: Geometry):
    """Nested loops over the window; inside, i<axis> is a valid input position."""
    for a in g.active:
        x = AXES[a]
        code(f"for k{x} in range({g.window[a]}):")
        code.level += 1
        code(f"i{x} = {position(f'o{x}', g.strides[a], g.pads[a], f'k{x}', g.dilations[a])}")
        _skip_outside(code, g, a, f"i{x}")


def _transposed_loops(code: Code, g: Geometry, inputs: tuple):
    """Loops over the window of a transposed op: the input positions i<axis> whose window
    position k<axis> lands on output o<axis> (out + crop = in * stride + k * dilation)."""
    for a in g.active:
        x = AXES[a]
        code(f"for k{x} in range({g.window[a]}):")
        code.level += 1
        crop = f" + {g.pads[a]}" if g.pads[a] else ""
        code(f"full_{x} = o{x}{crop} - {f'k{x}' if g.dilations[a] == 1 else f'k{x} * {g.dilations[a]}'}")
        tests = [f"full_{x} < 0"] + ([f"full_{x} % {g.strides[a]} != 0"] if g.strides[a] > 1 else [])
        tests.append(f"full_{x} >= {inputs[a] * g.strides[a]}")
        code(f"if {' or '.join(tests)}:", "    continue")
        code(f"i{x} = full_{x} // {g.strides[a]}" if g.strides[a] > 1 else f"i{x} = full_{x}")


def _at(g: Geometry, prefix: str) -> str:
    return "".join(f"{prefix}{AXES[a]}, " for a in g.active)


def depthwise_kernel(name: str, params: list, doc: str, g: Geometry, multiplier: int, store) -> str:
    """x (N, *S, C), w (*window, C * multiplier): one input channel per output channel."""
    code = Code()
    _start(code, name, params, doc)
    _loop_outputs(code, g)
    code(f"c = ch // {multiplier}" if multiplier > 1 else "c = ch", "total = ZERO")
    level = code.level
    _window_loops(code, g)
    code(f"total += x[n, {_at(g, 'i')}c] * w[{_at(g, 'k')}ch]")
    code.level = level
    store(code, "0", "row", "ch", "total")
    return code.text()


def conv_transpose_kernel(name: str, params: list, doc: str, g: Geometry, in_channels: int, store) -> str:
    """x (N, *S, C), w (*window, F, C) as Keras stores it; g.pads are the crops."""
    code = Code()
    _start(code, name, params, doc)
    _loop_outputs(code, g)
    code("total = ZERO")
    level = code.level
    _transposed_loops(code, g, g.in_spatial)
    with code.block(f"for c in range({in_channels}):"):
        code(f"total += x[n, {_at(g, 'i')}c] * w[{_at(g, 'k')}ch, c]")
    code.level = level
    store(code, "0", "row", "ch", "total")
    return code.text()


def pool_kernel(name: str, doc: str, g: Geometry, is_max: bool, count_include_pad: bool) -> str:
    """x (N, *S, C) -> out (pixels, C); padding never wins a max and counts toward an
    average only with count_include_pad."""
    code = Code()
    _start(code, name, ["x", "out"], doc)
    _loop_outputs(code, g)
    padded = any(any(g.may_leave(a)) for a in g.active)
    code("total = NEG_INF" if is_max else "total = ZERO")
    if padded and not is_max and not count_include_pad:
        code("count = 0")
    level = code.level
    _window_loops(code, g)
    if padded and not is_max and not count_include_pad:
        code("count += 1")
    code(f"total = max(total, x[n, {_at(g, 'i')}ch])" if is_max else f"total += x[n, {_at(g, 'i')}ch]")
    code.level = level
    if is_max:
        code("out[row, ch] = total")
    elif padded and not count_include_pad:
        code("out[row, ch] = total / np.float32(max(count, 1))")
    else:
        code(f"out[row, ch] = total / np.float32({int(np.prod(g.window))})")
    return code.text()


def max_pool_grad_kernel(name: str, doc: str, g: Geometry) -> str:
    """dx (N, *S, C) of max_pool(x): each window's gradient (grad, pooled-shaped) goes to
    its first maximum. A thread per input element gathers from the windows holding it (no
    atomics): for each, it finds the window's first maximum and compares positions."""
    code = Code()
    _start(code, name, ["x", "grad", "out"], doc)
    pixels = int(np.prod(g.in_spatial))
    with code.block(f"for e in range(cuda.grid(1), out.shape[0] * {pixels * g.channels}, cuda.gridsize(1)):"):
        code(f"ch = e % {g.channels}", f"row = e // {g.channels}", f"n = row // {pixels}")
        for a in g.active:
            # the gradient's position here is the pooled input's: loop variables o<axis> are windows
            code(f"o{AXES[a]} = {digit('row', list(g.in_spatial), a, False)}")
        code("total = ZERO")
        level = code.level
        _transposed_loops(code, g, g.out_spatial)  # i<axis>: the windows holding this element
        code("best = NEG_INF", *(f"best_{AXES[a]} = 0" for a in g.active))
        inner = code.level
        for a in g.active:
            x = AXES[a]
            code(f"for j{x} in range({g.window[a]}):")
            code.level += 1
            code(f"at_{x} = {position(f'i{x}', g.strides[a], g.pads[a], f'j{x}', 1)}")
            _skip_outside(code, g, a, f"at_{x}")
        value = f"x[n, {_at(g, 'at_')}ch]"
        with code.block(f"if {value} > best:"):
            code(f"best = {value}", *(f"best_{AXES[a]} = j{AXES[a]}" for a in g.active))
        code.level = inner
        same = " and ".join(f"best_{AXES[a]} == k{AXES[a]}" for a in g.active) or "True"
        with code.block(f"if {same}:"):
            code(f"total += grad[n, {_at(g, 'i')}ch]")
        code.level = level
        code(f"out[n, {_at(g, 'o')}ch] = total")
    return code.text()


def im2col_load(code: Code, target: str, g: Geometry, channels: int, pixel: str, column: str, channel_base: str):
    """`target` = im2col(x)[pixel, column], read from x (N, *S, C) on the fly: pixel indexes
    (n, output position), column (window position, channel of the group)."""
    code(f"a_n = {pixel} // {g.pixels}")
    window = list(g.window) + [channels]
    tests = []
    for rank, a in enumerate(g.active):
        x = AXES[a]
        here = digit(pixel, list(g.out_spatial), a, False)
        offset = digit(column, window, a, rank == 0)
        code(f"a_{x} = {position(f'({here})', g.strides[a], g.pads[a], f'({offset})', g.dilations[a])}")
        below, above = g.may_leave(a)
        if below and above:
            tests.append(f"0 <= a_{x} < {g.in_spatial[a]}")
        elif below:
            tests.append(f"a_{x} >= 0")
        elif above:
            tests.append(f"a_{x} < {g.in_spatial[a]}")
    channel = f"{column} % {channels}" if channels > 1 else "0"
    channel = f"{channel_base} + {channel}" if channel_base != "0" else channel
    load = f"{target} = x[a_n, {_at(g, 'a_')}{channel}]"
    if tests:
        code(f"{target} = ZERO  # padding")
        with code.block(f"if {' and '.join(tests)}:"):
            code(load)
    else:
        code(load)
