"""RLMultimodalRec: whole-model gradient checks, cold start, gates, add_items, persistence."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import lgrec
from lgrec.fusion import init_fusion_params, prepare_features
from lgrec.graph import normalized_adjacency
from lgrec.knn import content_memory, modality_graphs
from lgrec.models.rlmm import RLMMObjective

from conftest import random_interactions
from gradcheck import check_objective_gradients, triplets


@given(
    seed=st.integers(0, 2**32 - 1),
    n_layers=st.integers(0, 2),
    content_weight=st.sampled_from([0.0, 0.7]),
    cold_start=st.booleans(),
    fixed_gate=st.sampled_from([None, 0.5]),
    reg=st.floats(0.0, 0.3),
    dims=st.sampled_from([(3, 2), (3, 0), (0, 2)]),
    memory_weight=st.sampled_from([0.0, 2.0]),
    item_graph=st.booleans(),
    warm_content=st.booleans(),
    edge_dropout=st.sampled_from([0.0, 0.5]),
    weighted=st.booleans(),
)
def test_whole_model_gradient_on_tiny_random_graphs(
    seed, n_layers, content_weight, cold_start, fixed_gate, reg, dims, memory_weight, item_graph, warm_content,
    edge_dropout, weighted,
):
    rng = np.random.default_rng(seed)
    n_users, n_items, dim = 4, 6, 3
    train = sp.hstack([random_interactions(rng, n_users, n_items - 1, 0.3), sp.csr_matrix((n_users, 1))], format="csr")
    train.sort_indices()  # item 5 is cold (no edges)
    d_v, d_t = dims
    img = rng.standard_normal((n_items, d_v)) if d_v else None
    txt = rng.standard_normal((n_items, d_t)) if d_t else None
    if img is not None and txt is not None:
        img[1] = 0.0  # text only
        txt[2] = 0.0  # image only
        img[3] = txt[3] = 0.0  # neither
    inputs, _ = prepare_features(img, txt, n_items, "none")
    fusion = {k: v.astype(np.float64) for k, v in init_fusion_params(rng, inputs.image_dim, inputs.text_dim, dim).items()}
    objective = RLMMObjective(
        normalized_adjacency(train, dtype=np.float64), rng.standard_normal((n_users, dim)),
        rng.standard_normal((n_items, dim)), fusion, inputs, n_layers, reg, content_weight, cold_start, fixed_gate,
        memory=content_memory(train, inputs, 2), memory_weight=memory_weight,
        item_graphs=modality_graphs(inputs, 3) if item_graph else None, warm_content=warm_content,
        train=train, edge_dropout=edge_dropout, item_graph_weights=rng.uniform(0.1, 2.0, n_items) if weighted else None,
    )
    users, pos, neg = triplets(rng, train, 5)
    neg[0] = 5  # the cold item takes part
    state = objective.start_epoch(rng, objective.initial_state())  # the epoch's pruned graph, if any
    check_objective_gradients(objective, users, pos, neg, state=state)


def test_edge_dropout_trains_on_a_pruned_graph_and_scores_on_the_full_one(synthetic):
    train = synthetic.train
    objective = RLMMObjective(
        normalized_adjacency(train), *(np.zeros((n, 4), np.float32) for n in train.shape), {}, None, 2, 0.0, 0.0,
        False, train=train, edge_dropout=0.75,
    )
    state = objective.start_epoch(np.random.default_rng(0), objective.initial_state())
    pruned = objective.training_graph(state)
    assert pruned.r_norm.nnz == int(train.nnz * 0.25)
    assert objective.training_graph(None) is objective.graph
    assert objective.start_epoch(np.random.default_rng(0), None).graph.r_norm.nnz == pruned.r_norm.nnz


@pytest.mark.parametrize("image_weight", [0.5, 0.25, 0.9])
def test_content_memory_matches_a_brute_force_oracle(image_weight):
    rng = np.random.default_rng(4)
    train = random_interactions(rng, 5, 9, 0.3)
    img, txt = rng.standard_normal((9, 4)), rng.standard_normal((9, 3))
    img[7] = txt[7] = 0.0  # no features: no neighbours, nobody's neighbour
    img[2] = 0.0  # text only: its similarity is the text cosine
    inputs, _ = prepare_features(img, txt, 9, "none")
    memory = content_memory(train, inputs, 3, image_weight).toarray()
    unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)
    cos_v, cos_t = unit(img) @ unit(img).T, unit(txt) @ unit(txt).T
    cos = image_weight * cos_v + (1 - image_weight) * cos_t  # both items with both modalities
    cos[2, :] = cos[:, 2] = cos_t[2] * np.sqrt(1 - image_weight)  # the text-only item's unit vector is the text
    cos[2, 2] = 1.0
    similar = np.zeros((9, 9))
    for i in range(9):
        if i == 7:
            continue
        others = [j for j in np.argsort(-cos[i], kind="stable") if j not in (i, 7)][:3]
        similar[i, others] = cos[i, others]
    r = train.toarray()
    expected = (r / r.sum(axis=1, keepdims=True)) @ similar.T
    np.testing.assert_allclose(memory, expected, atol=1e-6)


def test_memory_scores_read_the_memory_even_when_its_indices_are_unsorted():
    rng = np.random.default_rng(5)
    train = random_interactions(rng, 6, 10, 0.3)
    inputs, _ = prepare_features(rng.standard_normal((10, 3)), rng.standard_normal((10, 2)), 10, "none")
    memory = content_memory(train, inputs, 4)
    assert memory.has_sorted_indices
    shuffled = memory.copy()
    for u in range(6):  # reverse each row's entries
        row = slice(memory.indptr[u], memory.indptr[u + 1])
        shuffled.indices[row], shuffled.data[row] = memory.indices[row][::-1], memory.data[row][::-1]
    shuffled.has_sorted_indices = False
    objective = RLMMObjective(normalized_adjacency(train), rng.standard_normal((6, 4)).astype(np.float32),
                              rng.standard_normal((10, 4)).astype(np.float32), {}, None, 2, 0.0, 0.0, True,
                              memory=shuffled, memory_weight=3.0)
    users, items = np.repeat(np.arange(6), 10), np.tile(np.arange(10), 6)
    np.testing.assert_allclose(objective.score_offsets(users, items), 3.0 * memory.toarray().ravel(), rtol=1e-6)
    assert not shuffled.has_sorted_indices  # the caller's matrix is left as given


def test_content_refresh_window_sums_the_batch_gradients_of_the_fusion():
    rng = np.random.default_rng(0)
    train = random_interactions(rng, 6, 8, 0.3)
    img, txt = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    inputs, _ = prepare_features(img, txt, 8, "none")

    def objective(refresh):
        r = np.random.default_rng(1)
        fusion = {k: v.astype(np.float64) for k, v in init_fusion_params(r, 3, 2, 4).items()}
        return RLMMObjective(normalized_adjacency(train, dtype=np.float64), r.standard_normal((6, 4)),
                             r.standard_normal((8, 4)), fusion, inputs, 2, 0.1, 1.0, True, content_refresh=refresh)

    windowed, exact = objective(3), objective(1)
    batches = [triplets(rng, train, 4) for _ in range(3)]
    summed, state, exact_state = {}, windowed.initial_state(), exact.initial_state()
    for step, batch in enumerate(batches):
        _, grads, state = windowed.loss_and_grads(*batch, state)
        _, reference, exact_state = exact.loss_and_grads(*batch, exact_state)
        assert ("W_v" in grads) == (step == 2)  # fusion parameters move once per window
        np.testing.assert_allclose(grads["user"], reference["user"], rtol=1e-12)
        for key in ("W_v", "b_v", "W_t", "b_t", "W_g", "b_g"):
            summed[key] = summed.get(key, 0) + reference[key]
    for key, value in summed.items():
        np.testing.assert_allclose(grads[key], value, rtol=1e-10, atol=1e-12)


def test_without_features_and_cold_start_off_it_is_exactly_lightgcn(synthetic):
    kw = dict(max_epochs=4, batch_size=256, random_state=0, regularization=1e-4)
    rlmm = lgrec.RLMultimodalRec(cold_start=False, edge_dropout=0.0, **kw).fit(synthetic.train, valid=synthetic.valid)
    lgcn = lgrec.LightGCN(**kw).fit(synthetic.train, valid=synthetic.valid)
    np.testing.assert_array_equal(rlmm.item_factors_, lgcn.item_factors_)
    np.testing.assert_array_equal(rlmm.user_factors_, lgcn.user_factors_)


@pytest.fixture(scope="module")
def fitted(synthetic):
    return lgrec.RLMultimodalRec(max_epochs=5, batch_size=256, learning_rate=0.01, random_state=0, n_neighbors=5).fit(
        synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid
    )


def test_cold_items_are_scored_from_content_and_their_content_neighbours(fitted, synthetic):
    cold = fitted.cold_items_
    assert cold.size and np.array_equal(cold, np.flatnonzero(np.diff(synthetic.train.tocsc().indptr) == 0))
    content, _ = fitted.content_embeddings(synthetic.image[cold], synthetic.text[cold])
    # with the item graph (default) a cold item adds its kNN neighbours' layer 0; without it, content alone
    assert not np.allclose(fitted.item_factors_[cold], content, rtol=1e-5, atol=1e-6)
    plain = lgrec.RLMultimodalRec(max_epochs=2, batch_size=256, learning_rate=0.01, random_state=0, n_neighbors=5,
                                  item_graph=False).fit(synthetic.train, synthetic.image, synthetic.text)
    content, _ = plain.content_embeddings(synthetic.image[cold], synthetic.text[cold])
    np.testing.assert_allclose(plain.item_factors_[cold], content, rtol=1e-5, atol=1e-6)


def test_gate_and_image_share(fitted, synthetic):
    gate, share = fitted.gate_, fitted.image_share_
    assert gate.shape == (synthetic.n_items, fitted.embedding_size) and share.shape == (synthetic.n_items,)
    has_img, has_txt = synthetic.image.any(axis=1), synthetic.text.any(axis=1)
    assert np.all(np.isnan(share[~has_img & ~has_txt]))
    np.testing.assert_array_equal(share[has_img & ~has_txt], 1.0)
    np.testing.assert_array_equal(share[~has_img & has_txt], 0.0)
    both = share[has_img & has_txt]
    assert np.all((both > 0) & (both < 1))
    np.testing.assert_allclose(share[has_img & has_txt], gate[has_img & has_txt].mean(axis=1), rtol=1e-6)


def test_add_items_makes_new_items_recommendable(fitted, synthetic):
    model = lgrec.RLMultimodalRec.load(fitted.save("/tmp/_rlmm_add.npz"))
    n_before = model.n_items_
    new_img = synthetic.image[:3] * 1.0
    new_txt = synthetic.text[:3] * 1.0
    ids = model.add_items(new_img, new_txt)
    np.testing.assert_array_equal(ids, np.arange(n_before, n_before + 3))
    assert model.n_items_ == n_before + 3 and model.gate_.shape[0] == n_before + 3
    scores = model.score_users(np.array([0]))
    assert scores.shape == (1, n_before + 3) and np.isfinite(scores).all()
    expected, _ = fitted.content_embeddings(new_img, new_txt)
    np.testing.assert_allclose(model.item_factors_[ids], expected, rtol=1e-6)
    ranked, _ = model.recommend(0, k=model.n_items_, filter_already_liked_items=False)
    assert set(ids.tolist()) <= set(ranked.tolist())
    with pytest.raises(ValueError, match="txt_feats has 5 columns but the model was fitted on 24"):
        model.add_items(new_img, np.ones((3, 5)))
    with pytest.raises(ValueError, match="img_feats has 3 rows but txt_feats has 2"):
        model.add_items(new_img, new_txt[:2])
    with pytest.raises(ValueError, match="NaN or inf"):
        model.add_items(np.full((1, new_img.shape[1]), np.nan), None)


def test_scores_add_the_memory_term(fitted, synthetic):
    users = np.array([0, 7])
    memory = fitted._memory()
    assert memory is not None and memory.nnz
    expected = fitted.user_factors_[users] @ fitted.item_factors_.T + fitted.memory_weight * memory[users].toarray()
    np.testing.assert_allclose(fitted.score_users(users), expected, rtol=1e-5, atol=1e-6)


def test_save_load_keeps_the_gate_and_the_fusion(fitted, tmp_path):
    loaded = lgrec.RLMultimodalRec.load(fitted.save(tmp_path / "rlmm"))
    np.testing.assert_array_equal(loaded.score_users(np.arange(5)), fitted.score_users(np.arange(5)))
    np.testing.assert_array_equal(loaded.gate_, fitted.gate_)
    np.testing.assert_array_equal(loaded.image_share_, fitted.image_share_)
    np.testing.assert_array_equal(loaded.image_weights_, fitted.image_weights_)
    assert loaded.get_params() == fitted.get_params()


def test_one_modality_for_the_whole_catalogue(synthetic):
    model = lgrec.RLMultimodalRec(max_epochs=2, batch_size=256, random_state=0).fit(synthetic.train, None, synthetic.text)
    has_txt = synthetic.text.any(axis=1)
    np.testing.assert_array_equal(model.image_share_[has_txt], 0.0)
    assert model.gate_weights_ is None and model.image_weights_ is None


def test_feature_errors_name_the_argument(synthetic):
    model = lgrec.RLMultimodalRec(max_epochs=1)
    bad = synthetic.image.copy()
    bad[4, 0] = np.inf
    with pytest.raises(ValueError, match="img_feats contains NaN or inf in 1 row\\(s\\) \\(first item ids: \\[4\\]\\)"):
        model.fit(synthetic.train, bad, synthetic.text)
    with pytest.raises(ValueError, match="txt_feats has 10 rows but interactions has 150 item columns"):
        model.fit(synthetic.train, synthetic.image, synthetic.text[:10])
    with pytest.raises(ValueError, match="The 'gate' parameter of RLMultimodalRec must be one of"):
        lgrec.RLMultimodalRec(gate="max").fit(synthetic.train)
    with pytest.raises(ValueError, match="The 'content_weight' parameter"):
        lgrec.RLMultimodalRec(content_weight=-1.0).fit(synthetic.train)
    with pytest.raises(ValueError, match=r"'image_weight' parameter of RLMultimodalRec must be a float in the range \[0.0, 1.0\]"):
        lgrec.RLMultimodalRec(image_weight=1.5).fit(synthetic.train)
    with pytest.raises(ValueError, match=r"'gate_learning_rate' parameter of RLMultimodalRec must be a float in the range \(0.0, inf\)"):
        lgrec.RLMultimodalRec(gate_learning_rate=0.0).fit(synthetic.train)
    with pytest.raises(ValueError, match=r"'item_graph_weight' parameter of RLMultimodalRec must be 'degree' or a float in the range \[0.0, inf\)"):
        lgrec.RLMultimodalRec(item_graph_weight="degrees").fit(synthetic.train)
    with pytest.raises(ValueError, match=r"'item_graph_weight' parameter of RLMultimodalRec must be 'degree' or a float in the range \[0.0, inf\)\. Got -1\.0"):
        lgrec.RLMultimodalRec(item_graph_weight=-1.0).fit(synthetic.train)


def test_item_graph_weights_are_the_content_neighbours_share_of_the_neighbourhood():
    from lgrec.models.rlmm import item_graph_weights

    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=np.float32))
    np.testing.assert_allclose(item_graph_weights("degree", train, 4), [4 / 7, 4 / 6, 4 / 5, 1.0], rtol=1e-6)
    assert item_graph_weights("degree", train, 0) is None  # no content neighbours: no item-item term
    assert item_graph_weights(1.0, train, 4) is None
    np.testing.assert_array_equal(item_graph_weights(0.5, train, 4), np.full(4, 0.5, np.float32))


def test_item_graph_weight_scales_the_item_item_term(synthetic):
    """Weight 0 removes the term from the scores (as item_graph=False); "degree" and 1.0 differ."""
    kw = dict(max_epochs=2, batch_size=256, random_state=0)
    data = (synthetic.train, synthetic.image, synthetic.text)
    zero = lgrec.RLMultimodalRec(item_graph_weight=0.0, **kw).fit(*data)
    off = lgrec.RLMultimodalRec(item_graph=False, **kw).fit(*data)
    np.testing.assert_allclose(zero.item_factors_, off.item_factors_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(zero.user_factors_, off.user_factors_, rtol=1e-5, atol=1e-7)
    degree = lgrec.RLMultimodalRec(**kw).fit(*data)
    full = lgrec.RLMultimodalRec(item_graph_weight=1.0, **kw).fit(*data)
    assert degree.item_graph_weight == "degree"
    assert not np.allclose(degree.item_factors_, full.item_factors_)


def test_gate_learning_rate_steps_only_the_gate(synthetic):
    """A larger gate step moves the gate further; the projections take the same steps as before."""
    kw = dict(max_epochs=3, batch_size=256, content_refresh=1, random_state=0)
    plain = lgrec.RLMultimodalRec(**kw).fit(synthetic.train, synthetic.image, synthetic.text)
    fast = lgrec.RLMultimodalRec(gate_learning_rate=0.1, **kw).fit(synthetic.train, synthetic.image, synthetic.text)
    start = lgrec.RLMultimodalRec(**{**kw, "max_epochs": 1}).set_params(learning_rate=1e-12)
    start.fit(synthetic.train, synthetic.image, synthetic.text)  # (almost) the initial gate
    moved = lambda m: np.abs(m.gate_weights_ - start.gate_weights_).max()
    assert moved(fast) > 20 * moved(plain)
    # the first Adam step of W_v is lr * sign(g) whatever the gate step size
    first = lgrec.RLMultimodalRec(gate_learning_rate=0.1, **{**kw, "max_epochs": 1, "batch_size": 10**6})
    first.fit(synthetic.train, synthetic.image, synthetic.text)
    base = lgrec.RLMultimodalRec(**{**kw, "max_epochs": 1, "batch_size": 10**6})
    base.fit(synthetic.train, synthetic.image, synthetic.text)
    np.testing.assert_allclose(first.image_weights_, base.image_weights_, rtol=1e-6)


def test_one_call_fit_and_gate_summary(synthetic):
    model = lgrec.fit(synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid,
                      max_epochs=2, batch_size=256, random_state=0)
    assert isinstance(model, lgrec.RLMultimodalRec) and model.max_epochs == 2
    groups = synthetic.item_info["category"].to_numpy()
    summary = lgrec.gate_summary(model, groups)
    has = ~np.isnan(model.image_share_)
    assert summary["items_with_features"] == int(has.sum())
    assert summary["mean"] == pytest.approx(float(model.image_share_[has].mean()))
    first = str(groups[has][0])
    mask = has & (groups.astype(str) == first)
    assert summary["by_group"][first] == {"items": int(mask.sum()), "mean": pytest.approx(float(model.image_share_[mask].mean()))}


@pytest.mark.parametrize("params", [{"item_graph": False, "warm_content": True, "memory_items": "all"}, {}])
def test_explain_parts_add_up_to_the_score(synthetic, params):
    model = lgrec.RLMultimodalRec(max_epochs=2, batch_size=256, learning_rate=0.01, random_state=0, n_neighbors=5,
                                  **params).fit(synthetic.train, synthetic.image, synthetic.text)
    train = synthetic.train
    user = int(np.argmax(np.diff(train.indptr)))
    scores = model.score_users(np.array([user]))[0]
    rng = np.random.default_rng(0)
    for item in [*rng.choice(train.shape[1], 5, replace=False), *model.cold_items_[:2]]:
        parts = model.explain(user, int(item), train, n_contributors=3)
        assert parts["graph"] + parts["content"] + parts["memory"] == pytest.approx(parts["score"], abs=1e-9)
        assert parts["score"] == pytest.approx(float(scores[item]), rel=1e-4, abs=1e-5)
        history = set(train[user].indices)
        assert len(parts["contributors"]) == 3 and all(j in history for j, _ in parts["contributors"])
        values = [c for _, c in parts["contributors"]]
        assert values == sorted(values, reverse=True)
    if params.get("item_graph") is False:  # without the item graph (neighbours' ID embeddings) a cold item is content
        assert model.explain(user, int(model.cold_items_[0]))["graph"] == pytest.approx(0.0, abs=1e-6)


def test_explain_rejects_unknown_ids_and_foreign_matrices(fitted, synthetic):
    with pytest.raises(ValueError, match="item"):
        fitted.explain(0, synthetic.train.shape[1] + 5)
    with pytest.raises(ValueError, match="user"):
        fitted.explain(-1, 0)
    with pytest.raises(ValueError, match="interactions"):
        fitted.explain(0, 0, synthetic.train[:5])


def test_auto_memory_weight_is_chosen_on_validation(synthetic):
    params = dict(max_epochs=3, batch_size=256, learning_rate=0.01, random_state=0, n_neighbors=5)
    auto = lgrec.RLMultimodalRec(memory_weight="auto", **params).fit(
        synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid)
    assert set(auto.memory_search_) == {str(w) for w in lgrec.models.rlmm.MEMORY_WEIGHTS}
    best = max(auto.memory_search_.values())
    assert auto.memory_search_[str(auto.memory_weight_)] == best
    assert min(float(w) for w, v in auto.memory_search_.items() if v == best) == auto.memory_weight_
    # the chosen weight is the score's: the same factors with that weight give the same validation recall
    assert lgrec.evaluate(auto, synthetic.valid, synthetic.train, k=20)["recall@20"] == pytest.approx(best)
    # training ran without the memory: the factors equal a fit with memory_weight=0
    plain = lgrec.RLMultimodalRec(memory_weight=0.0, **params).fit(
        synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid)
    np.testing.assert_array_equal(plain.item_factors_, auto.item_factors_)
    assert (auto.memory_data_ is None) == (auto.memory_weight_ == 0.0)
    without_valid = lgrec.RLMultimodalRec(memory_weight="auto", **params).fit(
        synthetic.train, synthetic.image, synthetic.text)
    assert without_valid.memory_weight_ == 0.0 and without_valid.memory_search_ == {}


def test_memory_weight_rejects_other_strings(synthetic):
    with pytest.raises(ValueError, match="memory_weight"):
        lgrec.RLMultimodalRec(memory_weight="best").fit(synthetic.train, synthetic.image, synthetic.text)


def test_cold_only_memory_scores_warm_items_without_it(synthetic):
    params = dict(max_epochs=2, batch_size=256, learning_rate=0.01, random_state=0, n_neighbors=5)
    model = lgrec.RLMultimodalRec(memory_items="cold", **params).fit(synthetic.train, synthetic.image, synthetic.text)
    memory = model._memory()
    cold = np.zeros(synthetic.train.shape[1], dtype=bool)
    cold[model.cold_items_] = True
    assert memory.nnz and cold[memory.indices].all()
    full = lgrec.RLMultimodalRec(**params).fit(synthetic.train, synthetic.image, synthetic.text)._memory()
    np.testing.assert_array_equal(memory.toarray()[:, cold], full.toarray()[:, cold])
    with pytest.raises(ValueError, match="memory_items"):
        lgrec.RLMultimodalRec(memory_items="warm").fit(synthetic.train, synthetic.image, synthetic.text)
