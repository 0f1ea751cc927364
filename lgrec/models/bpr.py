r"""BPR-MF: matrix factorisation trained with the BPR loss.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
Score :math:`\hat y_{ui} = p_u^\top q_i`; loss and regulariser as in :mod:`lgrec.losses`.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_float, check_random_state
from ..kernels import bpr_adam_epoch, bpr_sgd_epoch
from ..losses import bpr_backward, bpr_forward, l2_backward, l2_forward
from ..objective import Objective
from ..optim import SGD, row_grad
from ..scoring import FactorScorer
from ._base import TRAINED_STATE, Recommender, check_fit_data, check_training_params, single_blas_thread, xavier_normal

__all__ = ["BPRMF"]

#: ``learning_rate=None``: the step size of each optimizer (SGD's chosen on Amazon Baby validation,
#: benchmarks/README.md "BPR-MF epoch vs implicit").
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "sgd": 0.02}


class MFObjective(Objective):
    """BPR objective of plain matrix factorisation; gradients touch only the batch's rows.

    Parameters
    ----------
    user : ndarray of shape (n_users, d)
    item : ndarray of shape (n_items, d)
    regularization : float
        L2 weight :math:`\\lambda`.
    """

    optimizers = ("adam", "sgd")

    def __init__(self, user: np.ndarray, item: np.ndarray, regularization: float):
        self.params = {"user": user, "item": item}
        self.regularization = regularization

    def loss_and_grads(self, users, pos, neg, state=None):
        """BPR + L2 loss of a batch and its row-sparse gradients (no state)."""
        user_table, item_table = self.params["user"], self.params["item"]
        e_u, e_i, e_j = user_table[users], item_table[pos], item_table[neg]
        loss, cache = bpr_forward(e_u, e_i, e_j)
        d_u, d_i, d_j = bpr_backward(cache)
        reg, batch = self.regularization, users.shape[0]
        loss += l2_forward(reg, batch, e_u, e_i, e_j)
        d_u += l2_backward(reg, batch, e_u)
        d_i += l2_backward(reg, batch, e_i)
        d_j += l2_backward(reg, batch, e_j)
        grads = {
            "user": row_grad(users, d_u),
            "item": row_grad(np.concatenate([pos, neg]), np.concatenate([d_i, d_j])),
        }
        return loss, grads, state

    def run_epoch(self, users, pos, neg, optimizer, batch_size: int, state, on_batch=None):
        """The whole epoch in one fused Numba kernel.

        With :class:`lgrec.optim.Adam` (:func:`lgrec.kernels.bpr_adam_epoch`): the same arithmetic
        as :meth:`loss_and_grads` followed by ``optimizer.step`` per batch (``tests/test_bpr_kernel.py``),
        without the per-batch Python calls. With :class:`lgrec.optim.SGD`
        (:func:`lgrec.kernels.bpr_sgd_epoch`): one SGD step per triplet on the gradient of
        :meth:`loss_and_grads` of that triplet alone; ``batch_size`` triplets per returned loss.
        """
        if isinstance(optimizer, SGD):
            losses = bpr_sgd_epoch(
                self.params["user"], self.params["item"], users, pos, neg, regularization=self.regularization,
                learning_rate=optimizer.learning_rate, block_size=batch_size,
                user_learning_rate=optimizer.learning_rates.get("user"),
                item_learning_rate=optimizer.learning_rates.get("item"),
            )
            if on_batch is not None:
                for _ in range(losses.shape[0]):
                    on_batch()
            return losses, state
        user_step, item_step = optimizer.steps["user"], optimizer.steps["item"]
        losses = bpr_adam_epoch(
            self.params["user"], self.params["item"], optimizer.m["user"], optimizer.v["user"],
            optimizer.m["item"], optimizer.v["item"], users, pos, neg, batch_size=batch_size,
            regularization=self.regularization, learning_rate=optimizer.learning_rate, beta1=optimizer.beta1,
            beta2=optimizer.beta2, eps=optimizer.eps, user_step=user_step, item_step=item_step,
            user_learning_rate=optimizer.learning_rates.get("user"),
            item_learning_rate=optimizer.learning_rates.get("item"),
        )
        optimizer.steps["user"] += losses.shape[0]
        optimizer.steps["item"] += losses.shape[0]
        if on_batch is not None:
            for _ in range(losses.shape[0]):
                on_batch()
        return losses, state

    def scorer(self) -> FactorScorer:
        return FactorScorer(self.params["user"], self.params["item"])


class BPRMF(Recommender):
    r"""Matrix factorisation with the BPR loss, trained with mini-batch lazy Adam or per-triplet SGD.

    Score :math:`\hat y_{ui} = p_u^\top q_i`. Each epoch visits every training
    interaction :math:`(u, i)` once in a random order with a negative item
    :math:`j` drawn uniformly from the items :math:`u` has not interacted with.

    ``optimizer="adam"`` (default; follows MMRec's BPR: embedding 64, batch 2048,
    Adam lr 1e-3, Glorot-normal initialisation, early stopping on validation
    Recall@20 with patience 20) takes one Adam step per batch of :math:`B`
    triplets on

    .. math::

        \mathcal L = \frac{1}{B}\sum_b \log\bigl(1 + e^{-x_b}\bigr)
            + \frac{\lambda}{2B}\sum_b \bigl(\lVert p_{u_b}\rVert^2 + \lVert q_{i_b}\rVert^2
            + \lVert q_{j_b}\rVert^2\bigr), \qquad x_b = p_{u_b}^\top (q_{i_b} - q_{j_b}).

    The update is lazy: only the rows a batch touches move (with their moments),
    so an epoch costs time proportional to the number of interactions, not to
    the catalogue size.

    ``optimizer="sgd"`` is Rendle et al.'s learning algorithm (as in the
    ``implicit`` package): every triplet takes one plain SGD step
    :math:`\theta \leftarrow \theta - \eta\, \nabla_\theta \ell_t` on its own loss
    :math:`\ell_t` (the formula above with :math:`B = 1`), with the result of visiting
    the epoch's triplets in order: triplets that share no row run in parallel, without
    Hogwild races, so a ``random_state`` gives the same model for any number of
    threads (:func:`lgrec.kernels.bpr_sgd_epoch`). On Amazon Baby its epoch took
    19.0-25.1 ms against 10.8-22.5 ms for ``implicit``'s two-thread Hogwild epoch in
    the same runs (quiet machine, 2 threads), and it needed twice Adam's epochs (80
    against 39, so a longer fit when every epoch is validated) for a higher test
    Recall@20 / NDCG@20 (0.0622 / 0.0270 against 0.0562 / 0.0242, seed 0);
    benchmarks/README.md, "BPR-MF epoch vs implicit".

    Parameters
    ----------
    embedding_size : int, default=64
        Dimension of user and item vectors.
    learning_rate : float or None, default=None
        Step size; None uses the optimizer's default: 1e-3 for ``"adam"``,
        0.02 for ``"sgd"`` (the best validation Recall@20 on Amazon Baby among
        0.01, 0.02, 0.05, 0.1 and 0.2).
    regularization : float, default=1e-4
        L2 weight :math:`\lambda` on the user, positive and negative vectors of
        each triplet (averaged over the batch with Adam).
    batch_size : int or "auto", default=2048
        Triplets per Adam step. With ``optimizer="sgd"`` every triplet takes its
        own step, and ``batch_size`` only sets how many triplets each recorded
        loss averages (the losses behind the divergence check).
    max_epochs : int, default=1000
        Upper bound on epochs.
    patience : int, default=20
        Early stopping: epochs without a better validation Recall@20.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of initialisation, shuffling and negative sampling.
    verbose : bool, default=False
        Per-epoch progress lines on stderr.
    optimizer : {"adam", "sgd"}, default="adam"
        Mini-batch lazy Adam, or per-triplet SGD (see above).

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, embedding_size), float32
    item_factors_ : ndarray of shape (n_items, embedding_size), float32
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``train_seconds``, ``eval_seconds`` and,
        with ``valid``, ``valid_recall@20`` and the other validation metrics.
    best_epoch_ : int
        Epoch whose parameters were kept.
    batch_size_ : int
        Triplets per optimiser step of the fit (``batch_size`` resolved; with
        ``optimizer="sgd"``, triplets per recorded loss).

    Notes
    -----
    New users (:meth:`recommend_new`): the user vector is fitted by ``fold_in_steps`` full-batch
    BPR steps (Adam) on the user's items with every item vector fixed
    (:func:`lgrec.models._foldin.bpr_fold_in`), whichever optimizer trained the model.

    References
    ----------
    .. [1] S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme. "BPR: Bayesian
       Personalized Ranking from Implicit Feedback." UAI 2009.
    """

    _saved_state = {**Recommender._saved_state, **TRAINED_STATE}

    def __init__(
        self,
        embedding_size: int = 64,
        learning_rate: float | None = None,
        regularization: float = 1e-4,
        batch_size: int = 2048,
        max_epochs: int = 1000,
        patience: int = 20,
        random_state=None,
        verbose: bool = False,
        optimizer: str = "adam",
    ):
        self.embedding_size = embedding_size
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose
        self.optimizer = optimizer

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_choice(self.optimizer, "optimizer", owner, tuple(DEFAULT_LEARNING_RATES))
        if self.learning_rate is not None:
            try:
                check_float(self.learning_rate, "learning_rate", owner, low=0.0, closed="neither")
            except ValueError:
                raise ValueError(f"The 'learning_rate' parameter of {owner} must be a float in the range (0, inf) "
                                 f"or None. Got {self.learning_rate!r} instead.") from None
        check_training_params(self, learning_rate=self._learning_rate())

    def _learning_rate(self) -> float:
        """``learning_rate``, or the optimizer's default when it is None."""
        return DEFAULT_LEARNING_RATES[self.optimizer] if self.learning_rate is None else self.learning_rate

    @single_blas_thread
    def fit(self, interactions, img_feats=None, txt_feats=None, *, valid=None):
        """Fit on a user-item matrix; features are ignored (collaborative model).

        Parameters
        ----------
        interactions : scipy.sparse matrix of shape (n_users, n_items)
            Training interactions (any non-zero counts once).
        img_feats, txt_feats : ignored
            Accepted so every lgrec estimator shares one signature.
        valid : scipy.sparse matrix of shape (n_users, n_items), optional
            Validation interactions for early stopping.

        Returns
        -------
        self
        """
        self._check_params()
        train_matrix, valid = check_fit_data(interactions, valid, self.embedding_size)
        rng = check_random_state(self.random_state)
        n_users, n_items = train_matrix.shape
        objective = MFObjective(
            xavier_normal(rng, n_users, self.embedding_size),
            xavier_normal(rng, n_items, self.embedding_size),
            self.regularization,
        )
        self._train(objective, train_matrix, valid, rng, learning_rate=self._learning_rate(), optimizer=self.optimizer)
        self.user_factors_, self.item_factors_ = objective.params["user"], objective.params["item"]
        return self
