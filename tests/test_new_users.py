"""recommend_new: users who were not in training, folded in without retraining."""

import numpy as np
import pytest
import scipy.sparse as sp

import lgrec
from lgrec.graph import layer_weights
from lgrec.models._foldin import graph_fold_in

FAST = {"max_epochs": 3, "batch_size": 256, "random_state": 0}
MODELS = {
    "Popularity": lambda: lgrec.Popularity(),
    "ContentKNN": lambda: lgrec.ContentKNN(),
    "BPRMF": lambda: lgrec.BPRMF(**FAST),
    "LightGCN": lambda: lgrec.LightGCN(**FAST),
    "VBPR": lambda: lgrec.VBPR(item_bias=True, **FAST),
    "FREEDOM": lambda: lgrec.FREEDOM(**FAST),
    "RLMultimodalRec": lambda: lgrec.RLMultimodalRec(**FAST),
}


@pytest.fixture(params=sorted(MODELS), scope="module")
def fitted(request, synthetic):
    model = MODELS[request.param]()
    return model.fit(synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid)


def test_one_user_equals_the_same_user_in_a_batch(fitted, synthetic):
    rows = synthetic.train[:6]
    ids, scores = fitted.recommend_new(rows, k=7)
    assert ids.shape == (6, 7) and scores.dtype == np.float32
    for row in range(6):
        one_ids, one_scores = fitted.recommend_new(rows[row].indices.tolist(), k=7)
        np.testing.assert_array_equal(one_ids, ids[row])
        np.testing.assert_allclose(one_scores, scores[row], rtol=1e-5, atol=1e-6)
        assert not set(one_ids.tolist()) & set(rows[row].indices.tolist())


def test_seeded_and_unchanged_model(fitted, synthetic):
    before = fitted.item_factors_.copy()
    first = fitted.recommend_new(synthetic.train[:4], k=5, random_state=3)
    again = fitted.recommend_new(synthetic.train[:4], k=5, random_state=3)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_array_equal(fitted.item_factors_, before)


def test_save_load_gives_the_same_new_user_recommendations(fitted, synthetic, tmp_path):
    path = fitted.save(tmp_path / "m.npz")
    loaded = type(fitted).load(path)
    a = fitted.recommend_new(synthetic.train[:3], k=5)
    b = loaded.recommend_new(synthetic.train[:3], k=5)
    np.testing.assert_array_equal(a[0], b[0])


def test_filters_and_candidates(fitted, synthetic):
    history = synthetic.train[0].indices
    blocked = np.arange(10)
    ids, _ = fitted.recommend_new(history, k=5, filter_items=blocked)
    assert not set(ids.tolist()) & set(blocked.tolist())
    candidates = np.arange(20, 40)
    ids, _ = fitted.recommend_new(history, k=50, items=candidates)
    kept = ids[ids >= 0]
    assert set(kept.tolist()) <= set(candidates.tolist()) - set(history.tolist())
    assert (ids[kept.size:] == -1).all()


def test_errors_name_the_argument(fitted):
    with pytest.raises(ValueError, match=r"user_items of user 0 holds item ids outside \[0, "):
        fitted.recommend_new([0, 10**6])
    with pytest.raises(TypeError, match="user_items must hold integer item ids"):
        fitted.recommend_new(["a", "b"])
    with pytest.raises(ValueError, match="k must be a positive int"):
        fitted.recommend_new([1, 2], k=0)


@pytest.mark.parametrize("name", ["Popularity", "ContentKNN"])
def test_exact_models_fold_in_a_training_user_exactly(name, synthetic):
    model = MODELS[name]().fit(synthetic.train, synthetic.image, synthetic.text)
    users = np.arange(8)
    expected = model.recommend(users, synthetic.train[users], k=10)
    got = model.recommend_new(synthetic.train[users], k=10)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


def test_rlmm_memory_of_a_new_user_equals_the_fitted_memory_row(synthetic):
    model = lgrec.RLMultimodalRec(**FAST).fit(synthetic.train, synthetic.image, synthetic.text)
    offsets, weight = model._new_user_offsets(synthetic.train[:20])
    np.testing.assert_allclose(offsets.toarray(), model._memory()[:20].toarray(), rtol=1e-6, atol=1e-7)
    assert weight == model._effective_memory_weight() > 0


@pytest.mark.parametrize("n_layers", [1, 2])
def test_graph_fold_in_equals_propagation_on_the_graph_with_the_new_user(n_layers):
    """Oracle: the dense adjacency of training graph + one new user, old entries kept, new row 1/sqrt(|N|(d_i+1))."""
    rng = np.random.default_rng(n_layers)
    n_users, n_items, d = 7, 9, 3
    dense = (rng.random((n_users, n_items)) < 0.4).astype(np.float64)
    dense[np.arange(n_users), np.arange(n_users)] = 1.0  # every user has an edge
    dense[:, n_items - 1] = 0.0  # one item without training edges (degree 0), which the new user has
    train = sp.csr_matrix(dense)
    new = np.array([1, 4, 8])
    deg_u, deg_i = np.asarray(train.sum(1)).ravel(), np.asarray(train.sum(0)).ravel()
    r_old = train.toarray() / np.sqrt(np.outer(deg_u, np.where(deg_i > 0, deg_i, 1)))
    r_new = np.zeros(n_items)
    r_new[new] = 1.0 / np.sqrt(new.size * (deg_i[new] + 1))
    n = n_users + 1 + n_items
    adjacency = np.zeros((n, n))
    adjacency[:n_users, n_users + 1:] = r_old
    adjacency[n_users, n_users + 1:] = r_new
    adjacency += adjacency.T.copy()
    users0, items0, x = rng.standard_normal((n_users, d)), rng.standard_normal((n_items, d)), rng.standard_normal(d)
    weights = layer_weights(n_layers, np.float64)
    e0 = np.vstack([users0, x, items0])
    layer, final = e0, weights[0] * e0
    for l in range(1, n_layers + 1):
        layer = adjacency @ layer
        final = final + weights[l] * layer
    old_graph = np.zeros((n_users + n_items,) * 2)
    old_graph[:n_users, n_users:] = r_old
    old_graph += old_graph.T.copy()
    item_layers, layer = [items0], np.vstack([users0, items0])
    for _ in range(n_layers - 1):
        layer = old_graph @ layer
        item_layers.append(layer[n_users:])
    scale, base = graph_fold_in(sp.csr_matrix((np.ones(3), (np.zeros(3, int), new)), shape=(1, n_items)),
                                np.stack(item_layers), deg_i.astype(np.int64), weights)
    assert np.isfinite(final).all()
    np.testing.assert_allclose(scale[0] * x + base[0], final[n_users], rtol=1e-5, atol=1e-6)
