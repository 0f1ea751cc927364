"""Input validation: every message names the argument, the expectation and what was received."""

import numpy as np
import pytest
import scipy.sparse as sp

from lgrec import DataWarning
from lgrec._validation import (
    check_features,
    check_float,
    check_int,
    check_interactions,
    check_random_state,
    check_user_ids,
)


def test_duplicates_are_summed_to_one_and_counts_binarised_without_touching_the_input():
    coo = sp.coo_matrix((np.array([1.0, 1.0, 5.0]), (np.array([0, 0, 1]), np.array([2, 2, 0]))), shape=(2, 3))
    with pytest.warns(DataWarning, match="coo_matrix"):
        out = check_interactions(coo)
    np.testing.assert_array_equal(out.toarray(), [[0, 0, 1], [1, 0, 0]])
    assert out.dtype == np.float32 and out.indices.dtype == np.int32 and out.has_sorted_indices
    np.testing.assert_array_equal(coo.data, [1.0, 1.0, 5.0])


def test_canonical_csr_is_not_copied():
    m = sp.csr_matrix(np.eye(3, dtype=np.float32))
    out = check_interactions(m)
    assert np.shares_memory(out.data, m.data) and np.shares_memory(out.indices, m.indices)


def test_explicit_zeros_are_removed_and_csr_array_is_accepted():
    m = sp.csr_array((np.array([0.0, 2.0], np.float32), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    out = check_interactions(m)
    assert out.nnz == 1 and out.indices.tolist() == [1]


def test_dense_arrays_convert_with_a_warning():
    with pytest.warns(DataWarning, match="dense numpy array of shape \\(2, 2\\)"):
        assert check_interactions(np.eye(2)).nnz == 2


@pytest.mark.parametrize(
    "matrix, message",
    [
        (sp.csr_matrix(np.array([[np.inf, 1.0]])), "1 non-finite value\\(s\\).*\\(user 0, item 0\\)"),
        (sp.csr_matrix(np.array([[-1.0, 1.0]])), "1 negative value"),
        (sp.csr_matrix((0, 3)), "at least one user row and one item column; got shape \\(0, 3\\)"),
        (sp.csr_matrix((2, 3)), "no interactions .* the training split is empty"),
    ],
)
def test_interaction_errors(matrix, message):
    with pytest.raises(ValueError, match=message):
        check_interactions(matrix)


def test_interactions_shape_and_type():
    with pytest.raises(ValueError, match="valid must have shape \\(2, 2\\); got \\(2, 3\\)"):
        check_interactions(sp.csr_matrix(np.ones((2, 3))), "valid", shape=(2, 2))
    with pytest.raises(TypeError, match="must be a scipy.sparse matrix .* got list"):
        check_interactions([[1]])


def test_feature_checks():
    assert check_features(None, "img_feats", 3) is None
    x = np.ones((3, 2), np.float16)
    assert check_features(x, "img_feats", 3) is x  # no silent copy of float16 input
    with pytest.raises(ValueError, match="img_feats must be 2-D with shape \\(n_items, d\\); got an array of shape \\(3,\\)"):
        check_features(np.ones(3), "img_feats", 3)
    with pytest.raises(ValueError, match="has 4 rows but interactions has 3 item columns"):
        check_features(np.ones((4, 2)), "txt_feats", 3)
    with pytest.raises(TypeError, match="dense array"):
        check_features(sp.csr_matrix(np.ones((3, 2))), "txt_feats", 3)
    with pytest.raises(TypeError, match="real numbers"):
        check_features(np.ones((3, 2), complex), "txt_feats", 3)
    assert check_features(np.ones((3, 2), np.int64), "txt_feats", 3).dtype == np.float32


def test_parameter_messages_follow_scikit_learn():
    with pytest.raises(ValueError, match=r"The 'n_layers' parameter of RLMultimodalRec must be an int in the range \[1, inf\)\. Got 0 instead\."):
        check_int(0, "n_layers", "RLMultimodalRec", low=1)
    with pytest.raises(ValueError, match=r"must be a float in the range \(0.0, inf\)\. Got 0.0 instead"):
        check_float(0.0, "learning_rate", "LightGCN", low=0.0, closed="neither")
    with pytest.raises(ValueError, match="Got True instead"):
        check_int(True, "batch_size", "BPRMF", low=1)


def test_random_state():
    a, b = check_random_state(3), check_random_state(3)
    assert a.integers(1 << 30) == b.integers(1 << 30)
    g = np.random.default_rng(0)
    assert check_random_state(g) is g
    with pytest.raises(ValueError, match="random_state must be None, an int or a numpy.random.Generator"):
        check_random_state("seed")
    state = np.random.get_state()[1].copy()
    check_random_state(None).random()
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # the global state is never touched


def test_user_ids():
    ids, scalar = check_user_ids(np.int64(2), 3)
    assert scalar and ids.tolist() == [2]
    with pytest.raises(ValueError, match="holds ids outside \\[0, 3\\) for a model fitted on 3 users: \\[3, -1\\]"):
        check_user_ids([0, 3, -1], 3)
    with pytest.raises(TypeError, match="integer user ids"):
        check_user_ids([0.5], 3)
