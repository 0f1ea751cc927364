"""Adam's first steps by hand, and lazy (row) updates."""

import numpy as np
import pytest

from lgrec.optim import Adam, RowGrad, row_grad


def test_first_adam_step_moves_each_weight_by_lr_against_its_gradient_sign():
    # After one step m = (1-b1) g, v = (1-b2) g^2; the bias corrections cancel both factors,
    # so the update is lr * g / (|g| + eps) = lr * sign(g) up to eps.
    params = {"w": np.array([1.0, -2.0, 3.0, 0.5])}
    grad = np.array([0.3, -4.0, 1e-3, 0.0])
    Adam(params, learning_rate=0.1).step(params, {"w": grad})
    expected = np.array([1.0, -2.0, 3.0, 0.5]) - 0.1 * grad / (np.abs(grad) + 1e-8)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-12)
    np.testing.assert_allclose(params["w"][:2], [0.9, -1.9], rtol=1e-7)


def test_second_adam_step_by_hand():
    params = {"w": np.array([0.0])}
    opt = Adam(params, learning_rate=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    opt.step(params, {"w": np.array([1.0])})
    opt.step(params, {"w": np.array([-1.0])})
    m = 0.9 * 0.1 + 0.1 * -1.0
    v = 0.999 * 0.001 + 0.001 * 1.0
    expected = -0.01 / (1 + 1e-8) - 0.01 / (1 - 0.9**2) * m / (np.sqrt(v) / np.sqrt(1 - 0.999**2) + 1e-8)
    np.testing.assert_allclose(params["w"], [expected], rtol=1e-12)
    assert opt.steps == {"w": 2}


def test_row_gradients_update_only_their_rows_and_match_dense_on_them():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((6, 2))
    sparse_params, dense_params = {"e": table.copy()}, {"e": table.copy()}
    sparse_opt, dense_opt = Adam(sparse_params), Adam(dense_params)
    grad = row_grad(np.array([4, 1, 4]), np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_array_equal(grad.rows, [1, 4])
    np.testing.assert_array_equal(grad.values, [[3.0, 4.0], [6.0, 8.0]])
    sparse_opt.step(sparse_params, {"e": grad})
    dense_opt.step(dense_params, {"e": grad.to_dense(6)})
    np.testing.assert_allclose(sparse_params["e"][[1, 4]], dense_params["e"][[1, 4]], rtol=1e-12)
    np.testing.assert_array_equal(sparse_params["e"][[0, 2, 3, 5]], table[[0, 2, 3, 5]])


def test_adam_rejects_a_gradient_of_the_wrong_shape():
    params = {"w": np.zeros((2, 3))}
    with pytest.raises(ValueError, match="gradient of 'w' has shape"):
        Adam(params).step(params, {"w": np.zeros((3, 2))})


def test_rowgrad_to_dense():
    grad = RowGrad(np.array([2]), np.array([[1.0, 1.0]]))
    np.testing.assert_array_equal(grad.to_dense(3), [[0, 0], [0, 0], [1, 1]])


def test_parameters_without_a_gradient_keep_their_own_step_count():
    params = {"a": np.array([0.0]), "b": np.array([0.0])}
    opt = Adam(params, learning_rate=0.01)
    opt.step(params, {"a": np.array([1.0])})
    opt.step(params, {"a": np.array([1.0]), "b": np.array([1.0])})
    assert opt.steps == {"a": 2, "b": 1}
    # b's first update is a first Adam step (bias corrections of step 1): lr * g / (|g| + eps)
    np.testing.assert_allclose(params["b"], [-0.01 / (1 + 1e-8)], rtol=1e-12)


def test_per_parameter_learning_rates():
    params = {"a": np.array([1.0, 1.0]), "b": np.array([1.0, 1.0])}
    grads = {"a": np.array([0.5, -2.0]), "b": np.array([0.5, -2.0])}
    Adam(params, learning_rate=0.1, learning_rates={"b": 0.01}).step(params, grads)
    np.testing.assert_allclose(params["a"], [0.9, 1.1], rtol=1e-7)
    np.testing.assert_allclose(params["b"], [0.99, 1.01], rtol=1e-7)


def test_learning_rates_must_name_existing_parameters():
    with pytest.raises(ValueError, match=r"learning_rates must name parameters among \['w'\]; got \['W_g'\]"):
        Adam({"w": np.zeros(2)}, learning_rates={"W_g": 0.1})
