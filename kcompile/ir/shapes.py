"""Shape arithmetic shared by the primitives' inference rules. `None` is the dynamic dim."""
from __future__ import annotations

import numpy as np

from ..errors import IRError


def broadcast_shapes(*shapes: tuple) -> tuple:
    """NumPy broadcasting where `None` (the batch dimension) stays `None`."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    result = []
    for dims in zip(*padded):
        known = {d for d in dims if d is not None and d != 1}
        if None in dims:
            if known:
                raise IRError(f"cannot broadcast shapes {shapes}: dynamic dimension against {known}")
            result.append(None)
        elif len(known) > 1:
            raise IRError(f"cannot broadcast shapes {shapes}")
        else:
            result.append(known.pop() if known else 1)
    return tuple(result)


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise IRError(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def normalize_axes(axes, rank: int) -> tuple:
    return tuple(sorted(normalize_axis(a, rank) for a in axes))


def reshape_target(in_shape: tuple, target: tuple) -> tuple:
    """Resolve a reshape target: -1 is inferred from static sizes, `None` stays dynamic."""
    static_in = int(np.prod([d for d in in_shape if d is not None], dtype=np.int64))
    known = int(np.prod([d for d in target if d not in (None, -1)], dtype=np.int64))
    if None in in_shape:
        if None not in target:
            raise IRError(f"reshape {in_shape} -> {target} must keep the dynamic dimension")
        if -1 in target:
            raise IRError(f"reshape {in_shape} -> {target}: -1 beside a dynamic dimension")
        # The dynamic size is a multiple of the ratio of static sizes.
        if known and static_in % known and known % static_in:
            raise IRError(f"cannot reshape {in_shape} into {target}")
        return tuple(target)
    if -1 in target:
        if static_in % known:
            raise IRError(f"cannot reshape {in_shape} into {target}")
        target = tuple(static_in // known if d == -1 else d for d in target)
    if int(np.prod(target, dtype=np.int64)) != static_in:
        raise IRError(f"cannot reshape {in_shape} into {target}")
    return tuple(target)


def window_output_size(size: int, window: int, stride: int, dilation: int, pad: tuple) -> int:
    """Output length of a conv/pool window sliding over `size` with explicit padding."""
    effective = (window - 1) * dilation + 1
    out = (size + pad[0] + pad[1] - effective) // stride + 1
    if out <= 0:
        raise IRError(f"window {window} (dilation {dilation}) does not fit input length {size} with padding {pad}")
    return out


def same_padding(size: int, window: int, stride: int, dilation: int = 1) -> tuple:
    """TensorFlow's 'same' padding: the extra element goes at the end."""
    effective = (window - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return (total // 2, total - total // 2)
