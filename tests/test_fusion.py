"""Gated fusion: forward semantics and central-difference gradient checks (float64)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lgrec.fusion import fusion_backward, fusion_forward, init_fusion_params, prepare_features

from gradcheck import assert_grad_close, numeric_grad


def _features(rng, n_items, d_v, d_t, p_img, p_txt):
    img = rng.standard_normal((n_items, d_v)) if d_v else None
    txt = rng.standard_normal((n_items, d_t)) if d_t else None
    if img is not None:
        img[rng.random(n_items) > p_img] = 0.0
    if txt is not None:
        txt[rng.random(n_items) > p_txt] = 0.0
    return img, txt


modalities = st.sampled_from([(3, 2), (3, 0), (0, 2)])


@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(1, 7),
    dims=modalities,
    dim=st.integers(1, 3),
    p_img=st.sampled_from([0.0, 0.5, 1.0]),
    p_txt=st.sampled_from([0.0, 0.5, 1.0]),
    scaling=st.sampled_from(["l2", "standard", "none"]),
    fixed_gate=st.sampled_from([None, 0.5]),
)
def test_fusion_gradients_for_every_parameter(seed, n_items, dims, dim, p_img, p_txt, scaling, fixed_gate):
    rng = np.random.default_rng(seed)
    img, txt = _features(rng, n_items, *dims, p_img, p_txt)
    inputs, _ = prepare_features(img, txt, n_items, scaling)
    if inputs.items.size == 0:
        return
    params = {k: v.astype(np.float64) for k, v in init_fusion_params(rng, inputs.image_dim, inputs.text_dim, dim).items()}
    for key in params:
        params[key] += 0.3 * rng.standard_normal(params[key].shape)  # non-zero biases too
    upstream = rng.standard_normal((inputs.items.size, dim))
    gate_upstream = rng.standard_normal((inputs.items.size, dim))  # the gate used elsewhere too

    def loss():
        fused, cache = fusion_forward(params, inputs, fixed_gate)
        return float(np.sum(fused * upstream) + np.sum(cache[0] * gate_upstream))

    fused, cache = fusion_forward(params, inputs, fixed_gate)
    grads = fusion_backward(upstream, params, inputs, cache, d_gate=gate_upstream)
    assert set(grads) == set(params)
    for key, value in params.items():
        assert_grad_close(grads[key], numeric_grad(loss, value), name=key)


def test_missing_modalities_fix_the_gate():
    img = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    txt = np.array([[1.0], [3.0], [0.0], [0.0]])
    inputs, _ = prepare_features(img, txt, 4, "none")
    np.testing.assert_array_equal(inputs.items, [0, 1, 2])  # item 3 has neither: not stored
    params = init_fusion_params(np.random.default_rng(0), 2, 1, 4)
    params = {k: v.astype(np.float64) for k, v in params.items()}
    params["b_v"] += 0.7
    params["b_t"] -= 0.2
    fused, cache = fusion_forward(params, inputs)
    gate = cache[0]
    assert np.all((gate[0] > 0) & (gate[0] < 1))  # both modalities: learned gate
    np.testing.assert_array_equal(gate[1], 0.0)  # no image: text only
    np.testing.assert_array_equal(gate[2], 1.0)  # no text: image only
    np.testing.assert_allclose(fused[1], txt[1] @ params["W_t"] + params["b_t"])
    np.testing.assert_allclose(fused[2], img[2] @ params["W_v"] + params["b_v"])
    h_v, h_t = img[0] @ params["W_v"] + params["b_v"], txt[0] @ params["W_t"] + params["b_t"]
    g = 1 / (1 + np.exp(-(np.r_[h_v, h_t] @ params["W_g"] + params["b_g"])))
    np.testing.assert_allclose(fused[0], g * h_v + (1 - g) * h_t)


def test_fixed_gate_averages_the_modalities():
    img, txt = np.array([[1.0, 2.0]]), np.array([[3.0]])
    inputs, _ = prepare_features(img, txt, 1, "none")
    params = {k: v.astype(np.float64) for k, v in init_fusion_params(np.random.default_rng(1), 2, 1, 3).items()}
    fused, cache = fusion_forward(params, inputs, fixed_gate=0.5)
    np.testing.assert_allclose(fused[0], 0.5 * (img[0] @ params["W_v"]) + 0.5 * (txt[0] @ params["W_t"]))
    np.testing.assert_array_equal(fusion_backward(np.ones((1, 3)), params, inputs, cache)["W_g"], 0.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_prepare_features_copies_only_present_rows_as_float32(dtype):
    img = np.zeros((5, 3), dtype=dtype)
    img[[1, 3]] = [[3, 4, 0], [0, 0, 2]]
    before = img.copy()
    inputs, stats = prepare_features(img, None, 5, "l2")
    assert inputs.image.dtype == np.float32 and inputs.image.shape == (2, 3)
    np.testing.assert_allclose(inputs.image, [[0.6, 0.8, 0], [0, 0, 1]], rtol=1e-3)
    np.testing.assert_array_equal(img, before)
    assert inputs.present("image").tolist() == [False, True, False, True, False]


def test_standard_scaling_uses_present_rows_and_reuses_stats():
    img = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 6.0]])
    inputs, stats = prepare_features(img, None, 3, "standard")
    np.testing.assert_allclose(stats["image"][0], [2.0, 4.0])
    np.testing.assert_allclose(inputs.image, [[-1, -1], [1, 1]])
    again, _ = prepare_features(np.array([[2.0, 4.0]]), None, 1, "standard", stats)
    np.testing.assert_allclose(again.image, [[0, 0]])


def test_isometric_projection_preserves_inner_products_on_average():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 300))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dots_before = (x[:100] * x[100:]).sum(axis=1)
    ratios, dots_after = [], []
    for seed in range(20):
        params = init_fusion_params(np.random.default_rng(seed), 300, 0, 256, np.float64, "isometric", (1.0, 1.0))
        h = x @ params["W_v"]
        ratios.append(np.mean(np.einsum("ij,ij->i", h, h)))
        dots_after.append((h[:100] * h[100:]).sum(axis=1))
    assert abs(np.mean(ratios) - 1.0) < 0.02  # unit mean square norm
    np.testing.assert_allclose(np.mean(dots_after, axis=0), dots_before, atol=0.08)  # ~6 standard errors
