"""CSR x dense kernels against scipy's ``@`` (the oracle), incl. empty shapes and thread counts."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from lgrec.kernels import csr_matmul, csr_matmul_rows, csr_matmul_rows_adjoint

FLOATS = st.sampled_from([np.float32, np.float64])
INDEX = st.sampled_from([np.int32, np.int64])


def _matrix(rng, n_rows, n_cols, density, dtype, index_dtype):
    """A random CSR matrix (canonical: sorted, no duplicates) with the requested index dtype."""
    matrix = sp.random(n_rows, n_cols, density=density, format="csr", dtype=np.float64, random_state=rng)
    matrix.data = (matrix.data * 2 - 1).astype(dtype)
    matrix.sort_indices()
    return matrix.indptr.astype(index_dtype), matrix.indices.astype(index_dtype), matrix.data, matrix


def _close(got, expected):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if got.dtype == np.float32:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


shapes = dict(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(0, 12),
    n_cols=st.integers(0, 12),
    dim=st.sampled_from([1, 2, 3, 7, 64]),
    density=st.sampled_from([0.0, 0.1, 0.4, 1.0]),
    dtype=FLOATS,
    index_dtype=INDEX,
)


@given(**shapes)
def test_matmul_matches_scipy(seed, n_rows, n_cols, dim, density, dtype, index_dtype):
    rng = np.random.default_rng(seed)
    indptr, indices, data, matrix = _matrix(rng, n_rows, n_cols, density, dtype, index_dtype)
    x = rng.standard_normal((n_cols, dim)).astype(dtype)
    _close(csr_matmul(indptr, indices, data, x), matrix @ x)


@given(**shapes, n_batch=st.integers(0, 15))
def test_row_products_match_scipy_slices(seed, n_rows, n_cols, dim, density, dtype, index_dtype, n_batch):
    """Rows of ``A @ x`` and the adjoint ``A[rows].T @ g``, rows with repeats and in any order."""
    rng = np.random.default_rng(seed)
    indptr, indices, data, matrix = _matrix(rng, n_rows, n_cols, density, dtype, index_dtype)
    rows = rng.integers(0, n_rows, n_batch if n_rows else 0).astype(index_dtype)
    x = rng.standard_normal((n_cols, dim)).astype(dtype)
    g = rng.standard_normal((rows.shape[0], dim)).astype(dtype)
    forward = csr_matmul_rows(indptr, indices, data, rows, x)
    _close(forward, matrix[rows] @ x)
    backward = csr_matmul_rows_adjoint(indptr, indices, data, rows, g, n_cols)
    _close(backward, matrix[rows].T @ g)
    left, right = np.vdot(forward, g), np.vdot(x, backward)
    assert abs(left - right) <= (1e-4 if dtype == np.float32 else 1e-10) * max(1.0, abs(left))


def test_empty_rows_columns_and_matrix():
    matrix = sp.csr_matrix(np.array([[0, 2, 0, 0], [0, 0, 0, 0], [1, 0, 0, 3]], dtype=np.float32))
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    got = csr_matmul(matrix.indptr, matrix.indices, matrix.data, x)
    np.testing.assert_array_equal(got, [[4, 6], [0, 0], [18, 22]])
    np.testing.assert_array_equal(csr_matmul_rows_adjoint(matrix.indptr, matrix.indices, matrix.data,
                                                          np.array([1, 2]), np.ones((2, 2), np.float32), 4),
                                  [[1, 1], [0, 0], [0, 0], [3, 3]])
    empty = sp.csr_matrix((0, 0), dtype=np.float64)
    assert csr_matmul(empty.indptr, empty.indices, empty.data, np.zeros((0, 3))).shape == (0, 3)
    assert csr_matmul_rows(empty.indptr, empty.indices, empty.data, np.zeros(0, np.int64),
                           np.zeros((0, 3))).shape == (0, 3)
    assert csr_matmul_rows_adjoint(empty.indptr, empty.indices, empty.data, np.zeros(0, np.int64),
                                   np.zeros((0, 3)), 0).shape == (0, 3)
    nothing_stored = sp.csr_matrix((3, 5), dtype=np.float32)
    out = csr_matmul(nothing_stored.indptr, nothing_stored.indices, nothing_stored.data, np.ones((5, 4), np.float32))
    np.testing.assert_array_equal(out, np.zeros((3, 4), np.float32))


def test_mixed_dtypes_upcast_like_scipy():
    rng = np.random.default_rng(0)
    indptr, indices, data, matrix = _matrix(rng, 6, 5, 0.5, np.float32, np.int32)
    x = rng.standard_normal((5, 3))
    _close(csr_matmul(indptr, indices, data, x), matrix @ x)


def test_non_contiguous_inputs_are_handled_and_not_modified():
    rng = np.random.default_rng(1)
    indptr, indices, data, matrix = _matrix(rng, 9, 8, 0.4, np.float32, np.int32)
    wide = rng.standard_normal((8, 10)).astype(np.float32)
    for x in (wide[:, ::2], np.asfortranarray(wide), wide[::-1]):
        before = x.copy()
        _close(csr_matmul(indptr, indices, data, x), matrix @ x)
        _close(csr_matmul_rows(indptr, indices, data, np.array([3, 0, 3]), x), matrix[[3, 0, 3]] @ x)
        np.testing.assert_array_equal(x, before)
    g = wide[:3, ::3]
    _close(csr_matmul_rows_adjoint(indptr, indices, data, np.array([8, 1, 8])[::1], g, 8), matrix[[8, 1, 8]].T @ g)


def test_invalid_arguments_are_named():
    matrix = sp.csr_matrix(np.eye(3, dtype=np.float32))
    args = matrix.indptr, matrix.indices, matrix.data
    with pytest.raises(ValueError, match="x must be a 2-D float32 or float64"):
        csr_matmul(*args, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="x must be a 2-D float32 or float64"):
        csr_matmul(*args, np.ones((3, 2), np.int64))
    with pytest.raises(ValueError, match="data must be float32 or float64"):
        csr_matmul(matrix.indptr, matrix.indices, matrix.data.astype(np.int32), np.ones((3, 2)))
    with pytest.raises(ValueError, match="indptr"):
        csr_matmul(matrix.indptr[:-1], matrix.indices, matrix.data, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"rows must be row ids in \[0, 3\); got values in \[0, 3\]"):
        csr_matmul_rows(*args, np.array([0, 3]), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="g must have one row per listed row"):
        csr_matmul_rows_adjoint(*args, np.array([0, 1]), np.ones((3, 2), np.float32), 3)
    with pytest.raises(ValueError, match="n_cols must be a non-negative int"):
        csr_matmul_rows_adjoint(*args, np.array([0, 1]), np.ones((2, 2), np.float32), -1)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
def test_results_are_bit_identical_for_one_and_two_threads():
    rng = np.random.default_rng(2)
    matrix = sp.random(600, 400, density=0.03, format="csr", dtype=np.float32, random_state=rng)
    matrix.sort_indices()
    args = matrix.indptr, matrix.indices, matrix.data
    x = rng.standard_normal((400, 33)).astype(np.float32)
    rows = rng.integers(0, 600, 500)
    g = rng.standard_normal((500, 33)).astype(np.float32)

    def run():
        return (csr_matmul(*args, x), csr_matmul_rows(*args, rows, x),
                csr_matmul_rows_adjoint(*args, rows, g, 400))

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(2)
        two = run()
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
