"""The fused BPR-MF epoch kernels against MFObjective.loss_and_grads + lgrec.optim.Adam, or + a plain SGD step
per triplet (the oracles)."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lgrec.kernels import bpr_adam_epoch, bpr_sgd_epoch
from lgrec.kernels.bpr import SGD_PARALLEL_MIN, _dependency_levels
from lgrec.models.bpr import MFObjective
from lgrec.optim import Adam

from gradcheck import assert_grad_close, numeric_grad


def _oracle(user, item, users, pos, neg, batch_size, reg, lr, optimizer=None):
    """Batch by batch through the NumPy objective and the Adam class; returns losses and the optimiser."""
    objective = MFObjective(user, item, reg)
    optimizer = optimizer or Adam(objective.params, learning_rate=lr)
    losses = []
    for start in range(0, users.shape[0], batch_size):
        window = slice(start, start + batch_size)
        loss, grads, _ = objective.loss_and_grads(users[window], pos[window], neg[window])
        optimizer.step(objective.params, grads)
        losses.append(loss)
    return np.array(losses), optimizer


def _problem(seed, n_users, n_items, dim, n, dtype, scale=0.5):
    rng = np.random.default_rng(seed)
    user = (scale * rng.standard_normal((n_users, dim))).astype(dtype)
    item = (scale * rng.standard_normal((n_items, dim))).astype(dtype)
    users = rng.integers(0, n_users, n).astype(np.int32)
    pos = rng.integers(0, n_items, n).astype(np.int32)
    neg = rng.integers(0, n_items, n).astype(np.int32)
    return user, item, users, pos, neg


def _kernel(user, item, users, pos, neg, batch_size, reg, lr, state=None):
    state = state or {"m": [np.zeros_like(user), np.zeros_like(item)], "v": [np.zeros_like(user), np.zeros_like(item)],
                      "steps": [0, 0]}
    losses = bpr_adam_epoch(user, item, state["m"][0], state["v"][0], state["m"][1], state["v"][1], users, pos, neg,
                            batch_size=batch_size, regularization=reg, learning_rate=lr, beta1=0.9, beta2=0.999,
                            eps=1e-8, user_step=state["steps"][0], item_step=state["steps"][1])
    state["steps"] = [s + losses.shape[0] for s in state["steps"]]
    return losses, state


@given(seed=st.integers(0, 2**32 - 1), n_users=st.integers(1, 9), n_items=st.integers(2, 9),
       dim=st.sampled_from([1, 3, 8]), n=st.integers(1, 40), batch_size=st.integers(1, 16),
       reg=st.sampled_from([0.0, 1e-2, 0.5]), id_dtype=st.sampled_from([np.int32, np.int64]))
def test_epoch_matches_objective_and_adam_float64(seed, n_users, n_items, dim, n, batch_size, reg, id_dtype):
    """Repeated users and items within a batch, a short last batch, positives equal to negatives."""
    user, item, users, pos, neg = _problem(seed, n_users, n_items, dim, n, np.float64)
    pos = pos.astype(id_dtype)
    ref_user, ref_item = user.copy(), item.copy()
    ref_losses, optimizer = _oracle(ref_user, ref_item, users, pos, neg, batch_size, reg, 0.05)
    losses, state = _kernel(user, item, users, pos, neg, batch_size, reg, 0.05)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(user, ref_user, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(item, ref_item, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(state["m"][1], optimizer.m["item"], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(state["v"][0], optimizer.v["user"], rtol=1e-11, atol=1e-16)
    assert state["steps"] == [optimizer.steps["user"], optimizer.steps["item"]]


def test_second_epoch_continues_the_step_counts_and_untouched_rows_stay():
    user, item, users, pos, neg = _problem(1, 30, 20, 4, 50, np.float64)
    ref_user, ref_item = user.copy(), item.copy()
    _, optimizer = _oracle(ref_user, ref_item, users, pos, neg, 8, 0.1, 0.02)
    _, state = _kernel(user, item, users, pos, neg, 8, 0.1, 0.02)
    order = np.random.default_rng(2).permutation(50)
    ref_losses, _ = _oracle(ref_user, ref_item, users[order], pos[order], neg[order], 8, 0.1, 0.02, optimizer)
    losses, state = _kernel(user, item, users[order], pos[order], neg[order], 8, 0.1, 0.02, state)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    np.testing.assert_allclose(user, ref_user, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(item, ref_item, rtol=1e-11, atol=1e-13)
    untouched = np.setdiff1d(np.arange(30), users)
    assert untouched.size and not state["m"][0][untouched].any()


def test_epoch_matches_objective_and_adam_float32():
    user, item, users, pos, neg = _problem(3, 200, 150, 64, 3000, np.float32, scale=0.1)
    ref_user, ref_item = user.copy(), item.copy()
    ref_losses, _ = _oracle(ref_user, ref_item, users, pos, neg, 256, 1e-4, 1e-3)
    losses, _ = _kernel(user, item, users, pos, neg, 256, 1e-4, 1e-3)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    np.testing.assert_allclose(user, ref_user, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(item, ref_item, rtol=1e-4, atol=1e-5)
    assert user.dtype == np.float32


def test_saturated_margins_give_finite_losses():
    user = np.full((2, 3), 30.0)
    item = np.array([[30.0] * 3, [-30.0] * 3])
    users, pos, neg = np.array([0, 1]), np.array([0, 1]), np.array([1, 0])  # x = +5400 and -5400
    losses, _ = _kernel(user, item, users, pos, neg, 2, 0.0, 1e-3)
    np.testing.assert_allclose(losses, [5400.0 / 2], rtol=1e-12)
    assert np.isfinite(user).all() and np.isfinite(item).all()


def _assert_same_for_one_and_two_threads(run):
    """``run()`` (a tuple of arrays) under 1 and under 2 Numba threads: every array bit-identical."""
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(run())
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
def test_bit_identical_for_one_and_two_threads():
    def run():
        user, item, users, pos, neg = _problem(4, 300, 100, 16, 5000, np.float32)
        losses, state = _kernel(user, item, users, pos, neg, 512, 1e-3, 1e-2)
        return (losses, user, item, *state["m"], *state["v"])

    _assert_same_for_one_and_two_threads(run)


def test_invalid_arguments_are_named():
    user, item, users, pos, neg = _problem(0, 4, 5, 2, 6, np.float32)
    m = [np.zeros_like(user), np.zeros_like(user), np.zeros_like(item), np.zeros_like(item)]
    kwargs = dict(batch_size=2, regularization=0.0, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                  user_step=0, item_step=0)
    with pytest.raises(ValueError, match="item_v must have dtype float32"):
        bpr_adam_epoch(user, item, *m[:3], m[3].astype(np.float64), users, pos, neg, **kwargs)
    with pytest.raises(ValueError, match="user must be C-contiguous"):
        bpr_adam_epoch(np.asfortranarray(user), item, *m, users, pos, neg, **kwargs)
    with pytest.raises(ValueError, match=r"neg must hold ids in \[0, 5\)"):
        bpr_adam_epoch(user, item, *m, users, pos, neg + 5, **kwargs)
    with pytest.raises(ValueError, match="pos must be a 1-D integer array of length 6"):
        bpr_adam_epoch(user, item, *m, users, pos[:3], neg, **kwargs)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        bpr_adam_epoch(user, item, *m, users, pos, neg, **{**kwargs, "batch_size": 0})
    with pytest.raises(ValueError, match="item_step must be a non-negative int"):
        bpr_adam_epoch(user, item, *m, users, pos, neg, **{**kwargs, "item_step": -1})


# --- per-triplet SGD (bpr_sgd_epoch) ---------------------------------------------------------------------------


def _sgd_oracle(user, item, users, pos, neg, reg, lr_user, lr_item, block_size):
    """Triplet by triplet: the NumPy objective's gradient of the one-triplet batch, then ``p -= lr * grad``."""
    objective = MFObjective(user, item, reg)
    losses = []
    for t in range(users.shape[0]):
        window = slice(t, t + 1)
        loss, grads, _ = objective.loss_and_grads(users[window], pos[window], neg[window])
        user -= lr_user * grads["user"].to_dense(user.shape[0])
        item -= lr_item * grads["item"].to_dense(item.shape[0])
        losses.append(loss)
    losses = np.array(losses)
    return np.array([losses[s:s + block_size].mean() for s in range(0, losses.shape[0], block_size)])


