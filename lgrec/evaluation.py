r"""Full-ranking top-K evaluation with MMRec's metric definitions.

Every user with at least one truth item is ranked against all items (minus the
excluded ones, normally their training items), in blocks of users so that no
users x items matrix is ever held. With :math:`h_{u,r} \in \{0, 1\}` the hit at
rank :math:`r` and :math:`n_u` the number of truth items of user :math:`u`:

.. math::

    \mathrm{Recall@K} &= \operatorname{mean}_u \frac{\sum_{r \le K} h_{u,r}}{n_u}, \qquad
    \mathrm{Precision@K} = \operatorname{mean}_u \frac{\sum_{r \le K} h_{u,r}}{K}, \\
    \mathrm{NDCG@K} &= \operatorname{mean}_u
        \frac{\sum_{r \le K} h_{u,r} / \log_2(r + 1)}{\sum_{r \le \min(n_u, K)} 1 / \log_2(r + 1)}, \\
    \mathrm{MAP@K} &= \operatorname{mean}_u \frac{1}{\min(n_u, K)}
        \sum_{r \le K} h_{u,r} \frac{\sum_{s \le r} h_{u,s}}{r},

which are ``recall_``, ``precision_``, ``ndcg_`` and ``map_`` of MMRec's
``utils/metrics.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ._validation import check_int, check_interactions
from .kernels import hits_in_sorted, topk_exclude_serial

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "METRICS",
    "average_metric_sums",
    "block_metric_sums",
    "evaluate",
    "prepare_evaluation",
    "rank_blocks",
    "restrict_items",
]

METRICS = ("recall", "ndcg", "precision", "map")

#: Users scored at once by :func:`rank_blocks` unless told otherwise (``Recommender.recommend``
#: and :func:`evaluate` use it). A partition of users that starts at a multiple of it is
#: ranked in exactly the blocks one process would use (so :mod:`lgrec.dask` gives the same bits).
DEFAULT_BLOCK_SIZE = 1024


def _check_k(k) -> tuple[int, ...]:
    if isinstance(k, (str, bytes)) or k is None:
        raise ValueError(f"k must be a positive int or a non-empty sequence of positive ints; got {k!r}.")
    try:
        ks = (k,) if np.ndim(k) == 0 else tuple(k)
    except (TypeError, ValueError):
        raise ValueError(f"k must be a positive int or a non-empty sequence of positive ints; got {k!r}.") from None
    if not ks or any(
        not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1 for v in ks
    ):
        raise ValueError(f"k must be a positive int or a non-empty sequence of positive ints; got {k!r}.")
    return tuple(sorted({int(v) for v in ks}))


def rank_blocks(
    score_users: Callable[[np.ndarray], np.ndarray],
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None,
    block_size: int = DEFAULT_BLOCK_SIZE,
):
    """Yield ``(users_block, top_ids, top_scores)`` for consecutive blocks of users, in order.

    Each block is scored (BLAS on one thread) and its top-k selected (a
    single-threaded Numba kernel) by the same worker; one worker per Numba
    thread takes the blocks in turn, so both stages run on every core at
    once. The result does not depend on the number of workers. It may depend
    on ``block_size``: BLAS can round a score differently for blocks of
    another shape, which can swap two items whose scores are within a
    rounding error of each other.

    Parameters
    ----------
    score_users : callable
        Maps user ids of shape (b,) to scores of shape (b, n_items), float32;
        called from worker threads.
    users : ndarray of shape (n,), int64
        Users to rank.
    k : int
        Length of each ranking.
    exclude : scipy.sparse.csr_matrix of shape (n_users, n_items) or None
        Items never ranked for a user (sorted indices).
    block_size : int, default=1024
        Users scored at once by one worker; memory is about
        ``n_workers * block_size * n_items`` floats.

    Yields
    ------
    users_block : ndarray of shape (b,), int64
    top_ids : ndarray of shape (b, k), int64
    top_scores : ndarray of shape (b, k), float32
    """
    starts = range(0, users.shape[0], block_size)
    if not starts:
        return
    if exclude is None:
        excl_indptr = np.zeros(users.shape[0] + 1, dtype=np.int64)
        excl_indices = np.empty(0, dtype=np.int32)
    else:
        rows = exclude[users]  # the users' rows in order: block b's rows are a slice of indptr
        excl_indptr, excl_indices = rows.indptr, rows.indices

    def rank(start: int):
        block = users[start : start + block_size]
        scores = score_users(block)
        ids = np.empty((block.shape[0], k), dtype=np.int64)
        top = np.empty((block.shape[0], k), dtype=scores.dtype)
        topk_exclude_serial(scores, k, excl_indptr[start : start + block.shape[0] + 1], excl_indices, ids, top)
        return block, ids, top

    n_workers = max(1, min(numba.get_num_threads(), len(starts)))
    with ThreadPoolExecutor(max_workers=n_workers) as pool, threadpool_limits(1, user_api="blas"):
        yield from pool.map(rank, starts)


def _metric_sums(hits: np.ndarray, n_truth: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Per-user metrics of one block (MMRec definitions), summed over the block's users.

    ``hits`` may be shallower than the largest cut-off when the catalogue is: a ranking
    then ends at its last column, and deeper cut-offs count no further hit.
    """
    max_k = hits.shape[1]
    ranks = np.arange(1, max_k + 1, dtype=np.float64)
    cum_hits = np.cumsum(hits, axis=1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    dcg = np.cumsum(hits * discount, axis=1)
    ideal = np.cumsum(discount)
    sum_precision = np.cumsum(hits * (cum_hits / ranks), axis=1)
    out = {}
    for k in ks:
        capped = np.minimum(n_truth.astype(np.int64), min(k, max_k))
        last = min(k, max_k) - 1
        out[f"recall@{k}"] = float(np.sum(cum_hits[:, last] / n_truth))
        out[f"ndcg@{k}"] = float(np.sum(dcg[:, last] / ideal[capped - 1]))
        out[f"precision@{k}"] = float(np.sum(cum_hits[:, last] / k))
        out[f"map@{k}"] = float(np.sum(sum_precision[:, last] / capped))
    return out


def evaluate(
    model,
    truth,
    exclude=None,
    k: int | Sequence[int] = (5, 10, 20, 50),
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, float]:
    """Top-K Recall, NDCG, Precision and MAP of a fitted model over all items.

    Parameters
    ----------
    model : fitted lgrec estimator
        Anything with ``score_users(user_ids) -> (b, n_items)`` scores.
    truth : scipy.sparse matrix of shape (n_users, n_items)
        Held-out interactions (valid or test split). Users without any are skipped.
    exclude : scipy.sparse matrix of shape (n_users, n_items), optional
        Items not ranked for each user, normally the training interactions
        (MMRec masks the training items for both valid and test).
    k : int or sequence of int, default=(5, 10, 20, 50)
        Cut-offs. A cut-off above the number of items ranks the whole catalogue
        (nothing is allocated beyond it; precision still divides by K).
    block_size : int, default=1024
        Users scored at once by one worker thread (see :func:`rank_blocks`).

    Returns
    -------
    dict of str to float
        Keys ``"recall@K"``, ``"ndcg@K"``, ``"precision@K"``, ``"map@K"`` for every K,
        plus ``"n_users"`` (users evaluated) and ``"seconds"``.
    """
    started = time.perf_counter()
    check_int(block_size, "block_size", "evaluate", low=1)
    ks, truth, exclude, users = prepare_evaluation(model, truth, exclude, k)
    sums = block_metric_sums(model.score_users, users, truth, exclude, ks, block_size)
    result = average_metric_sums(sums, ks, users.shape[0])
    result["seconds"] = time.perf_counter() - started
    return result


def prepare_evaluation(model, truth, exclude, k) -> tuple[tuple[int, ...], sp.csr_matrix, sp.csr_matrix | None, np.ndarray]:
    """Validated inputs of :func:`evaluate`.

    Returns
    -------
    ks : tuple of int
        Sorted distinct cut-offs.
    truth, exclude : scipy.sparse.csr_matrix of shape (n_users, n_items), canonical (exclude may be None)
    users : ndarray of shape (n_evaluated,), int64
        Users with at least one truth item, ascending.
    """
    if not callable(getattr(model, "score_users", None)):
        raise TypeError(f"model must be a fitted lgrec estimator (with score_users); got {type(model).__name__}.")
    ks = _check_k(k)
    truth = check_interactions(truth, "truth", allow_empty=True)
    n_items = getattr(model, "n_items_", truth.shape[1])
    if truth.shape[1] != n_items:
        raise ValueError(f"truth has {truth.shape[1]} item columns but the model was fitted on {n_items} items.")
    if exclude is not None:
        exclude = check_interactions(exclude, "exclude", shape=truth.shape, allow_empty=True)
    users = np.flatnonzero(np.diff(truth.indptr)).astype(np.int64)
    n_users_model = getattr(model, "n_users_", truth.shape[0])
    if truth.shape[0] > n_users_model:
        raise ValueError(f"truth has {truth.shape[0]} user rows but the model was fitted on {n_users_model} users.")
    return ks, truth, exclude, users


def block_metric_sums(
    score_users: Callable[[np.ndarray], np.ndarray],
    users: np.ndarray,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    ks: tuple[int, ...],
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> list[dict[str, float]]:
    """Per-block sums of every metric over the users of that block, in block order.

    Parameters
    ----------
    score_users : callable
        Maps user ids of shape (b,) to scores of shape (b, n_items).
    users : ndarray of shape (n,), int64
        Users to rank (each with at least one truth item).
    truth, exclude : scipy.sparse.csr_matrix of shape (n_users, n_items)
        As returned by :func:`prepare_evaluation`.
    ks : tuple of int
    block_size : int, default=1024

    Returns
    -------
    list of dict of str to float
        One dict per block of ``block_size`` users (keys as in :func:`evaluate`).
    """
    n_truth = np.diff(truth.indptr)
    truth_rows = truth[users]
    start = 0
    sums = []
    depth = min(max(ks), truth.shape[1])  # a ranking never holds more than every item: deeper cut-offs add no hit
    for block, ids, _ in rank_blocks(score_users, users, depth, exclude, block_size):
        hits = np.empty(ids.shape, dtype=np.bool_)
        hits_in_sorted(ids, truth_rows.indptr[start : start + block.shape[0] + 1], truth_rows.indices, hits)
        start += block.shape[0]
        sums.append(_metric_sums(hits, n_truth[block], ks))
    return sums


def average_metric_sums(sums: Sequence[dict[str, float]], ks: tuple[int, ...], n_users: int) -> dict[str, float]:
    """Add block sums in order and divide by the number of users: the metrics of :func:`evaluate`.

    Returns
    -------
    dict of str to float
        ``"recall@K"``, ... for every K, and ``"n_users"``.
    """
    totals = dict.fromkeys((f"{m}@{kk}" for kk in ks for m in METRICS), 0.0)
    for block in sums:
        for key, value in block.items():
            totals[key] += value
    n = max(n_users, 1)
    result = {key: value / n for key, value in totals.items()}
    result["n_users"] = int(n_users)
    return result


def restrict_items(truth, items: np.ndarray):
    """Keep only the truth interactions whose item is in ``items``.

    Used for cold-start metrics: ``restrict_items(test, cold_items)`` keeps the
    test purchases of items never seen in training, and :func:`evaluate` on it
    measures how well those are found among all items.

    Parameters
    ----------
    truth : scipy.sparse matrix of shape (n_users, n_items)
    items : ndarray of int or bool mask of shape (n_items,)

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_users, n_items), float32
    """
    truth = check_interactions(truth, "truth", allow_empty=True)
    items = np.asarray(items)
    if items.dtype == bool:
        if items.shape != (truth.shape[1],):
            raise ValueError(f"items as a mask must have shape ({truth.shape[1]},); got {items.shape}.")
        mask = items
    else:
        mask = np.zeros(truth.shape[1], dtype=bool)
        mask[items] = True
    return check_interactions(truth @ sp.diags(mask.astype(np.float32)), "truth", allow_empty=True)
