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
from ..graph import BipartiteGraph, normalized_adjacency, propagate
from ..losses import bpr_backward, bpr_forward, l2_backward, l2_forward
from ..optim import row_grad
from ..training import TripletSampler, train
from ._base import Recommender, check_fit_data, check_training_params, xavier_uniform

__all__ = ["GraphObjective", "LightGCN"]


class GraphObjective:
    """BPR objective of a LightGCN over a layer-0 embedding.

    The layer-0 embedding comes from :meth:`layer0` and its gradient goes to
    :meth:`layer0_grads`; this class uses one free table ``embeddings`` of
    shape (n_users + n_items, d). Subclasses (RLMultimodalRec) add item content
    to layer 0 by overriding those two methods.

    Parameters
    ----------
    graph : BipartiteGraph
    embeddings : ndarray of shape (n_users + n_items, d)
        Layer-0 ID embeddings, users first; updated in place by the optimiser.
    n_layers : int
    regularization : float
        L2 weight on the batch's layer-0 ID rows.
    """

    def __init__(self, graph: BipartiteGraph, embeddings: np.ndarray, n_layers: int, regularization: float):
        self.graph = graph
        self.n_layers = n_layers
        self.regularization = regularization
        self.params = {"embeddings": embeddings}
        self._grad_buffer = np.zeros_like(embeddings)

    def layer0(self) -> np.ndarray:
        """Layer-0 embeddings of shape (n_users + n_items, d)."""
        return self.params["embeddings"]

    def layer0_grads(self, d_layer0: np.ndarray) -> dict:
        """Parameter gradients from the gradient with respect to :meth:`layer0`."""
        return {"embeddings": d_layer0}

    def id_rows(self) -> np.ndarray:
        """The table that the L2 term regularises, indexed like layer 0."""
        return self.params["embeddings"]

    def loss_and_grads(self, users, pos, neg):
        """BPR + L2 loss of a batch; dense gradients through the propagation."""
        n_users = self.graph.n_users
        final = propagate(self.graph, self.layer0(), self.n_layers)
        nodes = np.concatenate([users, pos + n_users, neg + n_users])
        batch = users.shape[0]
        e_u, e_i, e_j = final[nodes[:batch]], final[nodes[batch : 2 * batch]], final[nodes[2 * batch :]]
        loss, cache = bpr_forward(e_u, e_i, e_j)
        d_final = row_grad(nodes, np.concatenate(bpr_backward(cache)))
        buffer = self._grad_buffer
        buffer[d_final.rows] = d_final.values
        d_layer0 = propagate(self.graph, buffer, self.n_layers)
        buffer[d_final.rows] = 0
        ego = self.id_rows()[nodes]
        loss += l2_forward(self.regularization, batch, ego)
        d_ego = row_grad(nodes, l2_backward(self.regularization, batch, ego))
        d_layer0[d_ego.rows] += d_ego.values
        return loss, self.layer0_grads(d_layer0)

    def factors(self):
        final = propagate(self.graph, self.layer0(), self.n_layers)
        return final[: self.graph.n_users], final[self.graph.n_users :]


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
    embeddings_ : ndarray of shape (n_users + n_items, embedding_size), float32
        Layer-0 embeddings, users first.
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
        embeddings = np.concatenate([
            xavier_uniform(rng, n_users, self.embedding_size),
            xavier_uniform(rng, n_items, self.embedding_size),
        ])
        objective = GraphObjective(
            normalized_adjacency(train_matrix), embeddings, self.n_layers, self.regularization
        )
        result = train(
            objective, TripletSampler(train_matrix), rng=rng, learning_rate=self.learning_rate,
            batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
            valid=valid, exclude=train_matrix, verbose=self.verbose, owner=type(self).__name__,
        )
        self.embeddings_ = embeddings
        self.user_factors_, self.item_factors_ = objective.factors()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        return self