@given(seed=st.integers(0, 2**32 - 1), n_users=st.integers(1, 9), n_items=st.integers(2, 9),
       dim=st.sampled_from([1, 3, 8, 19]), n=st.integers(1, 40), block_size=st.integers(1, 16),
       reg=st.sampled_from([0.0, 1e-2, 0.5]), lrs=st.sampled_from([(0.05, 0.05), (0.1, 0.02)]),
       id_dtype=st.sampled_from([np.int32, np.int64]))
def test_sgd_epoch_matches_objective_step_by_step_float64(seed, n_users, n_items, dim, n, block_size, reg, lrs,
                                                           id_dtype):
    """Users and items repeated across consecutive triplets, positives equal to negatives, a short last block,
    dimensions that are and are not multiples of the kernel's 8 partial sums, per-table step sizes."""
    user, item, users, pos, neg = _problem(seed, n_users, n_items, dim, n, np.float64)
    pos = pos.astype(id_dtype)
    ref_user, ref_item = user.copy(), item.copy()
    ref_losses = _sgd_oracle(ref_user, ref_item, users, pos, neg, reg, *lrs, block_size)
    losses = bpr_sgd_epoch(user, item, users, pos, neg, regularization=reg, learning_rate=0.3, block_size=block_size,
                           user_learning_rate=lrs[0], item_learning_rate=lrs[1])
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(user, ref_user, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(item, ref_item, rtol=1e-11, atol=1e-13)


def test_sgd_epoch_matches_objective_step_by_step_float32():
    user, item, users, pos, neg = _problem(3, 200, 150, 64, 3000, np.float32, scale=0.1)
    ref_user, ref_item = user.copy(), item.copy()
    ref_losses = _sgd_oracle(ref_user, ref_item, users, pos, neg, 1e-4, 0.05, 0.05, 256)
    losses = bpr_sgd_epoch(user, item, users, pos, neg, regularization=1e-4, learning_rate=0.05, block_size=256)
    assert user.dtype == np.float32 and item.dtype == np.float32
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    np.testing.assert_allclose(user, ref_user, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(item, ref_item, rtol=1e-4, atol=1e-5)


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 12), reg=st.floats(0.0, 0.5),
       lr=st.floats(1e-3, 0.5), same_item=st.booleans())
