"""Normalised adjacency and LightGCN propagation."""

import numpy as np
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from lgrec.graph import batch_rows, normalized_adjacency, propagate, propagate_rows, propagate_rows_adjoint

from conftest import random_interactions


def _dense_normalized(train):
    r = train.toarray().astype(np.float64)
    n_users, n_items = r.shape
    a = np.zeros((n_users + n_items,) * 2)
    a[:n_users, n_users:] = r
    a[n_users:, :n_users] = r.T
    deg = a.sum(axis=1)
    inv = np.where(deg > 0, 1 / np.sqrt(np.where(deg > 0, deg, 1)), 0)
    return inv[:, None] * a * inv[None, :]


@given(seed=st.integers(0, 2**32 - 1), n_users=st.integers(1, 12), n_items=st.integers(2, 12))
def test_normalized_adjacency_matches_dense_formula(seed, n_users, n_items):
    rng = np.random.default_rng(seed)
    train = random_interactions(rng, n_users, n_items, 0.3)
    graph = normalized_adjacency(train, dtype=np.float64)
    np.testing.assert_allclose(graph.to_csr().toarray(), _dense_normalized(train), atol=1e-12)


def test_isolated_nodes_get_zero_rows():
    train = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], dtype=np.float32))
    a = normalized_adjacency(train, dtype=np.float64).to_csr().toarray()
    assert np.isfinite(a).all()
    assert a[1].sum() == 0 and a[:, 2 + 2].sum() == 0  # user 1 and item 2 have no edges


@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 10),
    n_items=st.integers(2, 10),
    dim=st.integers(1, 4),
    n_layers=st.integers(0, 3),
    threaded=st.booleans(),
)
def test_propagation_is_self_adjoint(seed, n_users, n_items, dim, n_layers, threaded):
    """<P x, y> = <x, P y>: the backward pass of the propagation is the propagation itself."""
    rng = np.random.default_rng(seed)
    graph = normalized_adjacency(random_interactions(rng, n_users, n_items, 0.3), dtype=np.float64, threaded=threaded)
    xu, xi, yu, yi = (rng.standard_normal((n, dim)) for n in (n_users, n_items, n_users, n_items))
    pxu, pxi = propagate(graph, xu, xi, n_layers)
    pyu, pyi = propagate(graph, yu, yi, n_layers)
    left = np.vdot(pxu, yu) + np.vdot(pxi, yi)
    right = np.vdot(xu, pyu) + np.vdot(xi, pyi)
    assert abs(left - right) <= 1e-10 * max(1.0, abs(left))
    a = graph.to_csr()
    adjoint_left = np.vdot(a @ np.vstack([xu, xi]), np.vstack([yu, yi]))
    adjoint_right = np.vdot(np.vstack([xu, xi]), a @ np.vstack([yu, yi]))
    assert abs(adjoint_left - adjoint_right) <= 1e-10 * max(1.0, abs(adjoint_left))


@given(seed=st.integers(0, 2**32 - 1), n_layers=st.integers(0, 3))
def test_propagate_is_the_layer_mean(seed, n_layers):
    rng = np.random.default_rng(seed)
    train = random_interactions(rng, 7, 5, 0.3)
    graph = normalized_adjacency(train, dtype=np.float64)
    x = rng.standard_normal((12, 3))
    a = _dense_normalized(train)
    expected = sum(np.linalg.matrix_power(a, layer) @ x for layer in range(n_layers + 1)) / (n_layers + 1)
    users, items = propagate(graph, x[:7], x[7:], n_layers)
    np.testing.assert_allclose(np.vstack([users, items]), expected, atol=1e-12)
    assert users.dtype == np.float64


def test_propagate_does_not_modify_its_inputs():
    rng = np.random.default_rng(0)
    graph = normalized_adjacency(random_interactions(rng, 4, 3, 0.5))
    users, items = rng.standard_normal((4, 2)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32)
    before = users.copy(), items.copy()
    out_users, out_items = propagate(graph, users, items, 2)
    np.testing.assert_array_equal(users, before[0])
    np.testing.assert_array_equal(items, before[1])
    assert out_users.dtype == np.float32


@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 10),
    n_items=st.integers(2, 10),
    n_samples=st.integers(1, 12),
    n_layers=st.integers(0, 3),
    threaded=st.booleans(),
)
def test_batch_row_propagation_matches_the_full_propagation(seed, n_users, n_items, n_samples, n_layers, threaded):
    """Forward: the rows of the full layer mean. Backward: the full propagation of the scattered gradient."""
    rng = np.random.default_rng(seed)
    graph = normalized_adjacency(random_interactions(rng, n_users, n_items, 0.3), dtype=np.float64, threaded=threaded)
    users = rng.integers(0, n_users, n_samples)
    items = rng.integers(0, n_items, 2 * n_samples)
    rows = batch_rows(graph, users, items)
    np.testing.assert_array_equal(rows.users[rows.user_index], users)
    np.testing.assert_array_equal(rows.items[rows.item_index], items)
    xu, xi = rng.standard_normal((n_users, 3)), rng.standard_normal((n_items, 3))
    full_users, full_items = propagate(graph, xu, xi, n_layers)
    row_users, row_items = propagate_rows(graph, rows, xu, xi, n_layers)
    np.testing.assert_allclose(row_users, full_users[rows.users], atol=1e-12)
    np.testing.assert_allclose(row_items, full_items[rows.items], atol=1e-12)
    gu, gi = rng.standard_normal((rows.users.size, 3)), rng.standard_normal((rows.items.size, 3))
    dense_gu, dense_gi = np.zeros_like(xu), np.zeros_like(xi)
    dense_gu[rows.users], dense_gi[rows.items] = gu, gi
    expected_users, expected_items = propagate(graph, dense_gu, dense_gi, n_layers)
    d_users, d_items = propagate_rows_adjoint(graph, rows, gu, gi, n_layers)
    np.testing.assert_allclose(d_users, expected_users, atol=1e-12)
    np.testing.assert_allclose(d_items, expected_items, atol=1e-12)
    left = np.vdot(row_users, gu) + np.vdot(row_items, gi)
    right = np.vdot(xu, d_users) + np.vdot(xi, d_items)
    assert abs(left - right) <= 1e-10 * max(1.0, abs(left))


def test_batch_row_propagation_keeps_float32_and_inputs():
    rng = np.random.default_rng(1)
    graph = normalized_adjacency(random_interactions(rng, 6, 5, 0.5))
    users, items = rng.standard_normal((6, 2)).astype(np.float32), rng.standard_normal((5, 2)).astype(np.float32)
    before = users.copy(), items.copy()
    rows = batch_rows(graph, np.array([0, 3, 3]), np.array([1, 4, 1]))
    out_users, out_items = propagate_rows(graph, rows, users, items, 2)
    d_users, d_items = propagate_rows_adjoint(graph, rows, out_users, out_items, 2)
    assert {a.dtype for a in (out_users, out_items, d_users, d_items)} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(users, before[0])
    np.testing.assert_array_equal(items, before[1])
