"""Top-K selection with per-row exclusions, and hit lookup for evaluation.

Scores come from BLAS (``U[block] @ V.T``); these kernels do the irregular
part. Ordering: higher score first, ties broken by the lower item id; NaN
scores are never selected. Rows with fewer than ``k`` candidates are padded
with id ``-1`` and score ``-inf``.
"""

import numba
import numpy as np

from .sparse import contains_sorted

__all__ = ["hits_in_sorted", "topk_exclude", "topk_exclude_serial"]


@numba.njit(inline="always", cache=True)
def _worse(s1, i1, s2, i2):
    """Whether candidate (s1, i1) ranks below (s2, i2)."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@numba.njit(inline="always", cache=True)
def _sift_down(heap_s, heap_i, pos, size):
    """Restore the min-heap (root = worst candidate) below ``pos``."""
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and _worse(heap_s[right], heap_i[right], heap_s[left], heap_i[left]):
            child = right
        if _worse(heap_s[child], heap_i[child], heap_s[pos], heap_i[pos]):
            heap_s[pos], heap_s[child] = heap_s[child], heap_s[pos]
            heap_i[pos], heap_i[child] = heap_i[child], heap_i[pos]
            pos = child
        else:
            return


@numba.njit(inline="always", cache=True)
def _sift_up(heap_s, heap_i, pos):
    while pos > 0:
        parent = (pos - 1) >> 1
        if _worse(heap_s[pos], heap_i[pos], heap_s[parent], heap_i[parent]):
            heap_s[pos], heap_s[parent] = heap_s[parent], heap_s[pos]
            heap_i[pos], heap_i[parent] = heap_i[parent], heap_i[pos]
            pos = parent
        else:
            return


@numba.njit(inline="always", cache=True)
def _run_end(excl_indices, p, pend, start, stop):
    """Skip exclusions below ``start``; return (p, end of the run of candidates that starts at ``start``)."""
    while p < pend and excl_indices[p] < start:
        p += 1
    end = stop
    if p < pend and excl_indices[p] < stop:
        end = excl_indices[p]
    return p, end


@numba.njit(inline="always", cache=True)
def _max_ignoring_nan(a, b):
    """``b`` if it is larger than ``a``, else ``a`` (so a NaN ``b`` is ignored)."""
    return b if b > a else a


@numba.njit(inline="always", cache=True)
def _slice_max(row, start, stop, lowest):
    """Largest non-NaN entry of ``row[start:stop]`` (``lowest``, -inf in the row's dtype, if none).

    Eight independent running maxima, so the loop is not one chain of dependent comparisons.
    """
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = lowest
    j = start
    while j + 8 <= stop:
        m0 = _max_ignoring_nan(m0, row[j])
        m1 = _max_ignoring_nan(m1, row[j + 1])
        m2 = _max_ignoring_nan(m2, row[j + 2])
        m3 = _max_ignoring_nan(m3, row[j + 3])
        m4 = _max_ignoring_nan(m4, row[j + 4])
        m5 = _max_ignoring_nan(m5, row[j + 5])
        m6 = _max_ignoring_nan(m6, row[j + 6])
        m7 = _max_ignoring_nan(m7, row[j + 7])
        j += 8
    while j < stop:
        m0 = _max_ignoring_nan(m0, row[j])
        j += 1
    m0 = _max_ignoring_nan(_max_ignoring_nan(m0, m1), _max_ignoring_nan(m2, m3))
    m4 = _max_ignoring_nan(_max_ignoring_nan(m4, m5), _max_ignoring_nan(m6, m7))
    return _max_ignoring_nan(m0, m4)


@numba.njit(cache=True, nogil=True)
def _kth_largest(values, n, kth, scratch):
    """The ``kth`` largest (1-based) of ``values[:n]`` (no NaN), by quickselect on a copy in ``scratch``."""
    for i in range(n):
        scratch[i] = values[i]
    target = kth - 1  # position in descending order
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = scratch[(lo + hi) >> 1]
        i = lo
        j = hi
        while i <= j:
            while scratch[i] > pivot:
                i += 1
            while scratch[j] < pivot:
                j -= 1
            if i <= j:
                scratch[i], scratch[j] = scratch[j], scratch[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    return scratch[target]


_MIN_CHUNK = 16
"""Scores per chunk at least (shorter chunks make the maxima of pass 1 slow)."""


@numba.njit(cache=True, nogil=True)
def _topk_row(row, k, excl_indices, p0, pend, chunk_max, scratch, heap_s, heap_i, out_ids, out_scores, lowest):
    """Top-k of one row in three steps.

    1. The maximum of each of ``n_chunks`` contiguous chunks, NaN ignored,
       excluded items included (a loop with no data-dependent state).
    2. The threshold ``t``: the ``(k + e)``-th largest chunk maximum, ``e`` the
       row's number of excluded items (``-inf`` if there are fewer chunks).
       At most ``e`` chunks owe their maximum to an excluded item alone, so at
       least ``k`` candidates (not excluded, not NaN) score ``>= t``.
    3. Only the chunks whose maximum reaches ``t``: every candidate with score
       ``>= t``, in id order, into a size-k heap (higher score first, then lower id).
    """
    n = row.shape[0]
    n_excluded = pend - p0
    n_chunks = max(1, min(4 * (k + n_excluded), n // _MIN_CHUNK))
    width = (n + n_chunks - 1) // n_chunks
    n_chunks = (n + width - 1) // width if n > 0 else 0
    for c in range(n_chunks):
        chunk_max[c] = _slice_max(row, c * width, min(n, (c + 1) * width), lowest)
    threshold = -np.inf
    if n_chunks >= k + n_excluded:
        threshold = _kth_largest(chunk_max, n_chunks, k + n_excluded, scratch)
    size = 0
    p = p0
    for c in range(n_chunks):
        if not chunk_max[c] >= threshold:
            continue
        start = c * width
        stop = min(n, start + width)
        while start < stop:
            p, end = _run_end(excl_indices, p, pend, start, stop)
            for j in range(start, end):
                s = row[j]
                if s >= threshold:  # False for NaN
                    if size < k:
                        heap_s[size] = s
                        heap_i[size] = j
                        _sift_up(heap_s, heap_i, size)
                        size += 1
                    elif s > heap_s[0]:  # equal scores lose to the lower ids already kept
                        heap_s[0] = s
                        heap_i[0] = j
                        _sift_down(heap_s, heap_i, 0, size)
            start = end + 1 if end < stop else stop
    for pos in range(size, k):
        out_ids[pos] = -1
        out_scores[pos] = -np.inf
    while size > 0:
        size -= 1
        out_ids[size] = heap_i[0]
        out_scores[size] = heap_s[0]
        heap_s[0] = heap_s[size]
        heap_i[0] = heap_i[size]
        _sift_down(heap_s, heap_i, 0, size)


_ROWS_PER_TASK = 32


@numba.njit(cache=True, nogil=True)
def _topk_task(scores, k, excl_indptr, excl_indices, out_ids, out_scores, task):
    """Rows ``[32 task, 32 task + 32)`` of a block, with their own scratch buffers."""
    n_rows, n_cols = scores.shape
    heap_s = np.empty(k, dtype=scores.dtype)
    heap_i = np.empty(k, dtype=np.int64)
    chunk_max = np.empty(max(1, n_cols), dtype=scores.dtype)
    scratch = np.empty(max(1, n_cols), dtype=scores.dtype)
    lowest = np.full(1, -np.inf, dtype=scores.dtype)[0]
    for r in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
        _topk_row(
            scores[r], k, excl_indices, excl_indptr[r], excl_indptr[r + 1],
            chunk_max, scratch, heap_s, heap_i, out_ids[r], out_scores[r], lowest,
        )


@numba.njit(parallel=True, nogil=True, cache=True)
def topk_exclude(scores, k, excl_indptr, excl_indices, out_ids, out_scores):
    """Per-row top-``k`` of a score block, skipping excluded items.

    Parameters
    ----------
    scores : ndarray of shape (n_rows, n_items), float32 or float64
        Scores of one user block. Not modified.
    k : int
        Number of items to keep per row (>= 1).
    excl_indptr : ndarray of shape (n_rows + 1,), int32 or int64
        CSR row pointers of the items to exclude, one row per score row.
    excl_indices : ndarray of shape (nnz,), int32
        Excluded item ids, sorted and unique within each row.
    out_ids : ndarray of shape (n_rows, k), int64
        Receives item ids, best first; ``-1`` pads rows with fewer candidates.
    out_scores : ndarray of shape (n_rows, k), same dtype as ``scores``
        Receives the matching scores; ``-inf`` pads.
    """
    for task in numba.prange((scores.shape[0] + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK):
        _topk_task(scores, k, excl_indptr, excl_indices, out_ids, out_scores, task)


@numba.njit(nogil=True, cache=True)
def topk_exclude_serial(scores, k, excl_indptr, excl_indices, out_ids, out_scores):
    """:func:`topk_exclude` on the calling thread only (for callers that run their own threads)."""
    for task in range((scores.shape[0] + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK):
        _topk_task(scores, k, excl_indptr, excl_indices, out_ids, out_scores, task)


@numba.njit(nogil=True, cache=True)
def hits_in_sorted(ids, truth_indptr, truth_indices, out):
    """Mark which recommended ids are in each row's truth set (on the calling thread: a few binary searches per row).

    Parameters
    ----------
    ids : ndarray of shape (n_rows, k), int64
        Recommended item ids (``-1`` padding never hits).
    truth_indptr : ndarray of shape (n_rows + 1,), int32 or int64
        CSR row pointers of the truth items, one row per ``ids`` row.
    truth_indices : ndarray of shape (nnz,), int32
        Truth item ids, sorted within each row.
    out : ndarray of shape (n_rows, k), bool
        Receives ``True`` where ``ids[r, c]`` is a truth item of row ``r``.
    """
    for r in range(ids.shape[0]):
        start = truth_indptr[r]
        end = truth_indptr[r + 1]
        for c in range(ids.shape[1]):
            out[r, c] = contains_sorted(truth_indices, start, end, ids[r, c])
