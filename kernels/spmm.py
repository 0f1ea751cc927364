r"""Products of a CSR matrix :math:`A` with dense row blocks (the LightGCN propagation).

Three products over the CSR arrays ``indptr`` / ``indices`` / ``data`` of
:math:`A` (shape ``(n_rows, n_cols)``), without building any other sparse
matrix:

- :func:`csr_matmul`: :math:`A X`;
- :func:`csr_matmul_rows`: :math:`A_{R,:} X` for a list of rows :math:`R`;
- :func:`csr_matmul_rows_adjoint`: :math:`A_{R,:}^\top G`, the adjoint of the previous one.

Every output element is a sum over the stored entries of one row (for the
adjoint: over the listed rows, in the order given, then over each row's stored
entries) in a fixed order, accumulated in the output dtype, and written by one
thread only, so the results are bit-identical for any number of Numba threads.
With equal dtypes the order and the arithmetic are those of scipy's CSR x
dense kernel (one multiply and one add per entry, no fused multiply-add), which
the tests use as the oracle.

Preconditions that are not checked (they would cost a pass over the matrix):
``indptr`` is non-decreasing with ``indptr[0] == 0``, and every column index
is in ``[0, n_cols)``. SciPy's CSR matrices satisfy both.
"""

import numba
import numpy as np

