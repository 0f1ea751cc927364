"""The training-step protocol: a new graph model by overriding one hook, pure batch steps, the loop."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lgrec
from lgrec.fusion import init_fusion_params, prepare_features
from lgrec.graph import normalized_adjacency, propagate
from lgrec.models._base import xavier_uniform
from lgrec.models.rlmm import RLMMObjective
from lgrec.objective import GraphObjective, Objective
from lgrec.scoring import FactorScorer
from lgrec.training import TripletSampler, train

from conftest import random_interactions
from gradcheck import check_objective_gradients, triplets


class DeepLayersFirst(GraphObjective):
    """A newcomer's toy model: LightGCN whose deeper layers weigh more. One hook, nothing else."""

    def layer_weights(self):
        weights = np.arange(1, self.n_layers + 2, dtype=self.params["user"].dtype)
        return weights / weights.sum()


@given(seed=st.integers(0, 2**32 - 1), n_layers=st.integers(0, 3), reg=st.floats(0.0, 0.5), batch=st.integers(1, 5))
def test_a_model_that_overrides_only_the_layer_weights_gets_correct_gradients(seed, n_layers, reg, batch):
    rng = np.random.default_rng(seed)
    train_matrix = random_interactions(rng, 5, 6, 0.3)
    objective = DeepLayersFirst(normalized_adjacency(train_matrix, dtype=np.float64),
                                rng.standard_normal((5, 3)), rng.standard_normal((6, 3)), n_layers, reg)
    check_objective_gradients(objective, *triplets(rng, train_matrix, batch))


def test_the_toy_model_scores_with_its_own_layer_weights_and_trains(synthetic):
    rng = np.random.default_rng(0)
    graph = normalized_adjacency(synthetic.train)
    objective = DeepLayersFirst(graph, xavier_uniform(rng, synthetic.n_users, 8),
                                xavier_uniform(rng, synthetic.n_items, 8), 2, 1e-4)
    users, items = objective.factors()
    expected = propagate(graph, objective.params["user"], objective.params["item"], 2, [1 / 6, 2 / 6, 3 / 6])
    np.testing.assert_allclose(users, expected[0], rtol=1e-5)
    np.testing.assert_allclose(items, expected[1], rtol=1e-5)
    result = train(objective, TripletSampler(synthetic.train), rng=rng, learning_rate=0.01, batch_size=256,
                   max_epochs=3, patience=3, valid=synthetic.valid, exclude=synthetic.train)
    assert len(result.history) == 3 and result.history[-1]["loss"] < result.history[0]["loss"]


class TinyMF(Objective):
    """The least an objective needs: parameters, a batch step and a scorer."""

    def __init__(self, rng, n_users, n_items):
        self.params = {"user": 0.1 * rng.standard_normal((n_users, 4)), "item": 0.1 * rng.standard_normal((n_items, 4))}

    def loss_and_grads(self, users, pos, neg, state):
        u, diff = self.params["user"][users], self.params["item"][pos] - self.params["item"][neg]
        x = np.einsum("bd,bd->b", u, diff)
        dx = -1.0 / (1.0 + np.exp(x)) / users.shape[0]
        d_user, d_item = np.zeros_like(self.params["user"]), np.zeros_like(self.params["item"])
        np.add.at(d_user, users, dx[:, None] * diff)
        np.add.at(d_item, pos, dx[:, None] * u)
        np.add.at(d_item, neg, -dx[:, None] * u)
        return float(np.mean(np.logaddexp(0.0, -x))), {"user": d_user, "item": d_item}, (state or 0) + 1

    def scorer(self):
        return FactorScorer(self.params["user"], self.params["item"])


