"""One contract suite for every lgrec estimator."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.pipeline import Pipeline

import lgrec
from lgrec.models.baselines import normalized_content
from lgrec import DataWarning, NotFittedError

FAST = {"max_epochs": 3, "batch_size": 256}

ESTIMATORS = {
    "BPRMF": lambda **kw: lgrec.BPRMF(**{**FAST, **kw}),
    "LightGCN": lambda **kw: lgrec.LightGCN(**{**FAST, **kw}),
    "VBPR": lambda **kw: lgrec.VBPR(**{**FAST, **kw}),
    "FREEDOM": lambda **kw: lgrec.FREEDOM(**{**FAST, **kw}),
    "RLMultimodalRec": lambda **kw: lgrec.RLMultimodalRec(**{**FAST, **kw}),
}
def features_for(name, train):
    """(img_feats, txt_feats) for a fit call: random features when ``name`` needs them, else (None, None)."""
    if not getattr(lgrec, name).requires_features:
        return None, None
    rng = np.random.default_rng(0)
    return rng.standard_normal((train.shape[1], 4)).astype(np.float32), None
# Estimators without iterative training (no epochs, no random_state): the parts of the contract that apply
FIXED = {
    "Popularity": lgrec.Popularity,
    "ContentKNN": lgrec.ContentKNN,
}

# (parameter, bad value) pairs every trainable estimator must reject in fit
INVALID = [
    ("embedding_size", 0),
    ("embedding_size", 2.5),
    ("learning_rate", 0.0),
    ("learning_rate", float("nan")),
    ("regularization", -1.0),
    ("batch_size", 0),
    ("max_epochs", 0),
    ("patience", 0),
    ("verbose", "yes"),
]


@pytest.fixture(params=sorted(ESTIMATORS), scope="module")
def name(request):
    return request.param


@pytest.fixture(scope="module")
def fitted(name, synthetic):
    return ESTIMATORS[name](random_state=0).fit(synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid)


def test_fit_returns_self_and_sets_learned_attributes(name, synthetic):
    model = ESTIMATORS[name](random_state=0)
    assert model.fit(synthetic.train, synthetic.image, synthetic.text) is model
    assert model.user_factors_.shape[0] == synthetic.n_users
    assert model.item_factors_.shape[0] == synthetic.n_items
    assert model.user_factors_.dtype == np.float32
    assert len(model.history_) == FAST["max_epochs"]
    assert {"epoch", "loss", "train_seconds", "eval_seconds"} <= set(model.history_[0])


def test_history_has_validation_metrics_and_best_epoch(fitted):
    record = fitted.history_[0]
    assert {"valid_recall@20", "valid_ndcg@20", "valid_precision@20", "valid_map@20"} <= set(record)
    scores = [r["valid_recall@20"] for r in fitted.history_]
    assert fitted.best_epoch_ == int(np.argmax(scores)) + 1


def test_unfitted_model_raises_not_fitted(name):
    model = ESTIMATORS[name]()
    for call in (lambda: model.recommend(0, k=3, filter_already_liked_items=False),
                 lambda: model.score_users(np.array([0])), lambda: model.save("x.npz")):
        with pytest.raises(NotFittedError, match="is not fitted yet"):
            call()


def test_same_random_state_gives_identical_models(name, synthetic):
    feats = features_for(name, synthetic.train)
    a = ESTIMATORS[name](random_state=7).fit(synthetic.train, *feats, valid=synthetic.valid)
    b = ESTIMATORS[name](random_state=7).fit(synthetic.train, *feats, valid=synthetic.valid)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)


def test_fit_does_not_modify_inputs(name, synthetic):
    train = synthetic.train.copy()
    train.data[:] = 3.0  # counts: must be binarised without touching the caller's matrix
    image = synthetic.image.copy()
    ESTIMATORS[name](random_state=0).fit(train, image, synthetic.text)
    assert (train.data == 3.0).all()
    np.testing.assert_array_equal(image, synthetic.image)


def test_batch_recommend_equals_scalar_recommend(fitted, synthetic):
    users = np.array([0, 5, 17])
    ids, scores = fitted.recommend(users, synthetic.train[users], k=7)
    assert ids.shape == scores.shape == (3, 7)
    for row, u in enumerate(users):
        one_ids, one_scores = fitted.recommend(u, synthetic.train[u], k=7)
        np.testing.assert_array_equal(one_ids, ids[row])
        np.testing.assert_allclose(one_scores, scores[row], rtol=1e-6)
    full = fitted.score_users(users)
    for row in range(3):
        np.testing.assert_allclose(full[row, ids[row]], scores[row], rtol=1e-5)
        assert np.all(np.diff(scores[row]) <= 0)


def test_recommend_filters(fitted, synthetic):
    u = 3
    liked = set(synthetic.train[u].indices.tolist())
    ids, _ = fitted.recommend(u, synthetic.train[u], k=20)
    assert not liked & set(ids.tolist())
    blocked = ids[:5]
    ids2, _ = fitted.recommend(u, synthetic.train[u], k=20, filter_items=blocked)
    assert not set(blocked.tolist()) & set(ids2.tolist())
    candidates = np.array([1, 2, 3, 40, 41])
    ids3, scores3 = fitted.recommend(u, synthetic.train[u], k=10, items=candidates, filter_already_liked_items=False)
    assert set(ids3[ids3 >= 0].tolist()) <= set(candidates.tolist())
    assert (ids3[5:] == -1).all() and np.isneginf(scores3[5:]).all()  # padding past the 5 candidates


def test_recommend_errors(fitted, synthetic):
    with pytest.raises(ValueError, match="needs user_items"):
        fitted.recommend(0, k=5)
    with pytest.raises(ValueError, match="one row per requested user"):
        fitted.recommend([0, 1], synthetic.train, k=5)
    with pytest.raises(ValueError, match="outside \\[0, 200\\)"):
        fitted.recommend(200, k=5, filter_already_liked_items=False)
    with pytest.raises(ValueError, match="k must be a positive int"):
        fitted.recommend(0, k=0, filter_already_liked_items=False)


def test_clone_and_pipeline(name, synthetic):
    model = ESTIMATORS[name](random_state=3, learning_rate=0.01)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    pipe = Pipeline([("model", ESTIMATORS[name](random_state=3))])
    pipe.set_params(model__learning_rate=0.005)
    pipe.fit(synthetic.train, features_for(name, synthetic.train)[0])  # Pipeline passes y on as img_feats
    assert pipe.named_steps["model"].learning_rate == 0.005
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        model.set_params(nope=1)
    assert "learning_rate=0.01" in repr(model)


@pytest.mark.parametrize("param, value", INVALID)
def test_invalid_parameters_are_rejected_in_fit(name, synthetic, param, value):
    model = ESTIMATORS[name](**{param: value})  # __init__ stores without validating
    assert getattr(model, param) is value or getattr(model, param) == value or value != value
    with pytest.raises(ValueError, match=f"The '{param}' parameter of {name} must be"):
        model.fit(synthetic.train)


def test_bad_interactions_get_clear_errors(name):
    model = ESTIMATORS[name]()
    bad = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0]], np.float32))
    with pytest.raises(ValueError, match="non-finite value"):
        model.fit(bad)
    with pytest.raises(ValueError, match="training split is empty"):
        model.fit(sp.csr_matrix((3, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="must be a scipy.sparse matrix"):
        model.fit([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="valid must have shape"):
        model.fit(sp.csr_matrix(np.eye(3, dtype=np.float32)), valid=sp.csr_matrix(np.eye(2, dtype=np.float32)))


def test_non_csr_input_is_converted_with_a_warning(name, synthetic):
    with pytest.warns(DataWarning, match="coo_matrix"):
        ESTIMATORS[name](max_epochs=1).fit(synthetic.train.tocoo(), *features_for(name, synthetic.train))


def test_users_without_interactions_warn(name):
    train = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], np.float32))
    with pytest.warns(DataWarning, match="1 user row"):
        ESTIMATORS[name](max_epochs=1).fit(train, *features_for(name, train))


def test_save_load_gives_identical_recommendations(fitted, synthetic, tmp_path, name):
    path = fitted.save(tmp_path / "model")
    assert path.endswith(".npz")
    loaded = type(fitted).load(path)
    assert loaded.get_params() == {**fitted.get_params(), "random_state": 0}
    users = np.arange(20)
    a = fitted.recommend(users, synthetic.train[users], k=10)
    b = loaded.recommend(users, synthetic.train[users], k=10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert loaded.history_ == fitted.history_
    other = lgrec.LightGCN if name != "LightGCN" else lgrec.BPRMF
    with pytest.raises(ValueError, match=f"holds a {name}, not a {other.__name__}"):
        other.load(path)


def test_load_rejects_files_that_are_not_models(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not an lgrec model"):
        lgrec.LightGCN.load(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable lgrec model"):
        lgrec.LightGCN.load(tmp_path / "y.npz")


def test_divergence_raises_model_fit_error(synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(lgrec.ModelFitError, match=r"BPRMF diverged at epoch \d+: parameters"):
            lgrec.BPRMF(learning_rate=1e30, max_epochs=2, random_state=0).fit(synthetic.train)


@pytest.mark.parametrize("fixed", sorted(FIXED))
def test_fixed_estimators_contract(fixed, synthetic, tmp_path):
    model = FIXED[fixed]()
    with pytest.raises(NotFittedError):
        model.score_users(np.array([0]))
    assert model.fit(synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid) is model
    users = np.array([1, 2])
    ids, scores = model.recommend(users, synthetic.train[users], k=5)
    for row, u in enumerate(users):
        np.testing.assert_array_equal(model.recommend(u, synthetic.train[u], k=5)[0], ids[row])
    loaded = FIXED[fixed].load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.recommend(users, synthetic.train[users], k=5)[0], ids)
    assert clone(model).get_params() == model.get_params()


def test_popularity_ranks_by_train_counts_with_id_ties():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 0, 1], [0, 1, 0, 1]], np.float32))
    ids, scores = lgrec.Popularity().fit(train).recommend(0, k=4, filter_already_liked_items=False)
    np.testing.assert_array_equal(ids, [1, 3, 0, 2])
    np.testing.assert_array_equal(scores, [3, 2, 1, 0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_normalized_content_unit_rows_in_chunks_without_touching_inputs(dtype):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(11, 3)).astype(dtype)
    txt = rng.normal(size=(11, 2)).astype(dtype)
    img[[2, 7]] = 0.0
    txt[7] = 0.0
    img_before, txt_before = img.copy(), txt.copy()
    whole = normalized_content(img, txt, 11)
    assert whole.dtype == np.float32 and whole.shape == (11, 5)
    np.testing.assert_array_equal(normalized_content(img, txt, 11, chunk_rows=4), whole)
    np.testing.assert_array_equal(img, img_before)
    np.testing.assert_array_equal(txt, txt_before)
    expected = np.hstack([x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
                          for x in (img.astype(np.float32), txt.astype(np.float32))])
    np.testing.assert_allclose(whole, expected, rtol=1e-6)
    assert not whole[7].any() and not whole[2, :3].any()  # missing modalities stay all-zero
    np.testing.assert_allclose(np.linalg.norm(whole[:, 3:][np.arange(11) != 7], axis=1), 1.0, rtol=1e-6)


def test_content_knn_is_the_cosine_to_the_summed_profile():
    img = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    txt = np.array([[1.0], [1.0], [0.0], [2.0]])
    train = sp.csr_matrix(np.array([[1, 1, 0, 0]], np.float32))
    model = lgrec.ContentKNN().fit(train, img, txt)
    unit = lambda v: v / np.linalg.norm(v)
    items = np.array([unit(np.r_[unit(i) if i.any() else i, unit(t) if t.any() else t]) for i, t in zip(img, txt)])
    profile = unit(items[0] + items[1])
    np.testing.assert_allclose(model.score_users(np.array([0]))[0], items @ profile, rtol=1e-6)
    with pytest.raises(ValueError, match="needs item features"):
        lgrec.ContentKNN().fit(train)


def _rewrite_meta(path, out, edit):
    """Copy a saved model with its JSON metadata edited (to fake files of other format versions)."""
    import json

    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays["__lgrec__"]))
    edit(meta)
    arrays["__lgrec__"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("name, old, new", [("FREEDOM", "knn_k", "n_neighbors"),
                                            ("RLMultimodalRec", "memory_image_share", "image_weight")])
def test_version_1_files_load_with_the_renamed_hyperparameters(synthetic, tmp_path, name, old, new):
    model = ESTIMATORS[name](max_epochs=1, random_state=0).fit(synthetic.train, synthetic.image, synthetic.text)
    value = 7 if new == "n_neighbors" else 0.3

    def as_version_1(meta):
        meta["format_version"] = 1
        meta["arrays"] = sorted(meta["arrays"])  # versions 1 and 2 listed the array names only
        meta["params"][old] = value
        del meta["params"][new]

    path = _rewrite_meta(model.save(tmp_path / "new.npz"), tmp_path / "v1.npz", as_version_1)
    loaded = type(model).load(path)
    assert getattr(loaded, new) == value and not hasattr(loaded, old)
    np.testing.assert_array_equal(loaded.score_users(np.arange(5)), model.score_users(np.arange(5)))


def test_unknown_format_versions_are_refused_with_the_versions_we_read(fitted, tmp_path):
    path = _rewrite_meta(fitted.save(tmp_path / "m.npz"), tmp_path / "v9.npz",
                         lambda meta: meta.update(format_version=9))
    with pytest.raises(ValueError, match=r"model format version 9; this lgrec reads versions \[1, 2, 3\]"):
        type(fitted).load(path)


def test_bprmf_sgd_clones_refits_identically_learns_and_round_trips(synthetic, tmp_path):
    """optimizer='sgd' is an ordinary hyperparameter: clone/get_params, same random_state gives the same
    model, the loss falls, learning_rate=None resolves per optimizer, save -> load keeps it."""
    model = lgrec.BPRMF(optimizer="sgd", max_epochs=4, random_state=5)
    assert clone(model).get_params() == model.get_params() and model.get_params()["optimizer"] == "sgd"
    assert model.get_params()["learning_rate"] is None and "optimizer='sgd'" in repr(model)
    a = clone(model).fit(synthetic.train, valid=synthetic.valid)
    b = clone(model).fit(synthetic.train, valid=synthetic.valid)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert a.history_[-1]["loss"] < a.history_[0]["loss"]
    adam = lgrec.BPRMF(max_epochs=4, random_state=5).fit(synthetic.train, valid=synthetic.valid)
    assert not np.array_equal(adam.item_factors_, a.item_factors_)
    explicit = lgrec.BPRMF(optimizer="sgd", learning_rate=lgrec.models.bpr.DEFAULT_LEARNING_RATES["sgd"],
                           max_epochs=4, random_state=5).fit(synthetic.train, valid=synthetic.valid)
    np.testing.assert_array_equal(explicit.item_factors_, a.item_factors_)
    loaded = lgrec.BPRMF.load(a.save(tmp_path / "sgd"))
    assert loaded.get_params() == a.get_params()
    np.testing.assert_array_equal(loaded.item_factors_, a.item_factors_)


@pytest.mark.parametrize("params, message", [
    ({"optimizer": "SGD"}, "The 'optimizer' parameter of BPRMF must be one of ['adam', 'sgd']. Got 'SGD' instead."),
    ({"optimizer": None}, "The 'optimizer' parameter of BPRMF must be one of ['adam', 'sgd']. Got None instead."),
    ({"optimizer": "sgd", "learning_rate": 0.0},
     "The 'learning_rate' parameter of BPRMF must be a float in the range (0, inf) or None. Got 0.0 instead."),
    ({"optimizer": "sgd", "learning_rate": "0.05"},
     "The 'learning_rate' parameter of BPRMF must be a float in the range (0, inf) or None. Got '0.05' instead."),
])
def test_bprmf_bad_optimizer_or_learning_rate_is_named_in_fit(synthetic, params, message):
    model = lgrec.BPRMF(**params)  # stored as given
    assert all(getattr(model, key) is value for key, value in params.items())
    with pytest.raises(ValueError) as info:
        model.fit(synthetic.train)
    assert str(info.value) == message
