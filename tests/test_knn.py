"""Item-item kNN graphs (lgrec.knn) against a brute-force NumPy oracle."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from lgrec.knn import knn_adjacency, modality_graph, symmetric_normalize


def oracle_adjacency(features: np.ndarray, k: int) -> np.ndarray:
    """Dense brute force: cosine over items with features, stable argsort, self included."""
    n = features.shape[0]
    has = np.flatnonzero(np.any(features != 0, axis=1))
    out = np.zeros((n, n))
    if has.size == 0:
        return out
    unit = features[has] / np.linalg.norm(features[has], axis=1, keepdims=True)
    sims = unit @ unit.T
    for row, item in enumerate(has):
        top = np.argsort(-sims[row], kind="stable")[: min(k, has.size)]
        out[item, has[top]] = 1.0
    return out


def oracle_normalized(adjacency: np.ndarray) -> np.ndarray:
    degree = adjacency.sum(axis=1)
    inv = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    return inv[:, None] * adjacency * inv[None, :]


def _features(rng, n, d, missing):
    x = rng.standard_normal((n, d))
    x[rng.random(n) < missing] = 0.0
    return x


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), d=st.integers(1, 6), k=st.integers(1, 12),
       missing=st.floats(0.0, 0.6), block_rows=st.integers(1, 50))
def test_knn_adjacency_matches_brute_force(seed, n, d, k, missing, block_rows):
    x = _features(np.random.default_rng(seed), n, d, missing)
    got = knn_adjacency(x, k, block_rows=block_rows, dtype=np.float64)
    assert got.shape == (n, n) and got.has_sorted_indices
    np.testing.assert_array_equal(got.toarray(), oracle_adjacency(x, k))


def test_ties_go_to_the_lower_item_id_and_self_is_included():
    # items 0, 1, 3 are the same direction (cosine exactly 1), item 2 is orthogonal, item 4 has no features
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.0]])
    a = knn_adjacency(x, 2, dtype=np.float64).toarray()
    np.testing.assert_array_equal(a[0], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(a[3], [1, 1, 0, 0, 0])  # ties at cosine 1: lower ids 0 and 1 beat itself
    np.testing.assert_array_equal(a[2], [1, 0, 1, 0, 0])  # itself, then the lowest id among the cosine-0 ties
    assert not a[4].any() and not a[:, 4].any()  # missing modality: no edges at all
    np.testing.assert_array_equal(a, oracle_adjacency(x, 2))


def test_fewer_items_with_features_than_k():
    x = np.zeros((6, 3))
    x[[1, 4]] = [[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]
    a = knn_adjacency(x, 10)
    assert a.nnz == 4 and a.dtype == np.float32
    assert knn_adjacency(np.zeros((3, 2)), 5).nnz == 0


def test_float32_blocks_agree_with_a_single_block():
    x = _features(np.random.default_rng(0), 500, 16, 0.3).astype(np.float32)
    whole = knn_adjacency(x, 10)
    for rows in (3, 64):
        assert (knn_adjacency(x, 10, block_rows=rows) != whole).nnz == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_features_are_not_modified(dtype):
    x = _features(np.random.default_rng(1), 40, 5, 0.3).astype(dtype)
    before = x.copy()
    knn_adjacency(x, 4, dtype=dtype)
    modality_graph(x, x[::-1].copy(), 4, dtype=dtype)
    np.testing.assert_array_equal(x, before)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), k=st.integers(1, 8))
def test_symmetric_normalize_matches_oracle(seed, n, k):
    x = _features(np.random.default_rng(seed), n, 3, 0.3)
    a = knn_adjacency(x, k, dtype=np.float64)
    np.testing.assert_allclose(symmetric_normalize(a).toarray(), oracle_normalized(a.toarray()), rtol=1e-12)


def test_every_full_row_averages_its_neighbours():
    x = _features(np.random.default_rng(1), 50, 4, 0.0)
    s = symmetric_normalize(knn_adjacency(x, 10, dtype=np.float64))
    np.testing.assert_allclose(s.data, 0.1)  # D^-1/2 A D^-1/2 = A / k when every row has k neighbours


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 30), w=st.floats(0.0, 1.0))
def test_modality_graph_mixes_per_item_available_modalities(seed, n, w):
    rng = np.random.default_rng(seed)
    img, txt = _features(rng, n, 3, 0.3), _features(rng, n, 4, 0.3)
    s_img = oracle_normalized(oracle_adjacency(img, 5))
    s_txt = oracle_normalized(oracle_adjacency(txt, 5))
    has_img, has_txt = np.any(img != 0, 1), np.any(txt != 0, 1)
    weight = np.where(has_img & has_txt, w, has_img.astype(float))[:, None]
    expected = weight * s_img + (1 - weight) * s_txt
    got = modality_graph(img, txt, 5, w, dtype=np.float64)
    np.testing.assert_allclose(got.toarray(), expected, atol=1e-12)
    both = has_img & has_txt
    np.testing.assert_allclose(got.toarray()[both].sum(1), (w * s_img + (1 - w) * s_txt)[both].sum(1))
    np.testing.assert_allclose(modality_graph(None, txt, 5, dtype=np.float64).toarray(), s_txt, atol=1e-12)


def test_modality_graph_errors():
    with pytest.raises(ValueError, match="needs item features"):
        modality_graph(None, None)
    with pytest.raises(ValueError, match="The 'image_weight' parameter of modality_graph must be a float"):
        modality_graph(np.ones((3, 2)), None, image_weight=1.5)
    with pytest.raises(ValueError, match="The 'k' parameter of knn_adjacency must be an int"):
        knn_adjacency(np.ones((3, 2)), 0)
    assert isinstance(modality_graph(np.eye(3), np.eye(3)), sp.csr_matrix)


@pytest.mark.parametrize("scale", [1e-30, 1e-8, 1.0, 1e20, 1e30])
def test_unit_rows_works_at_any_feature_scale(scale):
    from lgrec._numeric import unit_rows

    x = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]) * scale
    out = unit_rows(x)
    np.testing.assert_allclose(out, [[0.6, 0.8, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], rtol=1e-6)
    assert out.dtype == np.float32 and x[0, 0] == 3.0 * scale  # the input is not modified