def test_one_sgd_step_is_minus_lr_times_the_central_difference_gradient(seed, dim, reg, lr, same_item):
    """The kernel's step for one triplet, divided by -lr, is the gradient of the loss that
    ``tests/test_losses.py`` checks against central differences (checked the same way here)."""
    rng = np.random.default_rng(seed)
    user, item = rng.standard_normal((3, dim)), rng.standard_normal((4, dim))
    users, pos = np.array([1]), np.array([2])
    neg = pos.copy() if same_item else np.array([0])
    objective = MFObjective(user.copy(), item.copy(), reg)
    numeric = {name: numeric_grad(lambda: objective.loss_and_grads(users, pos, neg)[0], objective.params[name])
               for name in ("user", "item")}
    new_user, new_item = user.copy(), item.copy()
    losses = bpr_sgd_epoch(new_user, new_item, users, pos, neg, regularization=reg, learning_rate=lr, block_size=1)
    np.testing.assert_allclose(losses, [objective.loss_and_grads(users, pos, neg)[0]], rtol=1e-12)
    assert_grad_close((user - new_user) / lr, numeric["user"], name="user")
    assert_grad_close((item - new_item) / lr, numeric["item"], name="item")


def test_sgd_steps_see_the_previous_steps():
    """Sequential, not a batch: the second triplet of a user reads the user row the first one wrote."""
    user, item = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    users, pos, neg = np.array([0, 0]), np.array([0, 0]), np.array([1, 2])
    one_by_one = [user.copy(), item.copy()]
    for t in range(2):
        bpr_sgd_epoch(*one_by_one, users[t:t + 1], pos[t:t + 1], neg[t:t + 1], regularization=0.1, learning_rate=0.5,
                      block_size=1)
    bpr_sgd_epoch(user, item, users, pos, neg, regularization=0.1, learning_rate=0.5, block_size=1)
    np.testing.assert_array_equal(user, one_by_one[0])
    np.testing.assert_array_equal(item, one_by_one[1])


