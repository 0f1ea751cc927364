"""Hypothesis-driven central-difference checks of every hand-written gradient (float64)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lgrec.graph import normalized_adjacency
from lgrec.losses import bpr_backward, bpr_forward, l2_backward, l2_forward
from lgrec.models.bpr import MFObjective
from lgrec.objective import GraphObjective

from conftest import random_interactions
from gradcheck import assert_grad_close, check_objective_gradients, numeric_grad, triplets

bounded = st.floats(-2.0, 2.0, allow_nan=False)


@given(batch=st.integers(1, 6), dim=st.integers(1, 5), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 3.0))
def test_bpr_gradient(batch, dim, seed, scale):
    rng = np.random.default_rng(seed)
    u, i, j = (scale * rng.standard_normal((batch, dim)) for _ in range(3))
    _, cache = bpr_forward(u, i, j)
    grads = bpr_backward(cache)
    for name, x, g in zip("uij", (u, i, j), grads):
        assert_grad_close(g, numeric_grad(lambda: bpr_forward(u, i, j)[0], x), name=name)


def test_bpr_loss_is_stable_for_large_margins():
    u = np.array([[100.0]])
    loss, cache = bpr_forward(u, np.array([[-100.0]]), np.array([[100.0]]))
    assert np.isfinite(loss) and abs(loss - 20000.0) < 1e-6
    assert np.isfinite(bpr_backward(cache)[0]).all()


@given(weight=st.floats(0.0, 2.0), batch=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_l2_gradient(weight, batch, seed):
    rows = np.random.default_rng(seed).standard_normal((batch, 3))
    assert_grad_close(l2_backward(weight, batch, rows), numeric_grad(lambda: l2_forward(weight, batch, rows), rows))


@given(seed=st.integers(0, 2**32 - 1), reg=st.floats(0.0, 0.5), batch=st.integers(1, 6))
def test_mf_objective_gradient_with_repeated_rows(seed, reg, batch):
    rng = np.random.default_rng(seed)
    train = random_interactions(rng, 4, 5, 0.3)  # tiny: batches repeat users and items
    objective = MFObjective(rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), reg)
    check_objective_gradients(objective, *triplets(rng, train, batch))


@given(
    seed=st.integers(0, 2**32 - 1),
    reg=st.floats(0.0, 0.5),
    n_layers=st.integers(0, 3),
    n_users=st.integers(2, 6),
    n_items=st.integers(2, 6),
    batch=st.integers(1, 5),
)
def test_lightgcn_objective_gradient_on_tiny_graphs(seed, reg, n_layers, n_users, n_items, batch):
    rng = np.random.default_rng(seed)
    train = random_interactions(rng, n_users, n_items, 0.3)
    objective = GraphObjective(
        normalized_adjacency(train, dtype=np.float64),
        rng.standard_normal((n_users, 3)),
        rng.standard_normal((n_items, 3)),
        n_layers,
        reg,
    )
    check_objective_gradients(objective, *triplets(rng, train, batch))
