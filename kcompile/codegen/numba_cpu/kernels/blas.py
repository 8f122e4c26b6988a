"""Single-threaded BLAS sgemm on sub-matrices of row- or column-major operands.

np.dot in Numba needs contiguous operands and output, so a kernel that wants a tile of
a product, or a transposed operand, would have to copy. This calls the same BLAS that
np.dot does (SciPy's, through Numba's `numba_xxgemm` helper, resolved by name so cached
kernels keep working) with leading dimensions and transpose flags instead: a transposed
operand is an array view with column-major strides, never a copy."""
from numba import njit, types
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

ensure_blas()  # SciPy's BLAS must be importable for numba_xxgemm to find it

_FLOAT_P = types.CPointer(types.float32)
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char,  # kind, transa, transb
    types.intp, types.intp, types.intp,  # m, n, k
    _FLOAT_P, _FLOAT_P, types.intp,  # alpha, a, lda
    _FLOAT_P, types.intp,  # b, ldb
    _FLOAT_P, _FLOAT_P, types.intp,  # beta, c, ldc
))
_S, _N, _T = ord("s"), ord("n"), ord("t")


@intrinsic
def _address(typingctx, array, offset):
    """Pointer to element `offset` (counted in elements) of `array`'s data."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.gep(data, [args[1]])

    return _FLOAT_P(array, types.intp), codegen


@njit(inline="always")
def _layout(x):
    """(row step, column step) of a 2-D array in elements; one of them is 1."""
    return x.strides[0] // x.itemsize, x.strides[1] // x.itemsize


@njit(cache=True, nogil=True)
def gemm_tile(a, b, out, r0, r1, c0, c1, scalars):
    """out[r0:r1, c0:c1] = scalars[0] * a[r0:r1] @ b[:, c0:c1] + scalars[1] * out[r0:r1, c0:c1].

    a (M, K) and b (K, N) may each be row-major or a transposed view (column-major);
    out is row-major. BLAS is column-major, so this asks it for out^T = b^T @ a^T: a
    row-major matrix is its transpose in column-major order."""
    k = a.shape[1]
    a_row, a_col = _layout(a)
    b_row, b_col = _layout(b)
    trans_a = a_col != 1  # a is a transposed view
    trans_b = b_col != 1
    # A stride along an axis of length 1 is arbitrary: max() keeps BLAS's checks happy.
    lda = max(a_col, r1 - r0) if trans_a else max(a_row, k)
    ldb = max(b_col, k) if trans_b else max(b_row, c1 - c0)
    ldc = max(out.strides[0] // out.itemsize, c1 - c0)
    return _xxgemm(_S, _T if trans_b else _N, _T if trans_a else _N, c1 - c0, r1 - r0, k,
                   _address(scalars, 0), _address(b, c0 * b_col), ldb, _address(a, r0 * a_row), lda,
                   _address(scalars, 1), _address(out, r0 * ldc + c0), ldc)

