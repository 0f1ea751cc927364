r"""LightGCN: linear propagation of ID embeddings over the user-item graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. With layer-0 embeddings :math:`E^{(0)}` (users
then items) and the normalised adjacency :math:`\hat A` of :mod:`lgrec.graph`,

.. math::

    E = \frac{1}{L+1}\sum_{l=0}^{L} \hat A^{l} E^{(0)}, \qquad
    \hat y_{ui} = e_u^\top e_i,

trained with BPR on :math:`E` and L2 on the batch's rows of :math:`E^{(0)}`.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int, check_random_state
from ..graph import (BipartiteGraph, batch_rows, normalized_adjacency, propagate, propagate_rows,
                     propagate_rows_adjoint)
from ..losses import bpr_backward, bpr_forward, l2_backward, l2_forward
from ._base import Recommender, check_fit_data, check_training_params, xavier_uniform

__all__ = ["GraphObjective", "LightGCN"]


class GraphObjective:
    """BPR objective of a LightGCN over layer-0 user and item embeddings.

    Layer 0 comes from :meth:`layer0` and its gradient goes back through
    :meth:`layer0_grads`; here both are free ID tables ``user`` and ``item``.
    RLMultimodalRec adds item content to layer 0 by overriding those methods.

    Parameters
    ----------
    graph : BipartiteGraph
    user : ndarray of shape (n_users, d)
        Layer-0 user ID embeddings; updated in place by the optimiser.
    item : ndarray of shape (n_items, d)
        Layer-0 item ID embeddings; updated in place by the optimiser.
    n_layers : int
    regularization : float
        L2 weight on the batch's rows of the ID tables.
    """

    def __init__(self, graph: BipartiteGraph, user: np.ndarray, item: np.ndarray,
                 n_layers: int, regularization: float):
        self.graph = graph
        self.n_layers = n_layers
        self.regularization = regularization
        self.params = {"user": user, "item": item}

    def layer0(self) -> tuple[np.ndarray, np.ndarray]:
        """Layer-0 embeddings: users (n_users, d) and items (n_items, d)."""
        return self.params["user"], self.params["item"]

    def layer0_grads(self, d_users: np.ndarray, d_items: np.ndarray, batch_items: np.ndarray) -> dict:
        """Parameter gradients from the gradients with respect to :meth:`layer0`."""
        return {"user": d_users, "item": d_items}

    def loss_and_grads(self, users, pos, neg):
        """BPR + L2 loss of a batch; dense gradients through the propagation.

        Only the batch's rows of the final embeddings are computed and the
        backward pass starts from them (:func:`lgrec.graph.propagate_rows`).
        """
        batch = users.shape[0]
        items = np.concatenate([pos, neg])
        rows = batch_rows(self.graph, users, items)
        final_users, final_items = propagate_rows(self.graph, rows, *self.layer0(), self.n_layers)
        e_u, e_ij = final_users[rows.user_index], final_items[rows.item_index]
        loss, cache = bpr_forward(e_u, e_ij[:batch], e_ij[batch:])
        d_u, d_i, d_j = bpr_backward(cache)
        g_users, g_items = rows.sum_by_user(d_u), rows.sum_by_item(np.concatenate([d_i, d_j]))
        d_users, d_items = propagate_rows_adjoint(self.graph, rows, g_users, g_items, self.n_layers)
        reg = self.regularization
        ego_users, ego_items = self.params["user"][users], self.params["item"][items]
        loss += l2_forward(reg, batch, ego_users, ego_items)
        d_users[rows.users] += rows.sum_by_user(l2_backward(reg, batch, ego_users))
        d_items[rows.items] += rows.sum_by_item(l2_backward(reg, batch, ego_items))
        return loss, self.layer0_grads(d_users, d_items, rows.items)

    def factors(self):
        return propagate(self.graph, *self.layer0(), self.n_layers)


class LightGCN(Recommender):
    """LightGCN trained with BPR and Adam on CPU.

    Defaults follow MMRec's LightGCN (embedding 64, 2 layers, batch 2048, Adam
    lr 1e-3, Glorot-uniform initialisation, early stopping on validation
    Recall@20 with patience 20), with L2 weight 1e-4.

    Parameters
    ----------
    embedding_size : int, default=64
    n_layers : int, default=2
        Propagation layers; the final embedding is the mean of layers 0..L.
    learning_rate : float, default=1e-3
    regularization : float, default=1e-4
        L2 weight on the batch's layer-0 rows.
    batch_size : int, default=2048
    max_epochs : int, default=1000
    patience : int, default=20
    random_state : None, int or numpy.random.Generator, default=None
    verbose : bool, default=False

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, embedding_size), float32
        Propagated user embeddings used for scoring.
    item_factors_ : ndarray of shape (n_items, embedding_size), float32
        Propagated item embeddings used for scoring.
    user_embeddings_ : ndarray of shape (n_users, embedding_size), float32
        Layer-0 user embeddings.
    item_embeddings_ : ndarray of shape (n_items, embedding_size), float32
        Layer-0 item embeddings.
    history_ : list of dict
    best_epoch_ : int

    References
    ----------
    .. [1] X. He, K. Deng, X. Wang, Y. Li, Y. Zhang, M. Wang. "LightGCN: Simplifying and
       Powering Graph Convolution Network for Recommendation." SIGIR 2020.
    """

    def __init__(
        self,
        embedding_size: int = 64,
        n_layers: int = 2,
        learning_rate: float = 1e-3,
        regularization: float = 1e-4,
        batch_size: int = 2048,
        max_epochs: int = 1000,
        patience: int = 20,
        random_state=None,
        verbose: bool = False,
    ):
        self.embedding_size = embedding_size
        self.n_layers = n_layers
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, interactions, img_feats=None, txt_feats=None, *, valid=None):
        """Fit on a user-item matrix; features are ignored (collaborative model).

        Parameters
        ----------
        interactions : scipy.sparse matrix of shape (n_users, n_items)
        img_feats, txt_feats : ignored
        valid : scipy.sparse matrix of shape (n_users, n_items), optional
            Validation interactions for early stopping.

        Returns
        -------
        self
        """
        check_training_params(self)
        check_int(self.n_layers, "n_layers", type(self).__name__, low=1)
        train_matrix, valid = check_fit_data(interactions, valid)
        rng = check_random_state(self.random_state)
        n_users, n_items = train_matrix.shape
        objective = GraphObjective(
            normalized_adjacency(train_matrix),
            xavier_uniform(rng, n_users, self.embedding_size),
            xavier_uniform(rng, n_items, self.embedding_size),
            self.n_layers,
            self.regularization,
        )
        self._train(objective, train_matrix, valid, rng)
        self.user_embeddings_ = objective.params["user"]
        self.item_embeddings_ = objective.params["item"]
        self.user_factors_, self.item_factors_ = objective.factors()
        return self
