r"""LightGCN: linear propagation of ID embeddings over the user-item graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. With layer-0 embeddings :math:`E^{(0)}` (users
then items) and the normalised adjacency :math:`\hat A` of :mod:`lgrec.graph`,

.. math::

    E = \frac{1}{L+1}\sum_{l=0}^{L} \hat A^{l} E^{(0)}, \qquad
    \hat y_{ui} = e_u^\top e_i,

trained with BPR on :math:`E` and L2 on the batch's rows of :math:`E^{(0)}`: exactly the batch step
of :class:`lgrec.objective.GraphObjective` without any hook overridden.
"""

from __future__ import annotations

from .._validation import check_int, check_random_state
from ..graph import normalized_adjacency
from ..objective import GraphObjective
from ._base import (
    EMBEDDING_STATE, GRAPH_FOLD_IN_STATE, TRAINED_STATE, Recommender, check_fit_data, check_training_params,
    single_blas_thread, xavier_uniform,
)

__all__ = ["LightGCN"]


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
    batch_size_ : int
        Triplets per optimiser step of the fit (``batch_size`` resolved).
    item_layers_ : ndarray of shape (n_layers, n_items, embedding_size), float32
        Item embeddings of layers 0 .. n_layers-1 on the training graph, and
    item_degree_ : ndarray of shape (n_items,), int64
        training interactions per item, and
    layer_weights_ : ndarray of shape (n_layers + 1,), float32
        the layer weights: what :meth:`recommend_new` folds a new user in with.

    Notes
    -----
    New users (:meth:`recommend_new`): the user's row of the normalised adjacency of the
    training graph plus that user, propagated through the trained item layers
    (:func:`lgrec.models._foldin.graph_fold_in`), plus a layer-0 user embedding fitted by
    ``fold_in_steps`` BPR steps on the user's items with every item embedding fixed.

    References
    ----------
    .. [1] X. He, K. Deng, X. Wang, Y. Li, Y. Zhang, M. Wang. "LightGCN: Simplifying and
       Powering Graph Convolution Network for Recommendation." SIGIR 2020.
    """

    graph_fold_in = True

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

    _saved_state = {**Recommender._saved_state, **TRAINED_STATE, **EMBEDDING_STATE, **GRAPH_FOLD_IN_STATE}

    def _check_params(self) -> None:
        check_training_params(self)
        check_int(self.n_layers, "n_layers", type(self).__name__, low=1)

    @single_blas_thread
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
        self._check_params()
        train_matrix, valid = check_fit_data(interactions, valid, self.embedding_size)
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
        self._set_graph_fold_in(objective)
        return self