@given(seed=st.integers(0, 2**32 - 1), n_users=st.integers(1, 6), n_items=st.integers(1, 6), n=st.integers(0, 40))
def test_sgd_levels_share_no_row_and_keep_the_order_of_each_row(seed, n_users, n_items, n):
    rng = np.random.default_rng(seed)
    users, pos, neg = rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.integers(0, n_items, n)
    order, level_ptr = np.empty(n, dtype=np.int64), np.empty(n + 1, dtype=np.int64)
    n_levels = _dependency_levels(users, pos, neg, n_users, n_items, order, level_ptr)
    assert sorted(order) == list(range(n)) and level_ptr[0] == 0 and level_ptr[n_levels] == n
    level = np.empty(n, dtype=np.int64)
    for lv in range(n_levels):
        members = order[level_ptr[lv]:level_ptr[lv + 1]]
        assert members.size > 0 and list(members) == sorted(members)
        level[members] = lv
        rows = [("u", users[t]) for t in members] + [("i", i) for t in members for i in {pos[t], neg[t]}]
        assert len(rows) == len(set(rows)), f"level {lv} has two triplets sharing a row"
    for t in range(n):
        for s in range(t):
            shared = users[s] == users[t] or {pos[s], neg[s]} & {pos[t], neg[t]}
            assert not shared or level[s] < level[t]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
def test_sgd_parallel_levels_equal_the_steps_one_at_a_time():
    """Large enough for levels that run in parallel; bit-identical to one call per triplet (each its own level)."""
    user, item, users, pos, neg = _problem(5, 3000, 3000, 16, 6000, np.float32, scale=0.3)
    order, level_ptr = np.empty(6000, dtype=np.int64), np.empty(6001, dtype=np.int64)
    n_levels = _dependency_levels(users, pos, neg, 3000, 3000, order, level_ptr)
    assert np.diff(level_ptr[:n_levels + 1]).max() >= SGD_PARALLEL_MIN  # the parallel path runs
    one_by_one = [user.copy(), item.copy()]
    kwargs = dict(regularization=1e-3, learning_rate=0.05, block_size=1)
    expected = [bpr_sgd_epoch(*one_by_one, users[t:t + 1], pos[t:t + 1], neg[t:t + 1], **kwargs)[0]
                for t in range(6000)]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        losses = bpr_sgd_epoch(user, item, users, pos, neg, **kwargs)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(losses, expected)
    np.testing.assert_array_equal(user, one_by_one[0])
    np.testing.assert_array_equal(item, one_by_one[1])


def test_sgd_saturated_margins_give_finite_losses_and_steps():
    user = np.full((2, 3), 30.0)
    item = np.array([[30.0] * 3, [-30.0] * 3])
    users, pos, neg = np.array([0, 1]), np.array([0, 1]), np.array([1, 0])  # x = +5400 and -5400
    losses = bpr_sgd_epoch(user, item, users, pos, neg, regularization=0.0, learning_rate=1e-3, block_size=2)
    assert np.isfinite(losses).all() and losses[0] > 1000
    assert np.isfinite(user).all() and np.isfinite(item).all()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
def test_sgd_bit_identical_for_one_and_two_threads():
    def run():
        user, item, users, pos, neg = _problem(4, 300, 100, 16, 5000, np.float32)
        losses = bpr_sgd_epoch(user, item, users, pos, neg, regularization=1e-3, learning_rate=1e-2, block_size=512)
        return losses, user, item

    _assert_same_for_one_and_two_threads(run)


def test_sgd_invalid_arguments_are_named():
    user, item, users, pos, neg = _problem(0, 4, 5, 2, 6, np.float32)
    kwargs = dict(regularization=0.0, learning_rate=1e-2, block_size=2)
    with pytest.raises(ValueError, match="item must have dtype float32"):
        bpr_sgd_epoch(user, item.astype(np.float64), users, pos, neg, **kwargs)
    with pytest.raises(ValueError, match="user must be C-contiguous"):
        bpr_sgd_epoch(np.asfortranarray(user), item, users, pos, neg, **kwargs)
    with pytest.raises(ValueError, match=r"neg must hold ids in \[0, 5\)"):
        bpr_sgd_epoch(user, item, users, pos, neg + 5, **kwargs)
    with pytest.raises(ValueError, match="pos must be a 1-D integer array of length 6"):
        bpr_sgd_epoch(user, item, users, pos[:3], neg, **kwargs)
    with pytest.raises(ValueError, match="block_size must be a positive int; got 0"):
        bpr_sgd_epoch(user, item, users, pos, neg, **{**kwargs, "block_size": 0})
