"""Numba kernels against NumPy oracles, including the nasty cases."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from lgrec.kernels import (accumulate_rows, adam_dense, adam_rows, csr_lookup, hits_in_sorted, sample_negatives,
                           topk_exclude)

from conftest import random_interactions


def _sample(train, users, seeds, block, candidates=None):
    out = np.empty(users.shape[0], dtype=np.int32)
    if candidates is None:
        candidates = np.arange(train.shape[1])
    sample_negatives(train.indptr, train.indices, users, candidates, seeds, block, out)
    return out


def test_sampler_never_returns_a_positive_and_covers_all_negatives():
    rng = np.random.default_rng(0)
    train = random_interactions(rng, 50, 30, 0.3)
    users = np.repeat(np.arange(50), 400).astype(np.int32)
    seeds = rng.integers(0, 2**63, size=-(-users.size // 256), dtype=np.uint64)
    neg = _sample(train, users, seeds, 256)
    dense = train.toarray() > 0
    assert not dense[users, neg].any()
    for u in range(50):
        drawn = set(neg[users == u].tolist())
        assert drawn == set(np.flatnonzero(~dense[u]).tolist())


def test_sampler_is_uniform_over_unseen_items():
    train = sp.csr_matrix(np.array([[1, 0, 0, 1, 0]], dtype=np.float32))
    users = np.zeros(60000, dtype=np.int32)
    seeds = np.arange(1, 60000 // 1000 + 1, dtype=np.uint64)
    counts = np.bincount(_sample(train, users, seeds, 1000), minlength=5)
    assert counts[0] == counts[3] == 0
    expected = 60000 / 3
    chi2 = float(np.sum((counts[[1, 2, 4]] - expected) ** 2 / expected))
    assert chi2 < 13.8  # 99.9 % quantile of chi-square with 2 degrees of freedom


def test_sampler_draws_only_candidates():
    train = sp.csr_matrix(np.array([[1, 0, 0, 1, 0, 0]], dtype=np.float32))
    users = np.zeros(3000, dtype=np.int32)
    neg = _sample(train, users, np.arange(1, 4, dtype=np.uint64), 1000, candidates=np.array([0, 2, 5]))
    assert set(neg.tolist()) == {2, 5}


def test_sampler_marks_users_who_saw_everything():
    train = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32))
    neg = _sample(train, np.array([0, 1, 0], dtype=np.int32), np.array([7], dtype=np.uint64), 16)
    assert neg[0] == -1 and neg[2] == -1 and neg[1] in (1, 2)


def test_sampler_is_bit_identical_for_any_thread_count():
    rng = np.random.default_rng(1)
    train = random_interactions(rng, 300, 200, 0.05)
    users = rng.integers(0, 300, 20000).astype(np.int32)
    seeds = rng.integers(0, 2**63, size=-(-users.size // 512), dtype=np.uint64)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _sample(train, users, seeds, 512)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = _sample(train, users, seeds, 512)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def _topk_oracle(scores, k, excluded_rows):
    ids = np.full((scores.shape[0], k), -1, dtype=np.int64)
    top = np.full((scores.shape[0], k), -np.inf, dtype=scores.dtype)
    for r, row in enumerate(scores):
        candidates = np.array(
            [j for j in range(row.shape[0]) if j not in excluded_rows[r] and not np.isnan(row[j])], dtype=np.int64
        )
        order = candidates[np.argsort(-row[candidates], kind="stable")][:k]
        ids[r, : order.size] = order
        top[r, : order.size] = row[order]
    return ids, top


def _run_topk(scores, k, excluded):
    excl = sp.csr_matrix(excluded, dtype=np.float32)
    excl.sort_indices()
    ids = np.empty((scores.shape[0], k), np.int64)
    top = np.empty((scores.shape[0], k), scores.dtype)
    topk_exclude(scores, k, excl.indptr, excl.indices, ids, top)
    return ids, top


@given(
    n_rows=st.integers(1, 8),
    n_items=st.integers(1, 40),
    k=st.integers(1, 50),
    levels=st.integers(1, 6),
    exclude_p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_topk_matches_stable_argsort_oracle(n_rows, n_items, k, levels, exclude_p, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (n_rows, n_items)).astype(np.float32)  # few levels: many ties
    excluded = rng.random((n_rows, n_items)) < exclude_p
    ids, top = _run_topk(scores, k, excluded)
    oracle_ids, oracle_top = _topk_oracle(scores, k, [set(np.flatnonzero(e).tolist()) for e in excluded])
    np.testing.assert_array_equal(ids, oracle_ids)
    np.testing.assert_array_equal(top, oracle_top)


@given(
    n_rows=st.integers(1, 3),
    n_items=st.integers(100, 2500),
    k=st.integers(1, 60),
    levels=st.sampled_from([2, 7, 10**6]),
    exclude_p=st.sampled_from([0.0, 0.01, 0.3, 0.97]),
    special_p=st.sampled_from([0.0, 0.05]),
    seed=st.integers(0, 2**32 - 1),
)
def test_topk_on_long_rows_matches_oracle(n_rows, n_items, k, levels, exclude_p, special_p, seed):
    """Rows long enough for many chunks and a finite threshold: ties, heavy exclusions, NaN and -inf."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (n_rows, n_items)).astype(np.float32)
    special = rng.random(scores.shape) < special_p
    scores[special] = rng.choice(np.array([np.nan, -np.inf, np.inf], np.float32), int(special.sum()))
    excluded = rng.random((n_rows, n_items)) < exclude_p
    excluded[:, np.argmax(np.nan_to_num(scores, nan=-np.inf), axis=1)] = True  # the best item is often a seen one
    ids, top = _run_topk(scores, k, excluded)
    oracle_ids, oracle_top = _topk_oracle(scores, k, [set(np.flatnonzero(e).tolist()) for e in excluded])
    np.testing.assert_array_equal(ids, oracle_ids)
    np.testing.assert_array_equal(top, oracle_top)


