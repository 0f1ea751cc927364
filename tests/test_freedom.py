"""FREEDOM: gradient checks (float64, hypothesis), degree-sensitive pruning, full graph at inference."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import lgrec
from lgrec.graph import normalized_adjacency, propagate
from lgrec.knn import modality_graph
from lgrec.models.freedom import FreedomObjective, prune_edges

from conftest import random_interactions
from gradcheck import check_objective_gradients, triplets
from test_vbpr import features_with_missing_rows


def _objective(rng, train, modalities, missing, n_layers, n_mm_layers, dropout, lam, reg, d=3):
    n_users, n_items = train.shape
    dims = {"image": 3, "text": 2}
    features = {m: features_with_missing_rows(rng, n_items, dims[m], missing) for m in modalities}
    graph = modality_graph(features.get("image"), features.get("text"), k=3, image_weight=0.3, dtype=np.float64)
    projections = {m: (0.5 * rng.standard_normal((dims[m], d)), 0.5 * rng.standard_normal(d)) for m in modalities}
    return FreedomObjective(train, graph, 0.5 * rng.standard_normal((n_users, d)),
                            0.5 * rng.standard_normal((n_items, d)), features, projections,
                            n_layers, n_mm_layers, dropout, lam, reg)


@given(seed=st.integers(0, 2**32 - 1), n_users=st.integers(2, 6), n_items=st.integers(3, 7), batch=st.integers(1, 5),
       n_layers=st.integers(1, 3), n_mm_layers=st.integers(0, 2), dropout=st.sampled_from([0.0, 0.5]),
       lam=st.floats(0.0, 2.0), reg=st.floats(0.0, 0.5),
       modalities=st.sampled_from([("image",), ("text",), ("image", "text")]), missing=st.floats(0.0, 0.6))
def test_freedom_objective_gradient(seed, n_users, n_items, batch, n_layers, n_mm_layers, dropout, lam, reg,
                                    modalities, missing):
    rng = np.random.default_rng(seed)
    train = random_interactions(rng, n_users, n_items, 0.4)
    objective = _objective(rng, train, modalities, missing, n_layers, n_mm_layers, dropout, lam, reg)
    state = objective.start_epoch(rng, None)  # gradients on the pruned graph of this epoch
    assert objective.training_graph(state).r_norm.dtype == np.float64
    check_objective_gradients(objective, *triplets(rng, train, batch), state=state)


@pytest.mark.parametrize("n_mm_layers", [0, 1, 2])
def test_item_graph_rows_and_their_adjoint(n_mm_layers):
    """Batch rows of S^M x equal the rows of the full product; the backward pass is its adjoint."""
    rng = np.random.default_rng(0)
    train = random_interactions(rng, 5, 8, 0.4)
    objective = _objective(rng, train, ("image", "text"), 0.3, 2, n_mm_layers, 0.0, 1.0, 0.0)
    rows = np.array([1, 4, 5])
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((3, 3))
    side = objective.final_items(rows, np.zeros((3, 3)), x, None)
    full = x
    for _ in range(n_mm_layers):
        full = objective.item_graph @ full
    np.testing.assert_allclose(side, full[rows])
    np.testing.assert_allclose(np.vdot(side, y), np.vdot(x, objective.final_items_adjoint(rows, y, np.zeros((8, 3)), x, None)[0]))


def test_factors_use_the_full_graph_plus_the_item_graph():
    rng = np.random.default_rng(1)
    train = random_interactions(rng, 6, 7, 0.4)
    objective = _objective(rng, train, ("image", "text"), 0.3, 2, 1, 0.8, 1.0, 0.0)
    state = objective.start_epoch(rng, None)
    assert objective.training_graph(state).r_norm.nnz < train.nnz  # training sees a pruned graph ...
    users, items = objective.factors()  # ... scoring the full one
    full_u, full_i = propagate(normalized_adjacency(train, dtype=np.float64), objective.params["user"],
                               objective.params["item"], 2)
    np.testing.assert_allclose(users, full_u)
    np.testing.assert_allclose(items, full_i + objective.item_graph @ objective.params["item"])


def test_prune_edges_keeps_a_subset_of_the_right_size():
    rng = np.random.default_rng(0)
    train = random_interactions(rng, 30, 20, 0.3)
    weights = normalized_adjacency(train, dtype=np.float64).r_norm.data
    pruned = prune_edges(train, weights, 0.8, rng)
    assert pruned.nnz == int(train.nnz * 0.2) and pruned.has_sorted_indices
    assert (pruned - pruned.multiply(train)).nnz == 0  # only training edges
    assert prune_edges(train, weights, 0.0, rng) is train
    assert prune_edges(train, weights, 0.9999, rng).nnz == 1


def test_prune_edges_draws_proportionally_to_the_weights():
    # two edges, keep one: P(edge) = w / sum(w), as torch.multinomial's first draw
    train = sp.csr_matrix(np.array([[1.0, 1.0, 0.0]], np.float32))
    rng = np.random.default_rng(0)
    kept_first = np.mean([prune_edges(train, np.array([3.0, 1.0]), 0.5, rng).indices[0] == 0 for _ in range(8000)])
    assert abs(kept_first - 0.75) < 0.02  # 4 standard errors


def test_degree_sensitive_pruning_prefers_edges_of_rare_nodes():
    rng = np.random.default_rng(0)
    train = random_interactions(rng, 200, 60, 0.05)
    weights = normalized_adjacency(train, dtype=np.float64).r_norm.data
    counts = np.zeros(train.nnz)
    for _ in range(200):
        kept = prune_edges(train, weights, 0.8, rng)
        counts += np.asarray(train.multiply(kept)[train.nonzero()]).ravel() > 0
    high, low = weights >= np.quantile(weights, 0.75), weights <= np.quantile(weights, 0.25)
    assert counts[high].mean() > 1.5 * counts[low].mean()


def test_start_epoch_resamples_deterministically():
    def graphs(seed):
        rng = np.random.default_rng(3)
        objective = _objective(rng, random_interactions(rng, 20, 15, 0.3), ("text",), 0.0, 2, 1, 0.7, 1e-3, 0.0)
        draws = np.random.default_rng(seed)
        out = []
        for _ in range(2):
            out.append(objective.start_epoch(draws, None).r_norm.copy())
        return out
    a, b = graphs(0), graphs(0)
    assert all((x != y).nnz == 0 for x, y in zip(a, b))
    assert (a[0] != a[1]).nnz > 0  # a new graph every epoch


def test_freedom_fit_errors_and_attributes(synthetic):
    with pytest.raises(ValueError, match="FREEDOM needs item features"):
        lgrec.FREEDOM().fit(synthetic.train)
    for param, value in [("n_layers", 0), ("n_mm_layers", -1), ("n_neighbors", 0), ("image_weight", 1.5),
                         ("dropout", 1.0), ("dropout", -0.1), ("modality_weight", -1.0)]:
        with pytest.raises(ValueError, match=f"The '{param}' parameter of FREEDOM must be"):
            lgrec.FREEDOM(**{param: value}).fit(synthetic.train, synthetic.image, synthetic.text)
    model = lgrec.FREEDOM(max_epochs=2, random_state=0).fit(synthetic.train, synthetic.image, None)
    assert model.item_factors_.shape == (synthetic.n_items, 64) and model.item_graph_nnz_ > 0
    assert model.user_embeddings_.shape == (synthetic.n_users, 64)


def test_cold_items_with_features_get_their_neighbours_embeddings(synthetic):
    model = lgrec.FREEDOM(max_epochs=2, random_state=0, n_layers=1).fit(synthetic.train, synthetic.image,
                                                                         synthetic.text)
    cold = synthetic.cold_items("test")
    has_features = np.any(synthetic.image[cold] != 0, axis=1) | np.any(synthetic.text[cold] != 0, axis=1)
    assert has_features.any()
    ego_part = model.item_embeddings_[cold] / 2.0  # an isolated item's LightGCN mean is its ego / (L + 1)
    smoothed = model.item_factors_[cold] - ego_part
    assert np.abs(smoothed[has_features]).sum(axis=1).min() > 0
    np.testing.assert_allclose(smoothed[~has_features], 0.0, atol=1e-6)
