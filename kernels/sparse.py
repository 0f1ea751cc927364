"""Look-ups in CSR matrices whose column indices are sorted within each row."""

import numba
import numpy as np

__all__ = ["contains_sorted", "csr_lookup", "lower_bound"]


@numba.njit(inline="always", cache=True)
def lower_bound(sorted_values, start, end, value):
    """First position in ``sorted_values[start:end]`` whose entry is not below ``value`` (``end`` if none)."""
    lo = start
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_values[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(inline="always", cache=True)
def contains_sorted(sorted_values, start, end, value):
    """Whether ``value`` is in the sorted slice ``sorted_values[start:end]``."""
    at = lower_bound(sorted_values, start, end, value)
    return at < end and sorted_values[at] == value


@numba.njit(nogil=True, cache=True)
def csr_lookup(indptr, indices, data, rows, cols):
    """Entries ``M[rows[n], cols[n]]`` of a CSR matrix, zero where nothing is stored.

    The same values as ``np.asarray(M[rows, cols]).ravel()`` on a SciPy matrix,
    by binary search in each row, without SciPy's per-call index validation
    and copies.

    Parameters
    ----------
    indptr : ndarray of shape (n_rows + 1,), int32 or int64
    indices : ndarray of shape (nnz,), int32 or int64
        Column indices, sorted and without duplicates within each row.
    data : ndarray of shape (nnz,)
    rows, cols : ndarray of shape (n,), integer
        Pairs to look up; must be valid row and column ids.

    Returns
    -------
    ndarray of shape (n,), same dtype as ``data``
    """
    out = np.zeros(rows.shape[0], dtype=data.dtype)
    for n in range(rows.shape[0]):
        end = indptr[rows[n] + 1]
        at = lower_bound(indices, indptr[rows[n]], end, cols[n])
        if at < end and indices[at] == cols[n]:
            out[n] = data[at]
    return out
