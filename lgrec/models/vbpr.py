r"""VBPR: visual (here: image and text) Bayesian personalised ranking.

He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016, in MMRec's form: the user vector has an ID part and a
content part, the item vector is its ID embedding next to a linear projection
of its concatenated features,

.. math::

    p_u = [\gamma_u ; \theta_u], \qquad
    q_i = [\gamma_i ; E^\top f_i + c], \qquad
    \hat y_{ui} = p_u^\top q_i \;(+\; \beta_i + \beta'^\top f_i),

with :math:`f_i = [f^{\mathrm{img}}_i ; f^{\mathrm{txt}}_i]` (the projection of
the concatenation is computed as :math:`E_{\mathrm{img}}^\top f^{\mathrm{img}}_i
+ E_{\mathrm{txt}}^\top f^{\mathrm{txt}}_i`, so the concatenated matrix is never
built). The bracketed bias terms of the original paper are optional
(``item_bias=True``); MMRec leaves them out. Trained with BPR and
:math:`\frac{\lambda}{2B}\sum_b (\lVert p_{u_b}\rVert^2 + \lVert q_{i_b}\rVert^2 +
\lVert q_{j_b}\rVert^2)` (the item vectors regularised whole, content part and
bias included, as MMRec does). An item without features has
:math:`q_i = [\gamma_i ; c]`.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_bool, check_features, check_random_state
from ..kernels import accumulate_rows
from ..losses import bpr_backward, bpr_forward, l2_backward, l2_forward
from ..objective import Objective
from ..optim import RowGrad, row_grad
from ..scoring import FactorScorer
from ..persistence import Array
from ._base import (
    TRAINED_STATE, Recommender, check_fit_data, check_training_params, single_blas_thread, xavier_normal, xavier_uniform,
)

__all__ = ["ItemFeatures", "VBPR", "VBPRObjective"]


class ItemFeatures:
    """Item features of one or more modalities, held only for the items that have any.

    Projections of all-zero rows are known without computing them (they are
    the bias), so a batch multiplies only the rows of items with features:
    on H&M, where three quarters of the catalogue has no features, that is a
    fourfold saving on the largest matrix products.

    Parameters
    ----------
    features : dict of str to ndarray of shape (n_items, d_m)
        Any float dtype; all-zero rows mark items without that modality.

    Attributes
    ----------
    items : ndarray of shape (n_with,), int64
        Items with at least one non-zero feature row.
    position : ndarray of shape (n_items,), int64
        Row of each item in the compact arrays, -1 for items without features.
    values : dict of str to ndarray of shape (n_with, d_m)
        Compact features (the caller's arrays, uncopied, when every item has features).
    """

    def __init__(self, features: dict):
        n_items = next(iter(features.values())).shape[0]
        has = np.zeros(n_items, dtype=bool)
        for f in features.values():
            for start in range(0, n_items, 65536):
                has[start : start + 65536] |= np.any(f[start : start + 65536] != 0, axis=1)
        self.items = np.flatnonzero(has)
        self.position = np.full(n_items, -1, dtype=np.int64)
        self.position[self.items] = np.arange(self.items.shape[0])
        every = self.items.shape[0] == n_items
        self.values = {m: f if every else f[self.items] for m, f in features.items()}

    def lookup(self, rows: np.ndarray, dtype) -> tuple[np.ndarray, dict]:
        """Which of ``rows`` have features and their feature rows.

        Returns
        -------
        selected : ndarray of shape (r,), bool
        gathered : dict of str to ndarray of shape (n_selected, d_m), ``dtype``
        """
        index = self.position[rows]
        selected = index >= 0
        index = index[selected]
        return selected, {m: np.asarray(v[index], dtype=dtype) for m, v in self.values.items()}


class VBPRObjective(Objective):
    """BPR objective of VBPR with hand-written gradients.

    Parameters
    ----------
    user : ndarray of shape (n_users, 2 d)
        :math:`[\\gamma_u ; \\theta_u]`.
    item : ndarray of shape (n_items, d)
        :math:`\\gamma_i`.
    features : dict of str to ndarray of shape (n_items, d_m)
        ``"image"`` and/or ``"text"`` features (any float dtype; gathered
        rows are cast to the parameters' dtype).
    projections : dict of str to ndarray of shape (d_m, d)
        :math:`E_m`, keyed like ``features``.
    proj_bias : ndarray of shape (d,)
        :math:`c`.
    regularization : float
        :math:`\\lambda`.
    item_bias : ndarray of shape (n_items, 1), optional
        :math:`\\beta_i`; with it, ``feature_bias`` must be given too.
    feature_bias : dict of str to ndarray of shape (d_m,), optional
        :math:`\\beta'`, keyed like ``features``.

    Notes
    -----
    Parameter names: ``"user"``, ``"item"``, ``"proj_bias"``,
    ``"{m}_proj"`` and (with biases) ``"item_bias"``, ``"{m}_bias"``.
    """

    def __init__(self, user, item, features: dict, projections: dict, proj_bias, regularization: float,
                 item_bias=None, feature_bias: dict | None = None):
        self.features = ItemFeatures(features)
        self.regularization = regularization
        self.use_bias = item_bias is not None
        self.params = {"user": user, "item": item, "proj_bias": proj_bias}
        for m, w in projections.items():
            self.params[f"{m}_proj"] = w
        if self.use_bias:
            self.params["item_bias"] = item_bias
            for m, w in feature_bias.items():
                self.params[f"{m}_bias"] = w

    def item_vectors(self, rows: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Item vectors :math:`q_i` (with the bias as a last column when used) of shape (r, 2d[+1]).

        Also returns ``(selected, gathered)`` from :meth:`ItemFeatures.lookup` for the backward pass.
        Every listed row is projected, so list each item once (as :meth:`loss_and_grads` does).
        """
        p = self.params
        item = p["item"]
        selected, gathered = self.features.lookup(rows, item.dtype)
        content = np.empty((rows.shape[0], item.shape[1]), dtype=item.dtype)
        content[...] = p["proj_bias"]
        if selected.any():
            content[selected] += sum(f @ p[f"{m}_proj"] for m, f in gathered.items())
        parts = [item[rows], content]
        if self.use_bias:
            bias = p["item_bias"][rows].copy()
            if selected.any():
                bias[selected, 0] += sum(f @ p[f"{m}_bias"] for m, f in gathered.items())
            parts.append(bias)
        return np.concatenate(parts, axis=1), (selected, gathered)

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        """User vectors :math:`p_u` (with a constant 1 column when biases are used)."""
        user = self.params["user"][users]
        if self.use_bias:
            user = np.concatenate([user, np.ones((user.shape[0], 1), dtype=user.dtype)], axis=1)
        return user

    def loss_and_grads(self, users, pos, neg, state=None):
        """BPR + L2 loss of a batch; row-sparse gradients for the tables, dense for projections (no state).

        Each distinct item of the batch is projected once, and its samples' gradients are summed
        before the projections' gradient is taken: on ML-1M a batch of 11,269 triplets names
        fewer than 3,260 distinct items instead of 22,538 rows.
        """
        p = self.params
        d = p["item"].shape[1]
        batch = users.shape[0]
        items, inverse = np.unique(np.concatenate([pos, neg]), return_inverse=True)
        inverse = inverse.astype(np.int64, copy=False)
        e_u = self.user_vectors(users)
        q_items, (selected, gathered) = self.item_vectors(items)
        q = q_items[inverse]
        q_pos, q_neg = q[:batch], q[batch:]
        loss, cache = bpr_forward(e_u, q_pos, q_neg)
        d_u, d_pos, d_neg = bpr_backward(cache)
        d_q = np.concatenate([d_pos, d_neg])
        reg = self.regularization
        ego_u = p["user"][users]
        loss += l2_forward(reg, batch, ego_u, q)
        d_u = d_u[:, : 2 * d] + l2_backward(reg, batch, ego_u)
        d_q += l2_backward(reg, batch, q)
        d_items = accumulate_rows(inverse, d_q, items.shape[0])  # per distinct item, samples in batch order
        d_content = d_items[:, d : 2 * d]
        grads = {
            "user": row_grad(users, d_u),
            "item": RowGrad(items, np.ascontiguousarray(d_items[:, :d])),
            "proj_bias": d_content.sum(axis=0),
        }
        d_content_selected = d_content[selected]
        for m, f in gathered.items():
            grads[f"{m}_proj"] = f.T @ d_content_selected
        if self.use_bias:
            d_bias = np.ascontiguousarray(d_items[:, 2 * d :])
            grads["item_bias"] = RowGrad(items, d_bias)
            d_bias_selected = np.ascontiguousarray(d_bias[selected, 0])
            for m, f in gathered.items():
                grads[f"{m}_bias"] = f.T @ d_bias_selected
        return loss, grads, state

    def scorer(self) -> FactorScorer:
        return FactorScorer(*self.factors())

    def factors(self, block_rows: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """User factors (n_users, 2d[+1]) and item factors (n_items, 2d[+1]) whose dot product is the score."""
        n_items = self.params["item"].shape[0]
        items = np.concatenate(
            [self.item_vectors(np.arange(s, min(s + block_rows, n_items)))[0] for s in range(0, n_items, block_rows)]
        )
        return self.user_vectors(np.arange(self.params["user"].shape[0])), items


class VBPR(Recommender):
    """VBPR: BPR matrix factorisation with a content part projected from image and text features.

    Defaults follow MMRec's VBPR (embedding 64 for each of the ID and content
    parts, batch 2048, Adam lr 1e-3, Glorot initialisation, early stopping on
    validation Recall@20 with patience 20, no bias terms). Features are used
    as given; standardise or L2-normalise them when their scales differ a lot.

    Parameters
    ----------
    embedding_size : int, default=64
        Size ``d`` of the ID part and of the content part; user and item
        vectors have ``2 d`` entries.
    item_bias : bool, default=False
        Add He & McAuley's item bias :math:`\\beta_i` and feature bias
        :math:`\\beta'^\\top f_i` to the score (as an extra factor column).
    learning_rate : float, default=1e-3
    regularization : float, default=1e-4
        L2 weight on the batch's user and item vectors.
    batch_size : int, default=2048
    max_epochs : int, default=1000
    patience : int, default=20
    random_state : None, int or numpy.random.Generator, default=None
    verbose : bool, default=False

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, 2 embedding_size [+ 1]), float32
        :math:`[\\gamma_u ; \\theta_u]` (and a column of ones with ``item_bias``).
    item_factors_ : ndarray of shape (n_items, 2 embedding_size [+ 1]), float32
        :math:`[\\gamma_i ; E^\\top f_i + c]` (and :math:`\\beta_i + \\beta'^\\top f_i`).
    projection_ : ndarray of shape (d_img + d_txt, embedding_size), float32
        :math:`E`, image rows first.
    history_ : list of dict
    best_epoch_ : int
    batch_size_ : int
        Triplets per optimiser step of the fit (``batch_size`` resolved).

    Notes
    -----
    New users (:meth:`recommend_new`): :math:`[\\gamma_u; \\theta_u]` is fitted by
    ``fold_in_steps`` (10) BPR steps on the user's items with every item vector (ID and projected
    content) fixed; with ``item_bias`` the bias column stays 1.

    References
    ----------
    .. [1] R. He, J. McAuley. "VBPR: Visual Bayesian Personalized Ranking from Implicit
       Feedback." AAAI 2016.
    .. [2] X. Zhou et al. "A Comprehensive Survey on Multimodal Recommender Systems:
       Taxonomy, Evaluation, and Future Directions" (MMRec), 2023.
    """

    requires_features = True
    uses_features = True
    #: BPR steps of the new-user fold-in: 10 was best on the held-out ML-1M users' validation items
    #: (0, 10, 50, 200 tried; more steps overfit the 2d-dimensional user vector).
    fold_in_steps = 10

    def __init__(
        self,
        embedding_size: int = 64,
        item_bias: bool = False,
        learning_rate: float = 1e-3,
        regularization: float = 1e-4,
        batch_size: int = 2048,
        max_epochs: int = 1000,
        patience: int = 20,
        random_state=None,
        verbose: bool = False,
    ):
        self.embedding_size = embedding_size
        self.item_bias = item_bias
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    _saved_state = {**Recommender._saved_state, **TRAINED_STATE, "projection_": Array(("D", "E"))}

    def _check_params(self) -> None:
        check_training_params(self)
        check_bool(self.item_bias, "item_bias", type(self).__name__)

    @single_blas_thread
    def fit(self, interactions, img_feats=None, txt_feats=None, *, valid=None):
        """Fit on a user-item matrix and item features.

        Parameters
        ----------
        interactions : scipy.sparse matrix of shape (n_users, n_items)
        img_feats : ndarray of shape (n_items, d_img), optional
        txt_feats : ndarray of shape (n_items, d_txt), optional
            At least one of the two is required; all-zero rows mark items
            without that modality.
        valid : scipy.sparse matrix of shape (n_users, n_items), optional
            Validation interactions for early stopping.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When both feature arguments are None (use BPRMF without features).
        """
        owner = type(self).__name__
        self._check_params()
        train_matrix, valid = check_fit_data(interactions, valid, 2 * self.embedding_size)
        n_users, n_items = train_matrix.shape
        given = {"image": check_features(img_feats, "img_feats", n_items),
                 "text": check_features(txt_feats, "txt_feats", n_items)}
        features = {m: f for m, f in given.items() if f is not None}
        if not features:
            raise ValueError(f"{owner} needs item features: img_feats and txt_feats are both None "
                             "(BPRMF is the same model without the content part).")
        rng = check_random_state(self.random_state)
        d = self.embedding_size
        user = xavier_uniform(rng, n_users, 2 * d)
        item = xavier_uniform(rng, n_items, d)
        projections = {m: xavier_normal(rng, f.shape[1], d) for m, f in features.items()}
        bias_args = {}
        if self.item_bias:
            bias_args = {"item_bias": np.zeros((n_items, 1), np.float32),
                         "feature_bias": {m: np.zeros(f.shape[1], np.float32) for m, f in features.items()}}
        objective = VBPRObjective(user, item, features, projections, np.zeros(d, np.float32),
                                  self.regularization, **bias_args)
        self._train(objective, train_matrix, valid, rng)
        self.user_factors_, self.item_factors_ = objective.factors()
        self.projection_ = np.concatenate([objective.params[f"{m}_proj"] for m in features])
        return self

    def _fold_in_parts(self, user_items):
        """:math:`x_u = [\\gamma_u; \\theta_u]` is fitted; with ``item_bias`` the last column is the constant 1."""
        scale, base, free = super()._fold_in_parts(user_items)
        if self.item_bias:
            base[:, -1] = 1.0
            free = np.ones(base.shape[1], dtype=bool)
            free[-1] = False
        return scale, base, free
