r"""FREEDOM: a frozen item-item graph and a denoised user-item graph (Zhou & Shen, MM 2023).

With layer-0 ID embeddings :math:`E^{(0)} = [E_u; E_i]`, the frozen modality
graph :math:`S` of :func:`lgrec.knn.modality_graph` and, during training, a
user-item graph :math:`\hat A_t` rebuilt every epoch from a degree-sensitive
sample of the training edges (the full :math:`\hat A` at inference):

.. math::

    [U; I] = \frac{1}{L+1}\sum_{l=0}^{L} \hat A_t^{\,l} E^{(0)}, \qquad
    H = S^{M} E_i, \qquad
    \hat y_{ui} = u_u^\top (i_i + h_i),

    \mathcal L = \mathrm{BPR}(u, i + h) + \lambda \sum_{m \in \{\mathrm{img}, \mathrm{txt}\}}
        \mathrm{BPR}\bigl(u, X_m W_m + b_m\bigr)
        + \frac{\mu}{2B}\sum_b \bigl(\lVert e^{(0)}_{u_b}\rVert^2 + \lVert e^{(0)}_{i_b}\rVert^2
        + \lVert e^{(0)}_{j_b}\rVert^2\bigr),

with :math:`\lambda` = ``modality_weight`` (MMRec's ``reg_weight``) and
:math:`\mu` = ``regularization`` (0 by default: MMRec's FREEDOM has no
embedding L2). Edge pruning keeps :math:`\lfloor (1 - p)\,|E| \rfloor` edges
sampled without replacement with probability proportional to
:math:`1/\sqrt{d_u d_i}` (so edges between popular nodes go first), then
renormalises the kept graph. Everything is linear in the parameters, so the
gradients are written by hand: propagation is self-adjoint (its backward is
the same call) and the modality graph's backward multiplies by :math:`S^\top`.

The raw features stay fixed (MMRec also trains them as free embeddings; here
only the projections :math:`W_m, b_m` learn, which keeps an epoch's cost
independent of the feature dimension times the catalogue size).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_features, check_float, check_int, check_random_state
from ..graph import BipartiteGraph, normalized_adjacency
from ..knn import modality_graph
from ..losses import bpr_backward, bpr_forward
from ..objective import GraphObjective
from ..persistence import Value
from ._base import (
    EMBEDDING_STATE, GRAPH_FOLD_IN_STATE, TRAINED_STATE, Recommender, check_fit_data, check_training_params,
    single_blas_thread, xavier_uniform,
)
from .vbpr import ItemFeatures

__all__ = ["FREEDOM", "FreedomObjective", "prune_edges"]


def prune_edges(train: sp.csr_matrix, weights: np.ndarray, dropout: float, rng: np.random.Generator) -> sp.csr_matrix:
    """Degree-sensitive edge sample of a training matrix.

    Keeps ``max(1, floor((1 - dropout) * nnz))`` edges drawn without
    replacement with probability proportional to ``weights`` (the
    Efraimidis-Spirakis keys :math:`-\\log(U)/w`: the smallest keys win, which
    has the distribution of successive weighted draws without replacement,
    like ``torch.multinomial(..., replacement=False)``).

    Parameters
    ----------
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Canonical binary matrix.
    weights : ndarray of shape (nnz,)
        Positive weight of each stored edge, in CSR order.
    dropout : float
        Fraction of edges to drop, in [0, 1).
    rng : numpy.random.Generator

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_users, n_items), float32
        Binary matrix of the kept edges (sorted indices).
    """
    nnz = train.nnz
    n_keep = max(1, int(nnz * (1.0 - dropout)))
    if n_keep >= nnz:
        return train
    keys = rng.exponential(size=nnz) / weights
    keep = np.sort(np.argpartition(keys, n_keep - 1)[:n_keep])
    rows = np.repeat(np.arange(train.shape[0], dtype=np.int32), np.diff(train.indptr))[keep]
    indptr = np.zeros(train.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=train.shape[0]), out=indptr[1:])
    pruned = sp.csr_matrix((np.ones(n_keep, np.float32), train.indices[keep], indptr), shape=train.shape)
    pruned.has_sorted_indices = True
    return pruned


class FreedomObjective(GraphObjective):
    """BPR objective of FREEDOM: the graph batch step with an item-item term and modality BPR.

    Hooks of :class:`lgrec.objective.GraphObjective`: the batch's user-item
    graph is the epoch's pruned one (:meth:`start_epoch`, :meth:`training_graph`),
    :meth:`final_items` adds :math:`S^M E_i` and :meth:`extra_loss` the modality
    BPR terms; layer 0 is the ID tables.

    Parameters
    ----------
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Canonical binary training matrix (the full user-item graph).
    item_graph : scipy.sparse.csr_matrix of shape (n_items, n_items)
        Frozen modality graph :math:`S`.
    user, item : ndarray of shape (n_users, d) / (n_items, d)
        Layer-0 ID embeddings.
    features : dict of str to ndarray of shape (n_items, d_m)
        ``"image"`` and/or ``"text"``.
    projections : dict of str to tuple (ndarray (d_m, d), ndarray (d,))
        :math:`(W_m, b_m)` keyed like ``features``.
    n_layers : int
        User-item propagation layers :math:`L`.
    n_mm_layers : int
        Modality-graph layers :math:`M`.
    dropout : float
        Fraction of training edges pruned each epoch (0 keeps the full graph).
    modality_weight : float
        :math:`\\lambda`.
    regularization : float
        :math:`\\mu`.

    Notes
    -----
    Parameter names: ``"user"``, ``"item"``, ``"{m}_proj"``, ``"{m}_bias"``.
    The state the loop passes between batches is the epoch's pruned graph
    (None: the full graph).
    """

    def __init__(self, train: sp.csr_matrix, item_graph: sp.csr_matrix, user, item, features: dict,
                 projections: dict, n_layers: int, n_mm_layers: int, dropout: float,
                 modality_weight: float, regularization: float):
        dtype = user.dtype
        super().__init__(normalized_adjacency(train, dtype=dtype), user, item, n_layers, regularization)
        self.train = train
        self.item_graph = sp.csr_matrix(item_graph, dtype=dtype)
        self.item_graph_t = self.item_graph.T.tocsr()
        self.features = ItemFeatures(features)
        self.modalities = tuple(features)
        self.n_mm_layers = n_mm_layers
        self.dropout = dropout
        self.modality_weight = modality_weight
        self.edge_weights = self.graph.r_norm.data.astype(np.float64)
        for m, (w, b) in projections.items():
            self.params[f"{m}_proj"] = w
            self.params[f"{m}_bias"] = b

    def start_epoch(self, rng: np.random.Generator, state) -> BipartiteGraph | None:
        """The pruned user-item graph of this epoch's batches (None: no pruning)."""
        if self.dropout == 0.0:
            return None
        pruned = prune_edges(self.train, self.edge_weights, self.dropout, rng)
        return normalized_adjacency(pruned, dtype=self.params["user"].dtype, threaded=self.graph.threaded)

    def training_graph(self, state) -> BipartiteGraph:
        return self.graph if state is None else state

    def _item_graph_rows(self, items: np.ndarray) -> sp.csr_matrix:
        return self.item_graph if items.shape[0] == self.item_graph.shape[0] else self.item_graph[items]

    def final_items(self, items, propagated, items0, context):
        """Adds rows ``items`` of :math:`S^M E_i` (``E_i`` = ``items0``, the ID table)."""
        if self.n_mm_layers == 0:
            propagated += items0[items]
            return propagated
        smoothed = items0
        for _ in range(self.n_mm_layers - 1):
            smoothed = self.item_graph @ smoothed
        propagated += self._item_graph_rows(items) @ smoothed
        return propagated

    def final_items_adjoint(self, items, grad, d_items0, items0, context):
        """Adds :math:`(S^\\top)^M` of ``grad`` placed at ``items``."""
        if self.n_mm_layers == 0:
            d_items0[items] += grad
            return d_items0, None
        back = self._item_graph_rows(items).T @ grad
        for _ in range(self.n_mm_layers - 1):
            back = self.item_graph_t @ back
        d_items0 += back
        return d_items0, None

    def _projected(self, m: str, rows: np.ndarray, selected: np.ndarray, x: np.ndarray) -> np.ndarray:
        """:math:`X_m W_m + b_m` for ``rows``; ``x`` holds the feature rows of the ``selected`` ones."""
        bias = self.params[f"{m}_bias"]
        out = np.empty((rows.shape[0], bias.shape[0]), dtype=bias.dtype)
        out[...] = bias
        if x.shape[0]:
            out[selected] += x @ self.params[f"{m}_proj"]
        return out

    def extra_loss(self, users, pos, neg, rows, e_u, d_u, context):
        """:math:`\\lambda \\sum_m \\mathrm{BPR}(u, X_m W_m + b_m)` and the projections' gradients.

        The projections are computed once per distinct item of the batch
        (``rows.items``) and gathered for the triplets; their gradient is summed
        per distinct item before it meets the features.
        """
        batch = users.shape[0]
        lam = self.modality_weight
        distinct = rows.items
        selected, gathered = self.features.lookup(distinct, e_u.dtype)
        loss, grads = 0.0, {}
        for m in self.modalities:
            x = gathered[m]
            proj = self._projected(m, distinct, selected, x)[rows.item_index]
            m_loss, m_cache = bpr_forward(e_u, proj[:batch], proj[batch:])
            m_du, m_di, m_dj = bpr_backward(m_cache)
            loss += lam * m_loss
            d_u += lam * m_du
            d_proj = rows.sum_by_item(lam * np.concatenate([m_di, m_dj]))
            grads[f"{m}_proj"] = x.T @ d_proj[selected]
            grads[f"{m}_bias"] = d_proj.sum(axis=0)
        return loss, grads