def test_topk_edge_cases_empty_rows_all_seen_nan_and_large_k():
    scores = np.array([[0.5, 0.2, 0.9], [0.1, 0.2, 0.3], [np.nan, 1.0, np.nan], [-np.inf, 0.0, 2.0]], np.float32)
    excluded = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 1]], bool)
    ids, top = _run_topk(scores, 5, excluded)
    np.testing.assert_array_equal(ids[0], [2, 0, 1, -1, -1])
    np.testing.assert_array_equal(ids[1], [-1] * 5)  # user who has seen every item
    np.testing.assert_array_equal(ids[2], [1, -1, -1, -1, -1])  # NaN never recommended
    np.testing.assert_array_equal(ids[3], [1, 0, -1, -1, -1])  # -inf scores are still candidates
    assert np.isneginf(top[1]).all() and top[3, 1] == -np.inf


def test_topk_float64_and_zero_rows():
    ids, top = _run_topk(np.zeros((0, 4)), 2, np.zeros((0, 4), bool))
    assert ids.shape == (0, 2)
    ids, top = _run_topk(np.array([[1.0, 3.0, 2.0]]), 2, np.zeros((1, 3), bool))
    np.testing.assert_array_equal(ids, [[1, 2]])
    assert top.dtype == np.float64


@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 12))
def test_hits_match_set_membership(seed, k):
    rng = np.random.default_rng(seed)
    truth = random_interactions(rng, 6, 15, 0.2)
    ids = rng.integers(-1, 15, (6, k))
    hits = np.empty(ids.shape, bool)
    hits_in_sorted(ids, truth.indptr, truth.indices, hits)
    dense = truth.toarray() > 0
    expected = np.array([[j >= 0 and dense[r, j] for j in row] for r, row in enumerate(ids)])
    np.testing.assert_array_equal(hits, expected)