__all__ = ["csr_matmul", "csr_matmul_rows", "csr_matmul_rows_adjoint"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@numba.njit(inline="always", cache=True)
def _row_times(indptr, indices, data, row, x, out, at):
    """``out[at] = A[row] @ x``."""
    for c in range(x.shape[1]):
        out[at, c] = 0
    for k in range(indptr[row], indptr[row + 1]):
        a = data[k]
        j = indices[k]
        for c in range(x.shape[1]):
            out[at, c] += a * x[j, c]


@numba.njit(parallel=True, nogil=True, cache=True)
def _matmul(indptr, indices, data, x, out):
    for r in numba.prange(indptr.shape[0] - 1):
        _row_times(indptr, indices, data, r, x, out, r)


@numba.njit(parallel=True, nogil=True, cache=True)
def _matmul_rows(indptr, indices, data, rows, x, out):
    for b in numba.prange(rows.shape[0]):
        _row_times(indptr, indices, data, rows[b], x, out, b)


@numba.njit(nogil=True, cache=True)
def _scatter_columns(indptr, indices, data, rows, g, out, start, stop):
    """Output rows ``[start, stop)`` of ``A[rows].T @ g``: every listed row of ``A`` is read, only
    its entries in columns ``[start, stop)`` are added (in the order of ``rows``, then of storage)."""
    for j in range(start, stop):
        for c in range(g.shape[1]):
            out[j, c] = 0
    for b in range(rows.shape[0]):
        row = rows[b]
        for k in range(indptr[row], indptr[row + 1]):
            j = indices[k]
            if start <= j < stop:
                a = data[k]
                for c in range(g.shape[1]):
                    out[j, c] += a * g[b, c]


@numba.njit(parallel=True, nogil=True, cache=True)
def _matmul_rows_adjoint(indptr, indices, data, rows, g, out, n_parts):
    n_out = out.shape[0]
    for p in numba.prange(n_parts):
        _scatter_columns(indptr, indices, data, rows, g, out, n_out * p // n_parts, n_out * (p + 1) // n_parts)


def _check_csr(indptr, indices, data):
    indptr, indices, data = (np.ascontiguousarray(a) for a in (indptr, indices, data))
    if indptr.ndim != 1 or indptr.shape[0] < 1 or indptr.dtype.kind != "i":
        raise ValueError(f"indptr must be a 1-D integer array of length n_rows + 1 >= 1; got "
                         f"shape {indptr.shape}, dtype {indptr.dtype}.")
    if indices.ndim != 1 or indices.dtype.kind != "i":
        raise ValueError(f"indices must be a 1-D integer array; got shape {indices.shape}, dtype {indices.dtype}.")
    if data.shape != indices.shape or data.dtype not in _FLOATS:
        raise ValueError(f"data must be float32 or float64 of the shape of indices {indices.shape}; got "
                         f"shape {data.shape}, dtype {data.dtype}.")
    if indptr[-1] != indices.shape[0]:
        raise ValueError(f"indptr[-1] must equal the number of stored entries {indices.shape[0]}; got {indptr[-1]}.")
    return indptr, indices, data


def _check_dense(x, name, n_rows=None):
    x = np.ascontiguousarray(x)
    if x.ndim != 2 or x.dtype not in _FLOATS:
        raise ValueError(f"{name} must be a 2-D float32 or float64 array; got shape {x.shape}, dtype {x.dtype}.")
    if n_rows is not None and x.shape[0] != n_rows:
        raise ValueError(f"{name} must have one row per listed row ({n_rows}); got {x.shape[0]}.")
    return x


def _check_rows(rows, n_rows):
    rows = np.ascontiguousarray(rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise ValueError(f"rows must be a 1-D integer array; got shape {rows.shape}, dtype {rows.dtype}.")
    if rows.shape[0] and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"rows must be row ids in [0, {n_rows}); got values in [{rows.min()}, {rows.max()}].")
    return rows.astype(np.int64, copy=False)


def csr_matmul(indptr, indices, data, x):
    """``A @ x`` for the CSR matrix ``A = (data, indices, indptr)``, parallel over output rows.

    Parameters
    ----------
    indptr : ndarray of shape (n_rows + 1,), int32 or int64
    indices : ndarray of shape (nnz,), int32 or int64
        Column indices, each in ``[0, x.shape[0])`` (not checked).
    data : ndarray of shape (nnz,), float32 or float64
    x : ndarray of shape (n_cols, d), float32 or float64
        Dense factor; copied first if not C-contiguous. Not modified.

    Returns
    -------
    ndarray of shape (n_rows, d), dtype ``np.result_type(data, x)``
    """
    indptr, indices, data = _check_csr(indptr, indices, data)
    x = _check_dense(x, "x")
    out = np.empty((indptr.shape[0] - 1, x.shape[1]), dtype=np.result_type(data, x))
    _matmul(indptr, indices, data, x, out)
    return out


def csr_matmul_rows(indptr, indices, data, rows, x):
    """``A[rows] @ x`` without slicing ``A``, parallel over the listed rows.

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR arrays of ``A`` of shape (n_rows, n_cols), as in :func:`csr_matmul`.
    rows : ndarray of shape (b,), int
        Row ids in ``[0, n_rows)``; repeats allowed.
    x : ndarray of shape (n_cols, d), float32 or float64

    Returns
    -------
    ndarray of shape (b, d), dtype ``np.result_type(data, x)``
        Row ``i`` is ``A[rows[i]] @ x``.
    """
    indptr, indices, data = _check_csr(indptr, indices, data)
    rows = _check_rows(rows, indptr.shape[0] - 1)
    x = _check_dense(x, "x")
    out = np.empty((rows.shape[0], x.shape[1]), dtype=np.result_type(data, x))
    _matmul_rows(indptr, indices, data, rows, x, out)
    return out


def csr_matmul_rows_adjoint(indptr, indices, data, rows, g, n_cols):
    """``A[rows].T @ g``: the rows' gradients scattered into all columns of ``A``.

    The adjoint of :func:`csr_matmul_rows`: ``<A[rows] @ x, g> == <x, A[rows].T @ g>``.
    Output element ``(j, c)`` is ``sum over i, then over the entries k of row rows[i]
    with indices[k] == j, of data[k] * g[i, c]``, added in that order; each thread
    owns a contiguous range of output rows (it reads all listed rows of ``A``
    and keeps the entries in its range), so the result does not depend on the
    number of threads.

    Parameters
    ----------
    indptr, indices, data : ndarray
        CSR arrays of ``A`` of shape (n_rows, n_cols), as in :func:`csr_matmul`;
        every column index must be in ``[0, n_cols)`` (not checked).
    rows : ndarray of shape (b,), int
        Row ids in ``[0, n_rows)``; repeats allowed.
    g : ndarray of shape (b, d), float32 or float64
        One row per listed row of ``A``.
    n_cols : int
        Number of columns of ``A`` (rows of the output).

    Returns
    -------
    ndarray of shape (n_cols, d), dtype ``np.result_type(data, g)``
    """
    indptr, indices, data = _check_csr(indptr, indices, data)
    rows = _check_rows(rows, indptr.shape[0] - 1)
    g = _check_dense(g, "g", rows.shape[0])
    if not isinstance(n_cols, (int, np.integer)) or n_cols < 0:
        raise ValueError(f"n_cols must be a non-negative int; got {n_cols!r}.")
    out = np.empty((int(n_cols), g.shape[1]), dtype=np.result_type(data, g))
    _matmul_rows_adjoint(indptr, indices, data, rows, g, out, numba.get_num_threads())
    return out
