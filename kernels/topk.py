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


@numba.njit(cache=True, nogil=True)
def _topk_row(row, k, excl_indices, p0, pend, chunk_max, cand_s, cand_i, heap_s, heap_i, out_ids, out_scores):
    """Top-k of one row in three passes that keep the hot loops free of data-dependent state.

    1. The maximum of each of ``len(chunk_max)`` chunks (excluded and NaN entries ignored).
       The k-th largest chunk maximum ``t`` is a score that at least k candidates reach.
    2. Every candidate with score >= t, in id order (ties at ``t`` included).
    3. A size-k heap over those candidates (higher score first, then lower id).
    """
    n = row.shape[0]
    n_chunks = chunk_max.shape[0]
    width = (n + n_chunks - 1) // n_chunks
    p = p0
    for c in range(n_chunks):
        best = -np.inf
        start = c * width
        stop = min(n, start + width)
        while start < stop:
            p, end = _run_end(excl_indices, p, pend, start, stop)
            for j in range(start, end):
                s = row[j]
                if s > best:
                    best = s
            start = end + 1 if end < stop else stop
        chunk_max[c] = best
    threshold = -np.inf
    if n_chunks >= k:
        threshold = np.sort(chunk_max)[n_chunks - k]
    n_cand = 0
    p = p0
    start = 0
    while start < n:
        p, end = _run_end(excl_indices, p, pend, start, n)
        for j in range(start, end):
            s = row[j]
            if s >= threshold:  # False for NaN
                cand_s[n_cand] = s
                cand_i[n_cand] = j
                n_cand += 1
        start = end + 1
    size = 0
    for c in range(n_cand):
        s = cand_s[c]
        if size < k:
            heap_s[size] = s
            heap_i[size] = cand_i[c]
            _sift_up(heap_s, heap_i, size)
            size += 1
        elif s > heap_s[0]:  # equal scores lose to the lower ids already kept
            heap_s[0] = s
            heap_i[0] = cand_i[c]
            _sift_down(heap_s, heap_i, 0, size)
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
    chunk_max = np.empty(max(1, min(n_cols, 2 * k)), dtype=scores.dtype)
    cand_s = np.empty(n_cols, dtype=scores.dtype)
    cand_i = np.empty(n_cols, dtype=np.int64)
    for r in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
        _topk_row(
            scores[r], k, excl_indices, excl_indptr[r], excl_indptr[r + 1],
            chunk_max, cand_s, cand_i, heap_s, heap_i, out_ids[r], out_scores[r],
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


@numba.njit(parallel=True, nogil=True, cache=True)
def hits_in_sorted(ids, truth_indptr, truth_indices, out):
    """Mark which recommended ids are in each row's truth set.

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
    for r in numba.prange(ids.shape[0]):
        start = truth_indptr[r]
        end = truth_indptr[r + 1]
        for c in range(ids.shape[1]):
            out[r, c] = contains_sorted(truth_indices, start, end, ids[r, c])