@given(seed=st.integers(0, 2**32 - 1), density=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       n_pairs=st.integers(0, 60), index_dtype=st.sampled_from([np.int32, np.int64]))
def test_csr_lookup_matches_scipy_fancy_indexing(seed, density, n_pairs, index_dtype):
    rng = np.random.default_rng(seed)
    matrix = sp.random(7, 11, density=density, format="csr", dtype=np.float32, random_state=rng)
    matrix.sort_indices()
    rows = rng.integers(0, 7, n_pairs).astype(index_dtype)
    cols = rng.integers(0, 11, n_pairs).astype(index_dtype)
    got = csr_lookup(matrix.indptr.astype(index_dtype), matrix.indices.astype(index_dtype), matrix.data, rows, cols)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.asarray(matrix[rows, cols]).ravel() if n_pairs else np.empty(0))


def _adam_reference(p, g, m, v, lr, b1, b2, eps, t):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return p, m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernels_match_numpy_reference(dtype):
    rng = np.random.default_rng(0)
    p = rng.standard_normal((7, 3)).astype(dtype)
    ref_p, ref_m, ref_v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_rows, m_rows, v_rows = p.copy(), np.zeros_like(p), np.zeros_like(p)
    rows = np.array([1, 4, 6])
    for t in range(1, 4):
        g = rng.standard_normal(p.shape).astype(dtype)
        g[np.setdiff1d(np.arange(7), rows)] = 0
        args = (1e-2, 0.9, 0.999, 1e-8, 1 - 0.9**t, 1 - 0.999**t)
        adam_dense(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), *args)
        adam_rows(p_rows, rows, g[rows], m_rows, v_rows, *args)
        ref_p, ref_m, ref_v = _adam_reference(ref_p, g, ref_m, ref_v, 1e-2, 0.9, 0.999, 1e-8, t)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, ref_p, rtol=tol, atol=tol)
    np.testing.assert_allclose(m, ref_m, rtol=tol, atol=tol)
    np.testing.assert_allclose(p_rows[rows], ref_p[rows], rtol=tol, atol=tol)
    untouched = np.setdiff1d(np.arange(7), rows)
    np.testing.assert_array_equal(m_rows[untouched], 0)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40), n_out=st.integers(1, 6))
def test_accumulate_rows_matches_add_at(seed, n, n_out):
    rng = np.random.default_rng(seed)
    inverse = rng.integers(0, n_out, n).astype(np.int64)
    values = rng.standard_normal((n, 3))
    expected = np.zeros((n_out, 3))
    np.add.at(expected, inverse, values)
    np.testing.assert_allclose(accumulate_rows(inverse, values, n_out), expected, atol=1e-12)


def test_adam_parallel_and_serial_paths_agree_bit_for_bit():
    from lgrec.kernels.optim import PARALLEL_MIN_SIZE, _adam_dense_parallel, _adam_dense_serial

    rng = np.random.default_rng(3)
    n = PARALLEL_MIN_SIZE + 17
    states = [[np.abs(rng.standard_normal(n)).astype(np.float32) for _ in range(4)]]
    states.append([a.copy() for a in states[0]])
    args = (1e-3, 0.9, 0.999, 1e-8, 0.1, 0.001)
    _adam_dense_parallel(*states[0], *args)
    _adam_dense_serial(*states[1], *args)
    for a, b in zip(*states):
        np.testing.assert_array_equal(a, b)


def test_serial_and_parallel_topk_agree():
    from lgrec.kernels import topk_exclude_serial

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 20, (70, 300)).astype(np.float32)
    excl = sp.csr_matrix(rng.random((70, 300)) < 0.1, dtype=np.float32)
    excl.sort_indices()
    out = [(np.empty((70, 25), np.int64), np.empty((70, 25), np.float32)) for _ in range(2)]
    topk_exclude(scores, 25, excl.indptr, excl.indices, *out[0])
    topk_exclude_serial(scores, 25, excl.indptr, excl.indices, *out[1])
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
