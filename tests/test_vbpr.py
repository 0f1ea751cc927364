"""VBPR: gradient checks (float64, hypothesis), scoring as a dot product, features required."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lgrec
from lgrec.models.vbpr import VBPRObjective

from conftest import random_interactions
from gradcheck import check_objective_gradients, triplets


def features_with_missing_rows(rng, n_items, dim, missing):
    x = rng.standard_normal((n_items, dim))
    x[rng.random(n_items) < missing] = 0.0
    return x


@given(seed=st.integers(0, 2**32 - 1), reg=st.floats(0.0, 0.5), batch=st.integers(1, 6),
       modalities=st.sampled_from([("image",), ("text",), ("image", "text")]), bias=st.booleans(),
       missing=st.floats(0.0, 0.7))
def test_vbpr_objective_gradient(seed, reg, batch, modalities, bias, missing):
    rng = np.random.default_rng(seed)
    n_users, n_items, d = 4, 6, 2
    train = random_interactions(rng, n_users, n_items, 0.3)  # tiny: batches repeat users and items
    dims = {"image": 3, "text": 2}
    features = {m: features_with_missing_rows(rng, n_items, dims[m], missing) for m in modalities}
    projections = {m: 0.5 * rng.standard_normal((dims[m], d)) for m in modalities}
    extra = {}
    if bias:
        extra = {"item_bias": 0.5 * rng.standard_normal((n_items, 1)),
                 "feature_bias": {m: 0.5 * rng.standard_normal(dims[m]) for m in modalities}}
    objective = VBPRObjective(0.5 * rng.standard_normal((n_users, 2 * d)), 0.5 * rng.standard_normal((n_items, d)),
                              features, projections, 0.5 * rng.standard_normal(d), reg, **extra)
    check_objective_gradients(objective, *triplets(rng, train, batch))


@given(seed=st.integers(0, 2**32 - 1), bias=st.booleans())
def test_vbpr_factors_reproduce_the_model_score(seed, bias):
    rng = np.random.default_rng(seed)
    n_users, n_items, d = 3, 5, 2
    img, txt = features_with_missing_rows(rng, n_items, 3, 0.3), features_with_missing_rows(rng, n_items, 2, 0.3)
    user, item = rng.standard_normal((n_users, 2 * d)), rng.standard_normal((n_items, d))
    w_img, w_txt, c = rng.standard_normal((3, d)), rng.standard_normal((2, d)), rng.standard_normal(d)
    beta, b_img, b_txt = rng.standard_normal((n_items, 1)), rng.standard_normal(3), rng.standard_normal(2)
    extra = {"item_bias": beta, "feature_bias": {"image": b_img, "text": b_txt}} if bias else {}
    objective = VBPRObjective(user, item, {"image": img, "text": txt}, {"image": w_img, "text": w_txt}, c, 0.0, **extra)
    users_f, items_f = objective.factors(block_rows=2)
    # He & McAuley: gamma_u.gamma_i + theta_u.(E^T [f_img; f_txt] + c) (+ beta_i + beta'.f_i)
    f = np.concatenate([img, txt], axis=1)
    e = np.concatenate([w_img, w_txt])
    expected = user[:, :d] @ item.T + user[:, d:] @ (f @ e + c).T
    if bias:
        expected += (beta[:, 0] + f @ np.concatenate([b_img, b_txt]))[None, :]
    np.testing.assert_allclose(users_f @ items_f.T, expected, rtol=1e-10, atol=1e-10)


def test_vbpr_needs_features_and_ranks_cold_items(synthetic):
    with pytest.raises(ValueError, match="VBPR needs item features"):
        lgrec.VBPR().fit(synthetic.train)
    with pytest.raises(ValueError, match="img_feats has 10 rows but interactions has 150 item columns"):
        lgrec.VBPR().fit(synthetic.train, np.ones((10, 3)))
    with pytest.raises(ValueError, match="The 'item_bias' parameter of VBPR must be a bool"):
        lgrec.VBPR(item_bias=1).fit(synthetic.train, synthetic.image)
    model = lgrec.VBPR(max_epochs=2, random_state=0, item_bias=True).fit(synthetic.train, synthetic.image, synthetic.text)
    d = model.embedding_size
    assert model.user_factors_.shape == (synthetic.n_users, 2 * d + 1)
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)
    assert model.projection_.shape == (synthetic.image.shape[1] + synthetic.text.shape[1], d)
    # a cold item's score depends on its features: two cold items with different features score differently
    cold = synthetic.cold_items("test")
    assert np.unique(model.item_factors_[cold][:, d:].round(6), axis=0).shape[0] > 1


def test_vbpr_text_only_and_float16_features(synthetic):
    model = lgrec.VBPR(max_epochs=1, random_state=0).fit(synthetic.train, None, synthetic.text.astype(np.float16))
    assert model.item_factors_.dtype == np.float32 and np.isfinite(model.item_factors_).all()
