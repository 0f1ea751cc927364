"""Evaluation against a dense re-implementation of MMRec's metric code."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from lgrec import evaluate
from lgrec.evaluation import rank_blocks, restrict_items

from conftest import random_interactions


class DenseModel:
    """Scores from a fixed dense matrix (small test sizes only)."""

    def __init__(self, scores):
        self.scores = scores
        self.n_users_, self.n_items_ = scores.shape

    def score_users(self, users):
        return self.scores[users]


def mmrec_metrics(scores, truth, exclude, ks):
    """MMRec's TopKEvaluator + utils/metrics.py, written densely with loops."""
    masked = scores.astype(np.float64).copy()
    if exclude is not None:
        masked[exclude.toarray() > 0] = -np.inf
    truth_dense = truth.toarray() > 0
    users = np.flatnonzero(truth_dense.any(axis=1))
    max_k = max(ks)
    if users.size == 0:  # nobody to evaluate: lgrec reports zeros
        return {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg", "precision", "map")}, 0
    topk = np.argsort(-masked[users], axis=1, kind="stable")[:, :max_k]
    pos_index = np.array([[truth_dense[u, i] for i in row] for u, row in zip(users, topk)])
    pos_len = truth_dense[users].sum(axis=1)
    ranks = np.arange(1, max_k + 1)
    recall = np.cumsum(pos_index, axis=1) / pos_len[:, None]
    precision = np.cumsum(pos_index, axis=1) / ranks
    idcg_len = np.minimum(pos_len, max_k)
    idcg = np.tile(np.cumsum(1.0 / np.log2(ranks + 1)), (len(users), 1))
    for row, idx in enumerate(idcg_len):
        idcg[row, idx:] = idcg[row, idx - 1]
    dcg = np.cumsum(np.where(pos_index, 1.0 / np.log2(ranks + 1), 0), axis=1)
    ndcg = dcg / idcg
    pre = pos_index.cumsum(axis=1) / ranks
    sum_pre = np.cumsum(pre * pos_index, axis=1)
    ap = np.zeros_like(sum_pre)
    for row, lens in enumerate(np.minimum(pos_len, max_k)):
        ranges = np.arange(1, max_k + 1)
        ranges[lens:] = ranges[lens - 1]
        ap[row] = sum_pre[row] / ranges
    out = {}
    for k in ks:
        out[f"recall@{k}"] = recall[:, k - 1].mean()
        out[f"ndcg@{k}"] = ndcg[:, k - 1].mean()
        out[f"precision@{k}"] = precision[:, k - 1].mean()
        out[f"map@{k}"] = ap[:, k - 1].mean()
    return out, len(users)


@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 30),
    n_items=st.integers(60, 80),
    levels=st.sampled_from([3, 1000]),
    block_size=st.integers(1, 16),
)
def test_metrics_match_mmrec_definitions(seed, n_users, n_items, levels, block_size):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (n_users, n_items)).astype(np.float32)
    train = random_interactions(rng, n_users, n_items, 0.1)
    truth = sp.csr_matrix((rng.random((n_users, n_items)) < 0.08) & (train.toarray() == 0), dtype=np.float32)
    ks = (1, 5, 10, 20, 50)
    got = evaluate(DenseModel(scores), truth, train, k=ks, block_size=block_size)
    expected, n_eval = mmrec_metrics(scores, truth, train, ks)
    assert got["n_users"] == n_eval
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_users_without_truth_are_skipped_and_excluded_items_never_count():
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]], np.float32)
    truth = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], np.float32))
    assert evaluate(DenseModel(scores), truth, k=1)["recall@1"] == 1.0
    result = evaluate(DenseModel(scores), truth, exclude=truth, k=1)
    assert result["recall@1"] == 0.0 and result["n_users"] == 1


def test_k_is_validated_and_shapes_are_checked():
    model = DenseModel(np.zeros((2, 3), np.float32))
    truth = sp.csr_matrix(np.eye(2, 3, dtype=np.float32))
    with pytest.raises(ValueError, match="k must be a positive int"):
        evaluate(model, truth, k=0)
    with pytest.raises(ValueError, match="truth has 4 item columns"):
        evaluate(model, sp.csr_matrix((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="exclude must have shape"):
        evaluate(model, truth, exclude=sp.csr_matrix((2, 2), dtype=np.float32))


def test_restrict_items_keeps_only_listed_columns():
    truth = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], np.float32))
    np.testing.assert_array_equal(restrict_items(truth, [1]).toarray(), [[0, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(restrict_items(truth, np.array([True, False, True])).toarray(), [[1, 0, 0], [0, 0, 1]])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
def test_rankings_in_order_and_identical_for_one_and_two_workers():
    """rank_blocks runs one worker per Numba thread; blocks come back in order with the same rankings."""
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 5, (300, 90)).astype(np.float32)
    exclude = random_interactions(rng, 300, 90, 0.1)
    users = rng.permutation(300)[:250].astype(np.int64)
    oracle_ids = []
    for u in users:
        seen = set(exclude[u].indices.tolist())
        candidates = np.array([j for j in range(90) if j not in seen])
        oracle_ids.append(candidates[np.argsort(-scores[u, candidates], kind="stable")][:10])
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            blocks = list(rank_blocks(lambda rows: scores[rows], users, 10, exclude, block_size=16))
            results.append(blocks)
    finally:
        numba.set_num_threads(before)
    for blocks in results:
        np.testing.assert_array_equal(np.concatenate([b for b, _, _ in blocks]), users)
        np.testing.assert_array_equal(np.concatenate([ids for _, ids, _ in blocks]), np.array(oracle_ids))