def test_the_loop_calls_only_the_protocol_and_carries_the_state(synthetic):
    objective = TinyMF(np.random.default_rng(0), synthetic.n_users, synthetic.n_items)
    sampler = TripletSampler(synthetic.train)
    result = train(objective, sampler, rng=np.random.default_rng(1), learning_rate=0.05, batch_size=300,
                   max_epochs=4, patience=4, valid=synthetic.valid, exclude=synthetic.train)
    assert result.best_epoch >= 1 and all("valid_recall@20" in r for r in result.history)
    users, pos, neg = sampler.epoch(np.random.default_rng(2))
    optimizer = lgrec.optim.Adam(objective.params)
    _, state = objective.run_epoch(users, pos, neg, optimizer, 300, 10)
    assert state == 10 + -(-users.shape[0] // 300)  # one call per batch, the state passed along


def test_rlmm_batch_steps_are_pure_functions_of_parameters_batch_and_state():
    rng = np.random.default_rng(0)
    train_matrix = random_interactions(rng, 6, 8, 0.3)
    inputs, _ = prepare_features(rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), 8, "none")
    objective = RLMMObjective(normalized_adjacency(train_matrix, dtype=np.float64), rng.standard_normal((6, 4)),
                              rng.standard_normal((8, 4)), {k: v.astype(np.float64) for k, v in
                                                            init_fusion_params(rng, 3, 2, 4).items()},
                              inputs, 2, 0.1, 1.0, True, content_refresh=3)
    batch = triplets(rng, train_matrix, 4)
    _, _, state = objective.loss_and_grads(*batch, objective.initial_state())
    first = objective.loss_and_grads(*batch, state)
    again = objective.loss_and_grads(*batch, state)  # same inputs, same state: same answer
    assert first[0] == again[0] and first[2].batches == again[2].batches == 2
    for key in first[1]:
        np.testing.assert_array_equal(first[1][key], again[1][key])


def test_layer_weights_must_match_the_layers():
    rng = np.random.default_rng(0)
    graph = normalized_adjacency(random_interactions(rng, 3, 4, 0.5))
    with pytest.raises(ValueError, match=r"weights must have one entry per layer 0..2, shape \(3,\); got shape \(2,\)"):
        propagate(graph, np.ones((3, 2), np.float32), np.ones((4, 2), np.float32), 2, [0.5, 0.5])


def test_auto_batch_size_keeps_the_steps_per_epoch_fixed(synthetic):
    from lgrec.training import AUTO_MIN_BATCH, AUTO_STEPS_PER_EPOCH, resolve_batch_size

    assert resolve_batch_size(512, 10**9) == 512
    assert resolve_batch_size("auto", 1000) == AUTO_MIN_BATCH
    big = 10**7
    size = resolve_batch_size("auto", big)
    assert -(-big // size) == AUTO_STEPS_PER_EPOCH and size > AUTO_MIN_BATCH
    model = lgrec.LightGCN(batch_size="auto", max_epochs=1, random_state=0).fit(synthetic.train)
    assert model.batch_size_ == AUTO_MIN_BATCH
    with pytest.raises(ValueError, match=r"'batch_size' parameter of LightGCN must be an int in the range \[1, inf\) or 'auto'"):
        lgrec.LightGCN(batch_size="big").fit(synthetic.train)


def test_bprmf_fused_epoch_equals_the_generic_batch_loop():
    from lgrec.models.bpr import MFObjective
    from lgrec.optim import Adam

    rng = np.random.default_rng(3)
    train_matrix = random_interactions(rng, 40, 30, 0.2)
    users, pos, neg = TripletSampler(train_matrix).epoch(rng)
    fused = MFObjective(0.1 * rng.standard_normal((40, 8)), 0.1 * rng.standard_normal((30, 8)), 0.01)
    generic = MFObjective(fused.params["user"].copy(), fused.params["item"].copy(), 0.01)
    fused_opt, generic_opt = Adam(fused.params, 0.01), Adam(generic.params, 0.01)
    for _ in range(2):
        a, _ = fused.run_epoch(users, pos, neg, fused_opt, 16, None)
        b, _ = Objective.run_epoch(generic, users, pos, neg, generic_opt, 16, None)
        np.testing.assert_allclose(a, b, rtol=1e-10)
    for name in ("user", "item"):
        np.testing.assert_allclose(fused.params[name], generic.params[name], rtol=1e-9, atol=1e-12)
        assert fused_opt.steps[name] == generic_opt.steps[name]


def test_the_loop_refuses_an_optimizer_the_objective_does_not_list(synthetic):
    objective = TinyMF(np.random.default_rng(0), synthetic.n_users, synthetic.n_items)
    assert objective.optimizers == ("adam",)
    with pytest.raises(ValueError, match=r"The 'optimizer' of TinyMF must be one of \['adam'\]. Got 'sgd' instead."):
        train(objective, TripletSampler(synthetic.train), rng=np.random.default_rng(1), learning_rate=0.05,
              batch_size=300, max_epochs=1, patience=1, owner="TinyMF", optimizer="sgd")
