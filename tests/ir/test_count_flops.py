"""report.count_flops: what the benchmarks' GFLOP/s figures divide."""
import numpy as np

from kcompile.ir import GraphBuilder
from kcompile.ir.ops.grad_ops import transpose_pads
from kcompile.report import count_flops


def test_a_convolutions_three_training_passes_count_the_same_multiply_adds():
    b = GraphBuilder("conv_passes")
    x, g = b.input("x", (None, 12, 10, 3)), b.input("g", (None, 6, 5, 8))
    w = b.param(np.zeros((3, 3, 3, 8), np.float32))
    strides, dilations, pads = (2, 2), (1, 1), ((1, 1), (0, 1))
    multiply_adds = 7 * 6 * 5 * 8 * (3 * 3 * 3)  # each output of the forward pass: a 3x3x3 window
    assert b.conv(x, w, strides=strides, dilations=dilations, pads=pads, groups=1).shape == g.shape
    assert count_flops(b.graph, 7) == 2 * multiply_adds
    crops = transpose_pads((12, 10), (6, 5), (3, 3), strides, dilations, pads)
    b.conv_transpose(g, w, strides=strides, dilations=dilations, pads=crops)  # input gradient
    assert count_flops(b.graph, 7) == 4 * multiply_adds
    b.conv_weight_grad(x, g, window=(3, 3), strides=strides, dilations=dilations, pads=pads)  # kernel gradient
    assert count_flops(b.graph, 7) == 6 * multiply_adds


def test_a_product_over_the_batch_counts_the_batch():
    b = GraphBuilder("weight_gradient")
    x, g = b.input("x", (None, 30)), b.input("g", (None, 4))
    b.matmul(b.transpose(x, perm=(1, 0)), g)  # x^T @ g: (30, batch) @ (batch, 4)
    assert count_flops(b.graph, 16) == 2 * 30 * 16 * 4