class FREEDOM(Recommender):
    """FREEDOM: LightGCN on a pruned user-item graph plus ID embeddings smoothed on a frozen kNN item graph.

    Defaults follow MMRec's FREEDOM configuration (embedding 64, kNN ``k=10``,
    image weight 0.1, one modality-graph layer, two user-item layers, batch
    2048, Adam lr 1e-3, early stopping on validation Recall@20 with patience
    20); ``dropout`` and ``modality_weight`` are MMRec's searched
    hyperparameters (grids {0.8, 0.9} and {0, 1e-5, 1e-4, 1e-3}).

    Parameters
    ----------
    embedding_size : int, default=64
        Size of ID embeddings and of the modality projections.
    n_layers : int, default=2
        User-item propagation layers (MMRec's ``n_ui_layers``).
    n_mm_layers : int, default=1
        Item-item propagation layers on the modality graph.
    n_neighbors : int, default=10
        Neighbours per item in each modality's kNN graph (MMRec's ``knn_k``).
    image_weight : float, default=0.1
        Weight of the image graph in the mix (``mm_image_weight``).
    dropout : float, default=0.8
        Fraction of training edges pruned each epoch (degree-sensitive), in [0, 1).
    modality_weight : float, default=1e-4
        Weight :math:`\\lambda` of the modality BPR terms (MMRec's ``reg_weight``).
    learning_rate : float, default=1e-3
    regularization : float, default=0.0
        L2 weight on the batch's layer-0 ID rows (MMRec uses none).
    batch_size : int, default=2048
    max_epochs : int, default=1000
    patience : int, default=20
    random_state : None, int or numpy.random.Generator, default=None
    verbose : bool, default=False

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, embedding_size), float32
        Users propagated on the full graph.
    item_factors_ : ndarray of shape (n_items, embedding_size), float32
        Items propagated on the full graph plus their modality-graph smoothing :math:`i + h`.
    user_embeddings_, item_embeddings_ : ndarray, float32
        Layer-0 ID embeddings.
    item_graph_nnz_ : int
        Stored entries of the frozen modality graph (the graph itself is not kept:
        scoring needs only the factors).
    history_ : list of dict
    best_epoch_ : int
    batch_size_ : int
        Triplets per optimiser step of the fit (``batch_size`` resolved).

    Notes
    -----
    New users (:meth:`recommend_new`): as :class:`lgrec.LightGCN` (the user's row of the
    normalised user-item adjacency through the trained item layers, plus a layer-0 user
    embedding fitted by BPR steps with the items fixed); the item-item graph term only changes
    the items, which stay as trained.

    References
    ----------
    .. [1] X. Zhou, Z. Shen. "A Tale of Two Graphs: Freezing and Denoising Graph Structures
       for Multimodal Recommendation." ACM Multimedia 2023.
    """

    requires_features = True
    uses_features = True

    graph_fold_in = True

    def __init__(
        self,
        embedding_size: int = 64,
        n_layers: int = 2,
        n_mm_layers: int = 1,
        n_neighbors: int = 10,
        image_weight: float = 0.1,
        dropout: float = 0.8,
        modality_weight: float = 1e-4,
        learning_rate: float = 1e-3,
        regularization: float = 0.0,
        batch_size: int = 2048,
        max_epochs: int = 1000,
        patience: int = 20,
        random_state=None,
        verbose: bool = False,
    ):
        self.embedding_size = embedding_size
        self.n_layers = n_layers
        self.n_mm_layers = n_mm_layers
        self.n_neighbors = n_neighbors
        self.image_weight = image_weight
        self.dropout = dropout
        self.modality_weight = modality_weight
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    _saved_state = {**Recommender._saved_state, **TRAINED_STATE, **EMBEDDING_STATE, **GRAPH_FOLD_IN_STATE,
                    "item_graph_nnz_": Value("count")}

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_training_params(self)
        check_int(self.n_layers, "n_layers", owner, low=1)
        check_int(self.n_mm_layers, "n_mm_layers", owner, low=0)
        check_int(self.n_neighbors, "n_neighbors", owner, low=1)
        check_float(self.image_weight, "image_weight", owner, low=0.0, high=1.0)
        check_float(self.dropout, "dropout", owner, low=0.0, high=1.0, closed="left")
        check_float(self.modality_weight, "modality_weight", owner, low=0.0)

    @single_blas_thread
    def fit(self, interactions, img_feats=None, txt_feats=None, *, valid=None):
        """Fit on a user-item matrix and item features.

        Parameters
        ----------
        interactions : scipy.sparse matrix of shape (n_users, n_items)
        img_feats : ndarray of shape (n_items, d_img), optional
        txt_feats : ndarray of shape (n_items, d_txt), optional
            At least one is required; all-zero rows mark items without that modality.
        valid : scipy.sparse matrix of shape (n_users, n_items), optional
            Validation interactions for early stopping.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When both feature arguments are None (use LightGCN without features).
        """
        owner = type(self).__name__
        self._check_params()
        train_matrix, valid = check_fit_data(interactions, valid, self.embedding_size)
        n_users, n_items = train_matrix.shape
        given = {"image": check_features(img_feats, "img_feats", n_items),
                 "text": check_features(txt_feats, "txt_feats", n_items)}
        features = {m: f for m, f in given.items() if f is not None}
        if not features:
            raise ValueError(f"{owner} needs item features: img_feats and txt_feats are both None "
                             "(LightGCN is its collaborative core without them).")
        rng = check_random_state(self.random_state)
        item_graph = modality_graph(given["image"], given["text"], self.n_neighbors, self.image_weight)
        d = self.embedding_size
        user = xavier_uniform(rng, n_users, d)
        item = xavier_uniform(rng, n_items, d)
        projections = {}
        for m, f in features.items():
            bound = 1.0 / np.sqrt(f.shape[1])  # PyTorch's nn.Linear default initialisation
            projections[m] = (rng.uniform(-bound, bound, (f.shape[1], d)).astype(np.float32),
                              rng.uniform(-bound, bound, d).astype(np.float32))
        objective = FreedomObjective(
            train_matrix, item_graph, user, item, features, projections, self.n_layers,
            self.n_mm_layers, self.dropout, self.modality_weight, self.regularization,
        )
        self._train(objective, train_matrix, valid, rng)
        self.user_embeddings_ = objective.params["user"]
        self.item_embeddings_ = objective.params["item"]
        self.user_factors_, self.item_factors_ = objective.factors()
        self._set_graph_fold_in(objective)
        self.item_graph_nnz_ = int(item_graph.nnz)
        return self
