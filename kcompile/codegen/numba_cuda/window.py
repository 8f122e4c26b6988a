"""Generated kernels that slide a window over channels-last data, one thread per output
element: depthwise and transposed convolution (with the epilogue) and pooling. Inputs
arrive as 5-D views (N, D, H, W, C): 1-D and 2-D ops have unit leading extents; outputs
as 2-D views (pixels, channels), so epilogues index them like a matmul's."""
from __future__ import annotations

from dataclasses import dataclass

from .source import Code


@dataclass(frozen=True)
class Geometry:
    window: tuple  # (KD, KH, KW)
    strides: tuple
    dilations: tuple
    pads: tuple  # leading pad (or crop) per axis
    in_spatial: tuple  # (D, H, W)
    out_spatial: tuple  # (OD, OH, OW)
    channels: int  # of the output

    @property
    def pixels(self) -> int:
        od, oh, ow = self.out_spatial
        return od * oh * ow


def _loop_outputs(code: Code, g: Geometry):
    """Open the grid-stride loop over out (pixels, channels); defines row, ch, n, od, oh, ow."""
    od_, oh_, ow_ = g.out_spatial
    code.level += 1
    code(f"for e in range(cuda.grid(1), out.shape[0] * {g.channels}, cuda.gridsize(1)):")
    code.level += 1
    code(f"row = e // {g.channels}", f"ch = e % {g.channels}",
         f"n = row // {g.pixels}", f"od = row // {oh_ * ow_} % {od_}", f"oh = row // {ow_} % {oh_}", f"ow = row % {ow_}")


def _start(code: Code, name: str, params: list, doc: str):
    code("@cuda.jit(cache=CACHE)")
    code(f"def {name}({', '.join(params)}):")
    code(f'    """{doc}"""')


def _window_loops(code: Code, g: Geometry, transposed: bool = False):
    """Nested loops over the window; inside, (d, h, w) is a valid input position."""
    names = ("d", "h", "w")
    outs = ("od", "oh", "ow")
    for axis in range(3):
        k, s, dil, p, size = g.window[axis], g.strides[axis], g.dilations[axis], g.pads[axis], g.in_spatial[axis]
        kv, iv = f"k{names[axis]}", f"i{names[axis]}"
        code(f"for {kv} in range({k}):")
        code.level += 1
        if transposed:
            # full-output position (out + crop) = input * stride + k * dilation
            code(f"full_{names[axis]} = {outs[axis]} + {p} - {kv} * {dil}")
            code(f"if full_{names[axis]} < 0 or full_{names[axis]} % {s} != 0 or full_{names[axis]} // {s} >= {size}:")
            code("    continue")
            code(f"{iv} = full_{names[axis]} // {s}")
        else:
            code(f"{iv} = {outs[axis]} * {s} - {p} + {kv} * {dil}")
            code(f"if {iv} < 0 or {iv} >= {size}:")
            code("    continue")


def depthwise_kernel(name: str, params: list, doc: str, g: Geometry, multiplier: int, store) -> str:
    """x (N, D, H, W, C), w (KD, KH, KW, C * multiplier)."""
    code = Code()
    _start(code, name, params, doc)
    _loop_outputs(code, g)
    code(f"c = ch // {multiplier}", "total = ZERO")
    level = code.level
    _window_loops(code, g)
    code("total += x[n, id, ih, iw, c] * w[kd, kh, kw, ch]")
    code.level = level
    store(code, "row", "ch", "total")
    return code.text()


def conv_transpose_kernel(name: str, params: list, doc: str, g: Geometry, in_channels: int, store) -> str:
    """x (N, D, H, W, C), w (KD, KH, KW, F, C) as Keras stores it; g.pads are the crops."""
    code = Code()
    _start(code, name, params, doc)
    _loop_outputs(code, g)
    code("total = ZERO")
    level = code.level
    _window_loops(code, g, transposed=True)
    with code.block(f"for c in range({in_channels}):"):
        code("total += x[n, id, ih, iw, c] * w[kd, kh, kw, ch, c]")
    code.level = level
    store(code, "row", "ch", "total")
    return code.text()


def pool_kernel(name: str, doc: str, g: Geometry, is_max: bool, count_include_pad: bool) -> str:
    """x (N, D, H, W, C) -> out (pixels, C); padding never wins a max and counts toward an
    average only with count_include_pad."""
    code = Code()
    _start(code, name, ["x", "out"], doc)
    _loop_outputs(code, g)
    code("total = NEG_INF" if is_max else "total = ZERO", "count = 0")
    level = code.level
    _window_loops(code, g)
    code("count += 1")
    code("total = max(total, x[n, id, ih, iw, ch])" if is_max else "total += x[n, id, ih, iw, ch]")
    code.level = level
    if is_max:
        code("out[row, ch] = total")
    elif count_include_pad:
        code(f"out[row, ch] = total / np.float32({g.window[0] * g.window[1] * g.window[2]})")
    else:
        code("out[row, ch] = total / np.float32(max(count, 1))")
    return code.text()
