r"""RLMultimodalRec: gated image/text fusion on a LightGCN, trained with BPR.

After arXiv 2506.00107 ("Gated Multimodal Graph Learning for Personalized
Recommendation"). Item layer-0 embeddings are the item ID embedding plus the
gated fusion :math:`f_i` of the item's image and text features
(:mod:`lgrec.fusion`); user layer-0 embeddings are user ID embeddings; a
LightGCN (:mod:`lgrec.graph`) propagates them and the score is a dot product:

.. math::

    e^{(0)}_i = q_i + f_i, \qquad e^{(0)}_u = p_u, \qquad
    E = \frac{1}{L+1} \sum_{l=0}^{L} \hat A^l E^{(0)}, \qquad
    \hat y_{ui} = e_u^\top e_i .

That direct reading ranks items nobody bought in training badly (H&M), and
where items are warm the fused content in every item's layer 0 overfits and
loses to plain LightGCN (Amazon Sports, MovieLens-1M; ``benchmarks/README.md``
has the numbers of each step). lgrec's defaults change five things:

1. ``cold_start=True``: an item without training interactions has no edges,
   so the layer mean keeps only :math:`1/(L+1)` of its layer 0, and its ID
   embedding only ever received gradient as a sampled negative. Such items use
   :math:`e^{(0)}_i = f_i` and keep it at full weight: no ID embedding.
2. ``warm_content=False``, ``item_graph=True``: a warm item's layer 0 is its
   ID embedding alone, and content reaches it through a gated item-item term
   added to its final embedding,
   :math:`h_i = g_i \odot (\hat S_v E^{(0)})_i + (1 - g_i) \odot (\hat S_t E^{(0)})_i`,
   where :math:`\hat S_m` is the normalised ``n_neighbors``-NN graph of
   modality :math:`m` (frozen, as in FREEDOM) and :math:`g_i` the fusion gate
   of item :math:`i`, which therefore learns from the ranking loss of every
   warm item (per item, which modality's neighbours to trust). The term is
   weighted by :math:`w_i = k / (k + d_i)` (``item_graph_weight="degree"``):
   the :math:`k` content neighbours' share of an item's neighbourhood when
   :math:`d_i` users bought it, so content speaks for rarely bought items and
   steps back for items whose interactions already say what they are.
3. ``edge_dropout=0.8``: each epoch trains on a degree-sensitive sample of
   20 % of the training edges (FREEDOM's denoising); scoring uses all.
4. ``content_weight`` :math:`\lambda_c = 0.1`: content alone is trained to
   rank, with a second BPR term on :math:`e_u^\top (f_i - f_j)`, the score a
   cold item gets at inference.
5. ``memory_items="cold"``: a content-neighbour memory for cold items. A
   factor model of dimension :math:`d` sums a user's history into one vector,
   which blurs near-duplicates (colour variants of a product the user
   bought). The score of a cold item adds :math:`\alpha\, m_{ui}` with
   :math:`m_{ui} = \frac{1}{|N_u|}\sum_{j \in N_u} s_{ij}`, where :math:`s_{ij}`
   is the cosine of the raw item features when :math:`j` is among the
   :math:`k` nearest items of :math:`i` (0 otherwise); the cosine weighs the
   photo by ``image_weight`` and the text by the rest. :math:`m` is fixed;
   the embeddings are trained with it in the score, so they learn what it
   misses. Warm items are ranked without it.

Loss of a batch of triplets :math:`(u, i, j)`, with
:math:`x_{uij} = e_u^\top(e_i - e_j) + \alpha (m_{ui} - m_{uj})`:

.. math::

    \mathcal L = \frac{1}{B}\sum_b \log(1 + e^{-x_b})
        + \lambda_c \,\mathrm{BPR}(e_u, f_i, f_j)
        + \frac{\lambda}{2B} \sum_b \bigl(\lVert e^{(0)}_{u_b}\rVert^2
        + \lVert e^{(0)}_{i_b}\rVert^2 + \lVert e^{(0)}_{j_b}\rVert^2\bigr).

Every gradient is written by hand (``tests/test_rlmm.py`` checks them with
central differences).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .._base import check_is_fitted
from .._validation import (
    check_bool, check_choice, check_features, check_float, check_int, check_interactions, check_random_state,
)
from ..evaluation import evaluate
from ..fusion import FusionInputs, fusion_backward, fusion_forward, init_fusion_params, prepare_features
from ..graph import BipartiteGraph, normalized_adjacency
from ..kernels import csr_matmul_rows, csr_matmul_rows_adjoint
from ..knn import content_similarity, keep_columns, modality_graphs, neighbor_memory
from ..losses import bpr_backward, bpr_forward
from ..objective import GraphObjective
from ..persistence import Array, Value
from ..scoring import FactorScorer
from ._base import (
    EMBEDDING_STATE, GRAPH_FOLD_IN_STATE, TRAINED_STATE, Recommender, check_fit_data, check_training_params,
    single_blas_thread, xavier_uniform,
)
from .freedom import prune_edges

__all__ = ["MEMORY_WEIGHTS", "ContentWindow", "RLMMObjective", "RLMultimodalRec", "fit", "gate_summary",
           "item_graph_weights"]

MEMORY_WEIGHTS = (0.0, 1.0, 3.0, 10.0, 30.0)
"""Memory weights :math:`\\alpha` that ``memory_weight="auto"`` chooses from on validation."""
VALID_K = 20

_FUSION_ATTRS = {"W_v": "image_weights_", "b_v": "image_bias_", "W_t": "text_weights_", "b_t": "text_bias_",
                 "W_g": "gate_weights_", "b_g": "gate_bias_"}


@dataclass(frozen=True)
class ContentWindow:
    """State of :class:`RLMMObjective` between batches: a window of batches that share one fused content.

    Attributes
    ----------
    fused : ndarray of shape (n_content, d) or None
        Fused content computed at the window's first batch (None: compute it at the next batch).
    cache : tuple or None
        Its :func:`lgrec.fusion.fusion_forward` cache (``cache[0]`` is the gate).
    d_fused : ndarray of shape (n_content, d) or None
        Gradient with respect to ``fused`` summed over the window's batches so far.
    d_gate : ndarray of shape (n_content, d) or None
        Gradient with respect to the gate through the item-item graphs, summed likewise.
    batches : int
        Batches of the window done.
    graph : BipartiteGraph or None
        The epoch's pruned user-item graph (None: the full graph).
    """

    fused: np.ndarray | None = None
    cache: tuple | None = None
    d_fused: np.ndarray | None = None
    d_gate: np.ndarray | None = None
    batches: int = 0
    graph: BipartiteGraph | None = None


def _add(total, part):
    return part if total is None else total + part


class RLMMObjective(GraphObjective):
    """BPR objective of RLMultimodalRec: the graph batch step with gated content.

    Hooks of :class:`lgrec.objective.GraphObjective`:

    - :meth:`layer0` adds the fused content to the item ID embeddings (of every
      item with ``warm_content``, else only of cold-start items, whose ID
      embedding is zero) and :meth:`layer0_backward` sends its gradient through
      the fusion once per window of ``content_refresh`` batches (the window is
      the loop's state, :class:`ContentWindow`);
    - :meth:`final_items` lets cold-start items keep their layer 0 and adds the
      gated item-item term :math:`w_i h_i`, :math:`h_i = g_i \\odot (\\hat S_v E^{(0)})_i +
      (1 - g_i) \\odot (\\hat S_t E^{(0)})_i` with the fusion's gate :math:`g_i`;
    - :meth:`extra_loss` is the content-only BPR term;
    - the content-neighbour memory is the fixed score term;
    - with ``edge_dropout``, :meth:`start_epoch` draws the epoch's pruned
      user-item graph (:func:`lgrec.models.freedom.prune_edges`) and
      :meth:`training_graph` returns it.

    Parameters
    ----------
    graph : BipartiteGraph
    user : ndarray of shape (n_users, d)
        User ID embeddings.
    item : ndarray of shape (n_items, d)
        Item ID embeddings.
    fusion : dict of str to ndarray
        Fusion parameters (:func:`lgrec.fusion.init_fusion_params`).
    inputs : FusionInputs or None
        Item features; None trains a plain LightGCN.
    n_layers : int
    regularization : float
    content_weight : float
        :math:`\\lambda_c`, weight of the content-only BPR term.
    cold_start : bool
        Items without training edges use their content only, at full weight.
    fixed_gate : float or None
        Constant gate (ablation) instead of the learned one.
    content_refresh : int
        Batches between recomputations of the fused content. The fusion
        parameters take one Adam step per window with the gradient summed
        over its batches (evaluated at the window's content); 1 is exact
        per-batch training.
    memory : scipy.sparse.csr_matrix of shape (n_users, n_items) or None
        Content-neighbour memory :math:`m` (:func:`lgrec.knn.content_memory`).
    memory_weight : float
        :math:`\\alpha`.
    gate_learning_rate : float or None
        Adam step size of the gate parameters (None: the model's learning rate).
    item_graphs : dict of str to scipy.sparse.csr_matrix of shape (n_items, n_items), optional
        :math:`\\hat S_m` per modality (:func:`lgrec.knn.modality_graphs`); None or
        empty: no item-item term.
    warm_content : bool, default=True
        Add the fused content to the layer 0 of items with training interactions too.
    train : scipy.sparse.csr_matrix of shape (n_users, n_items), optional
        Canonical binary training matrix; needed when ``edge_dropout`` > 0.
    edge_dropout : float, default=0.0
        Fraction of training edges pruned each epoch (degree-sensitive, as in FREEDOM).
    item_graph_weights : ndarray of shape (n_items,), optional
        Weight :math:`w_i` of each item's item-item term (None: 1 for every item).
    """

    def __init__(self, graph: BipartiteGraph, user, item, fusion, inputs: FusionInputs | None,
                 n_layers: int, regularization: float, content_weight: float, cold_start: bool,
                 fixed_gate: float | None = None, content_refresh: int = 1, memory=None,
                 memory_weight: float = 0.0, gate_learning_rate: float | None = None,
                 item_graphs: dict | None = None, warm_content: bool = True,
                 train: sp.csr_matrix | None = None, edge_dropout: float = 0.0,
                 item_graph_weights: np.ndarray | None = None):
        super().__init__(graph, user, item, n_layers, regularization,
                         score_terms=memory if memory_weight > 0 else None, score_weight=memory_weight)
        self.memory = memory
        if edge_dropout > 0.0 and train is None:
            raise ValueError("RLMMObjective: edge_dropout > 0 needs the training matrix (train).")
        self.train = train
        self.edge_dropout = edge_dropout
        self.edge_weights = graph.r_norm.data.astype(np.float64) if edge_dropout > 0.0 else None
        self.inputs = inputs if inputs is not None and inputs.items.size else None
        self.content_weight = content_weight if self.inputs is not None else 0.0
        self.fixed_gate = fixed_gate
        self.content_refresh = content_refresh
        if self.inputs is not None:
            self.params.update(fusion)
        gate_params = [name for name in ("W_g", "b_g") if name in self.params] if fixed_gate is None else []
        self._learning_rates = dict.fromkeys(gate_params, gate_learning_rate) if gate_learning_rate else {}
        degree = np.diff(graph.r_norm_t.indptr)
        self.is_isolated = (degree == 0) if cold_start else np.zeros(graph.n_items, dtype=bool)
        self.isolated = np.flatnonzero(self.is_isolated)
        self.content_pos = np.full(graph.n_items, -1, dtype=np.int64)
        if self.inputs is not None:
            self.content_pos[self.inputs.items] = np.arange(self.inputs.items.shape[0])
        dtype = user.dtype
        self.item_graphs = {m: sp.csr_matrix(g, dtype=dtype) for m, g in (item_graphs or {}).items()
                            if self.inputs is not None}
        self.warm_content = warm_content
        self.item_graph_weights = (None if item_graph_weights is None
                                   else np.asarray(item_graph_weights, dtype=dtype).reshape(-1, 1))
        self.content_items = None
        if self.inputs is not None:  # items whose layer 0 gets content, as positions in inputs.items
            self.content_items = (np.arange(self.inputs.items.shape[0]) if warm_content
                                  else np.flatnonzero(self.is_isolated[self.inputs.items]))

    @property
    def learning_rates(self) -> dict:
        return self._learning_rates

    def start_epoch(self, rng: np.random.Generator, state: ContentWindow | None) -> ContentWindow | None:
        """Draws the epoch's pruned user-item graph when ``edge_dropout`` > 0; the content window carries on."""
        if self.edge_dropout == 0.0:
            return state
        pruned = prune_edges(self.train, self.edge_weights, self.edge_dropout, rng)
        graph = normalized_adjacency(pruned, dtype=self.params["user"].dtype, threaded=self.graph.threaded)
        return replace(state or ContentWindow(), graph=graph)

    def training_graph(self, state: ContentWindow | None) -> BipartiteGraph:
        return self.graph if state is None or state.graph is None else state.graph

    def content(self) -> tuple[np.ndarray | None, tuple | None]:
        """Fused content of the items with features, shape (n_content, d), and the fusion cache."""
        if self.inputs is None:
            return None, None
        return fusion_forward(self.params, self.inputs, self.fixed_gate)

    def layer0(self, state: ContentWindow | None):
        """ID embeddings plus the window's fused content; cold-start items have no ID embedding."""
        fused = cache = None
        if self.inputs is not None:
            if state is None or state.fused is None:
                fused, cache = self.content()
                state = ContentWindow(fused, cache, graph=None if state is None else state.graph)
            else:
                fused, cache = state.fused, state.cache
        items = self.params["item"]
        if fused is not None or self.isolated.size:
            items = items.copy()
            items[self.isolated] = 0.0
            if fused is not None:
                at = self.content_items
                items[self.inputs.items[at]] += fused[at]
        return self.params["user"], items, (fused, cache), state

    def layer0_backward(self, d_users, d_items, rows, context, extra, state):
        """ID gradients every batch; fusion gradients summed over the window, applied at its end."""
        grads = {"user": d_users, "item": d_items}
        fused, cache = context
        extra = extra or {}
        if fused is not None:
            d_fused = np.zeros_like(fused)
            at = self.content_items
            d_fused[at] = d_items[self.inputs.items[at]]  # taken before the cold-start mask below
            if "content" in extra:
                pos = self.content_pos[rows.items]
                d_fused[pos[pos >= 0]] += extra["content"][pos >= 0]  # items without features have no content
            d_fused, d_gate = _add(state.d_fused, d_fused), state.d_gate
            if "gate" in extra:
                d_gate = _add(d_gate, extra["gate"])
            if state.batches + 1 == self.content_refresh:
                grads.update(fusion_backward(d_fused, self.params, self.inputs, cache, d_gate))
                state = ContentWindow(graph=state.graph)
            else:
                state = ContentWindow(fused, cache, d_fused, d_gate, state.batches + 1, state.graph)
        d_items[self.isolated] = 0.0  # cold-start items have no ID embedding (no-op without cold_start)
        return grads, state

    def _gate_rows(self, items: np.ndarray, cache) -> np.ndarray:
        """The fusion gate of ``items`` (image weight per dimension); 0 for items without features."""
        gate = np.zeros((items.shape[0], self.params["user"].shape[1]), dtype=self.params["user"].dtype)
        pos = self.content_pos[items]
        found = pos >= 0
        gate[found] = cache[0][pos[found]]
        return gate

    def _graph_views(self, items: np.ndarray, items0: np.ndarray) -> dict:
        """Rows ``items`` of :math:`\\hat S_m E^{(0)}` per modality (the spmm kernel: no slicing of :math:`\\hat S_m`)."""
        return {m: csr_matmul_rows(g.indptr, g.indices, g.data, items, items0) for m, g in self.item_graphs.items()}

    def _term_weights(self, items: np.ndarray, gate: np.ndarray) -> dict:
        """Per modality, the factor of :math:`(\\hat S_m E^{(0)})_i` in the final embedding:
        :math:`w_i g_i` (image) and :math:`w_i (1 - g_i)` (text), shape (len(items), d)."""
        weights = {"image": gate, "text": 1 - gate}
        if self.item_graph_weights is not None:
            w = self.item_graph_weights[items]
            weights = {m: w * value for m, value in weights.items()}
        return weights

    def final_items(self, items, propagated, items0, context):
        """Cold-start items keep their layer 0 at full weight; every item adds its gated item-graph term."""
        isolated = self.is_isolated[items]
        propagated[isolated] = items0[items[isolated]]
        if self.item_graphs:
            views = self._graph_views(items, items0)
            weights = self._term_weights(items, self._gate_rows(items, context[1]))
            if "image" in views:
                propagated += weights["image"] * views["image"]
            if "text" in views:
                propagated += weights["text"] * views["text"]
        return propagated

    def final_items_adjoint(self, items, grad, d_items0, items0, context):
        isolated = self.is_isolated[items]
        d_items0[items[isolated]] = grad[isolated]
        if not self.item_graphs:
            return d_items0, None
        weights = self._term_weights(items, self._gate_rows(items, context[1]))
        weighted = {m: w * grad for m, w in weights.items()}
        for m, g in self.item_graphs.items():
            d_items0 += csr_matmul_rows_adjoint(g.indptr, g.indices, g.data, items, weighted[m], g.shape[1])
        if len(self.item_graphs) < 2 or self.fixed_gate is not None:
            return d_items0, None  # the gate is a constant
        views = self._graph_views(items, items0)  # recomputed rather than cached: r x k rows
        pos = self.content_pos[items]
        found = pos >= 0
        d_gate = np.zeros_like(context[0])
        if self.item_graph_weights is not None:
            grad = self.item_graph_weights[items] * grad
        d_gate[pos[found]] = (grad * (views["image"] - views["text"]))[found]
        return d_items0, {"gate": d_gate}

    def content_vectors(self, fused: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Fused content of arbitrary items (zero for items without features), shape (len(items), d)."""
        dim = self.params["user"].shape[1]
        out = np.zeros((items.shape[0], dim), dtype=self.params["user"].dtype)
        pos = self.content_pos[items]
        found = pos >= 0
        out[found] = fused[pos[found]]
        return out

    def extra_loss(self, users, pos, neg, rows, e_u, d_u, context):
        """:math:`\\lambda_c\\,\\mathrm{BPR}(e_u, f_i, f_j)`; returns the gradient of each batch item's content."""
        fused, _ = context
        if self.content_weight == 0.0 or fused is None:
            return 0.0, None
        c_loss, c_cache = bpr_forward(e_u, self.content_vectors(fused, pos), self.content_vectors(fused, neg))
        cd_u, cd_i, cd_j = bpr_backward(c_cache)
        w = self.content_weight
        d_u += w * cd_u
        return w * c_loss, {"content": rows.sum_by_item(w * np.concatenate([cd_i, cd_j]))}


class RLMultimodalRec(Recommender):
    """Gated multimodal graph recommender (RLMultimodalRec), trained with BPR and Adam on CPU.

    Each item's image and text features are projected to the embedding size
    and mixed by a learned per-item, per-dimension gate. A LightGCN propagates
    user and item embeddings over the user-item graph; items nobody
    interacted with in training start from their fused content, the others
    from their ID embedding, and every item adds the gated mix of its image
    and text kNN neighbours' embeddings. :meth:`add_items` makes new catalogue
    items recommendable without retraining; ``gate_`` / ``image_share_`` tell
    which modality drives each item; :meth:`explain` splits a score. See the
    module docstring for the model and the five changes lgrec makes to the
    paper's reading.

    With both modalities None the model is a LightGCN (exactly, with
    ``cold_start=False``, ``edge_dropout=0`` and the same ``regularization``).

    Parameters
    ----------
    embedding_size : int, default=64
    n_layers : int, default=2
        LightGCN layers (0 = no graph: matrix factorisation with content).
    learning_rate : float, default=1e-3
    regularization : float, default=0.0
        L2 weight on the batch's layer-0 rows (ID embedding + fused content).
    content_weight : float, default=0.1
        Weight of the content-only BPR term (0 = the paper's loss alone).
    n_neighbors : int, default=10
        Neighbours per item of the content-neighbour memory (0 = no memory).
    memory_weight : float or "auto", default=10.0
        :math:`\\alpha`, weight of the memory in the score. A number: the
        memory is in the score during training too, so the embeddings learn
        what it misses. ``"auto"``: training runs without the memory, then
        :math:`\\alpha` is chosen among :data:`MEMORY_WEIGHTS` by validation
        Recall@20 (ties go to the smaller weight; 0 without ``valid``), so the
        memory is used only where it ranks the held-out items better
        (``memory_weight_`` records the choice, ``memory_search_`` the scores).
    memory_items : {"all", "cold"}, default="cold"
        Items whose score gets the memory term: all, or only the items
        without training interactions (a warm item is then ranked by the
        graph alone, as LightGCN would rank it).
    image_weight : float in [0, 1], default=0.25
        Weight of the photo cosine in the memory's item similarity (the text
        gets the rest; 0.5 = both equal). 0.25 was chosen on the H&M validation
        split among {0, 0.1, 0.25, 0.5} (``benchmarks/README.md``).
    cold_start : bool, default=True
        Items without training interactions use their fused content at full
        weight and no ID embedding (False = the direct reading of the paper).
    gate : {"learned", "average"}, default="learned"
        "average" fixes the gate at 0.5 (ablation).
    gate_learning_rate : float or None, default=None
        Adam step size of the gate's parameters; None uses ``learning_rate``.
        The gate takes one step per ``content_refresh`` batches, so with early
        stopping after a few epochs it barely leaves 0.5 at the default step
        size (``benchmarks/README.md``).
    feature_scaling : {"l2", "standard", "none"}, default="l2"
        Per-modality input scaling: L2-normalise each item's row, standardise
        each column (statistics over items that have the modality), or none.
        All-zero rows (missing modality) stay missing.
    projection_init : {"isometric", "glorot"}, default="isometric"
        Initial image and text projections: a norm-preserving random
        (Johnson-Lindenstrauss) map, so the content embeddings start as a
        faithful copy of the feature similarities at unit scale, or
        Glorot-uniform (the usual default, which starts content about 3x
        smaller than that on L2-normalised features).
    content_refresh : int, default=8
        Batches between recomputations of the fused content (the fusion
        parameters then take one Adam step per window, with the window's
        summed gradient; 1 is exact per-batch training). Projecting the
        catalogue's features is the expensive part of a step on large
        feature dimensions: on H&M a window of 8 costs a third of the epoch
        time of per-batch windows, with the same validation and test quality
        as windows of 1 and 4 (``benchmarks/README.md``).
    item_graph : bool, default=True
        Add the gated item-item term: each item's final embedding gains
        :math:`g_i \\odot (\\hat S_v E^{(0)})_i + (1 - g_i) \\odot (\\hat S_t E^{(0)})_i`,
        the layer-0 embeddings smoothed over each modality's ``n_neighbors``
        kNN graph (:func:`lgrec.knn.modality_graphs`) and mixed per item and
        dimension by the fusion gate, which then also learns from the ranking loss.
    item_graph_weight : "degree" or float, default="degree"
        Weight :math:`w_i` of item :math:`i`'s item-item term. ``"degree"``:
        :math:`w_i = k / (k + d_i)` with :math:`k` = ``n_neighbors`` and
        :math:`d_i` the item's training interactions, the content neighbours'
        share of the item's neighbourhood (its :math:`d_i` users in the
        user-item graph plus its :math:`k` content neighbours): an item
        nobody bought takes the term at full weight, a well-sold item
        mostly its own graph embedding. A float: the same weight for every
        item (1.0: the unweighted term).
    warm_content : bool, default=False
        Add the fused content to the layer 0 of items with training
        interactions (False: only cold-start items get content in layer 0).
    edge_dropout : float in [0, 1), default=0.8
        Fraction of training edges pruned each epoch, degree-sensitively as in
        FREEDOM (:func:`lgrec.models.freedom.prune_edges`); scoring uses the full graph.
    batch_size : int, default=2048
    max_epochs : int, default=1000
    patience : int, default=20
    random_state : None, int or numpy.random.Generator, default=None
    verbose : bool, default=False

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, embedding_size), float32
    item_factors_ : ndarray of shape (n_items, embedding_size), float32
        Final embeddings; the score is their dot product plus the memory term.
    item_content_factors_ : ndarray of shape (n_items, embedding_size), float32
        The part of ``item_factors_`` that comes from the fused content (the
        final embeddings of the content alone: propagation is linear), used by
        :meth:`explain`.
    user_embeddings_, item_embeddings_ : ndarray, float32
        Layer-0 ID embeddings.
    gate_ : ndarray of shape (n_items, embedding_size), float32
        Gate value per item and dimension: 1 = image only, 0 = text only;
        NaN for items without any feature.
    image_share_ : ndarray of shape (n_items,), float32
        Mean of ``gate_`` over dimensions: the share of the image in each item's content.
    cold_items_ : ndarray of shape (n_cold,), int64
        Items without training interactions (scored from content only when ``cold_start``).
    memory_data_, memory_indices_, memory_indptr_ : ndarray or None
        CSR arrays of the memory :math:`m` (n_users x n_items at fit time);
        None when the score has no memory term.
    memory_weight_ : float
        :math:`\\alpha` of the score (``memory_weight``, or the weight chosen by ``"auto"``).
    memory_search_ : dict of str to float
        With ``memory_weight="auto"`` and validation data: validation Recall@20
        of each weight tried (keys are the weights); else empty.
    similar_data_, similar_indices_, similar_indptr_ : ndarray or None
        CSR arrays of the kept item similarities :math:`s` (n_items x n_items at fit time),
        from which :meth:`recommend_new` computes a new user's memory row; None without memory.
    item_layers_, item_degree_, layer_weights_ : ndarray
        What :meth:`recommend_new` folds a new user in with (see :class:`lgrec.LightGCN`): layer-0
        items (ID embedding plus fused content) and their propagated layers.
    history_ : list of dict
    best_epoch_ : int
    batch_size_ : int
        Triplets per optimiser step of the fit (``batch_size`` resolved).

    References
    ----------
    .. [1] "Gated Multimodal Graph Learning for Personalized Recommendation", arXiv:2506.00107, 2025.
    .. [2] X. He et al. "LightGCN: Simplifying and Powering Graph Convolution Network for
       Recommendation." SIGIR 2020.
    """

    uses_features = True
    _saved_state = {
        **Recommender._saved_state, **TRAINED_STATE, **EMBEDDING_STATE, **GRAPH_FOLD_IN_STATE,
        "similar_data_": Array(("N",), optional=True),
        "similar_indices_": Array(("N",), dtype="int", optional=True, ids_of="S"),
        "similar_indptr_": Array(("S+1",), dtype="int", optional=True),
        "item_content_factors_": Array(("I", "F")),
        "cold_items_": Array(("C",), dtype="int", ids_of="I"),
        "gate_": Array(("I", "E"), finite=False),
        "image_share_": Array(("I",), finite=False),
        "image_dim_": Value("count", size_of="Dv"), "text_dim_": Value("count", size_of="Dt"),
        "image_weights_": Array(("Dv", "E"), optional=True), "image_bias_": Array(("E",), optional=True),
        "text_weights_": Array(("Dt", "E"), optional=True), "text_bias_": Array(("E",), optional=True),
        "gate_weights_": Array(("G", "E"), optional=True), "gate_bias_": Array(("E",), optional=True),
        "image_mean_": Array(("Dv",), optional=True), "image_std_": Array(("Dv",), optional=True),
        "text_mean_": Array(("Dt",), optional=True), "text_std_": Array(("Dt",), optional=True),
        "memory_data_": Array(("M",), optional=True),
        "memory_indices_": Array(("M",), dtype="int", optional=True, ids_of="I"),
        "memory_indptr_": Array(("U+1",), dtype="int", optional=True),
        "memory_weight_": Value("weight", optional=True), "memory_search_": Value("scores", optional=True),
    }
    #: The memory is one CSR matrix (users x items) saved as three arrays.
    _saved_sparse = {"memory": ("U", "I"), "similar": ("S", "S")}

    graph_fold_in = True

    def __init__(
        self,
        embedding_size: int = 64,
        n_layers: int = 2,
        learning_rate: float = 1e-3,
        regularization: float = 0.0,
        content_weight: float = 0.1,
        n_neighbors: int = 10,
        memory_weight: float = 10.0,
        memory_items: str = "cold",
        image_weight: float = 0.25,
        cold_start: bool = True,
        gate: str = "learned",
        gate_learning_rate: float | None = None,
        feature_scaling: str = "l2",
        projection_init: str = "isometric",
        content_refresh: int = 8,
        item_graph: bool = True,
        item_graph_weight="degree",
        warm_content: bool = False,
        edge_dropout: float = 0.8,
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
        self.content_weight = content_weight
        self.n_neighbors = n_neighbors
        self.memory_weight = memory_weight
        self.memory_items = memory_items
        self.image_weight = image_weight
        self.cold_start = cold_start
        self.gate = gate
        self.gate_learning_rate = gate_learning_rate
        self.feature_scaling = feature_scaling
        self.projection_init = projection_init
        self.content_refresh = content_refresh
        self.item_graph = item_graph
        self.item_graph_weight = item_graph_weight
        self.warm_content = warm_content
        self.edge_dropout = edge_dropout
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_training_params(self)
        check_int(self.n_layers, "n_layers", owner, low=0)
        check_float(self.content_weight, "content_weight", owner, low=0.0)
        check_int(self.n_neighbors, "n_neighbors", owner, low=0)
        check_float(self.memory_weight, "memory_weight", owner, low=0.0, word="auto")
        check_float(self.image_weight, "image_weight", owner, low=0.0, high=1.0)
        check_bool(self.cold_start, "cold_start", owner)
        check_choice(self.gate, "gate", owner, ("learned", "average"))
        check_choice(self.memory_items, "memory_items", owner, ("all", "cold"))
        if self.gate_learning_rate is not None:
            check_float(self.gate_learning_rate, "gate_learning_rate", owner, low=0.0, closed="neither")
        check_choice(self.feature_scaling, "feature_scaling", owner, ("l2", "standard", "none"))
        check_choice(self.projection_init, "projection_init", owner, ("isometric", "glorot"))
        check_int(self.content_refresh, "content_refresh", owner, low=1)
        check_bool(self.item_graph, "item_graph", owner)
        check_float(self.item_graph_weight, "item_graph_weight", owner, low=0.0, word="degree")
        check_bool(self.warm_content, "warm_content", owner)
        check_float(self.edge_dropout, "edge_dropout", owner, low=0.0, high=1.0, closed="left")

    @single_blas_thread
    def fit(self, interactions, img_feats=None, txt_feats=None, *, valid=None):
        """Fit on interactions and item features.

        Parameters
        ----------
        interactions : scipy.sparse matrix of shape (n_users, n_items)
        img_feats : array of shape (n_items, d_v) or None
            Image features aligned with item columns; an all-zero row marks an
            item without image. float16/32/64 accepted; only the present rows
            are copied (as float32, scaled).
        txt_feats : array of shape (n_items, d_t) or None
            Text features, same conventions.
        valid : scipy.sparse matrix of shape (n_users, n_items), optional
            Validation interactions for early stopping.

        Returns
        -------
        self
        """
        self._check_params()
        train_matrix, valid = check_fit_data(interactions, valid, self.embedding_size)
        n_users, n_items = train_matrix.shape
        img = check_features(img_feats, "img_feats", n_items)
        txt = check_features(txt_feats, "txt_feats", n_items)
        rng = check_random_state(self.random_state)
        objective, inputs, stats = self.build_objective(train_matrix, img, txt, rng)
        memory, similar = objective.memory, objective.similar
        dim = self.embedding_size
        self._train(objective, train_matrix, valid, rng)
        self.user_embeddings_ = objective.params["user"]
        self.item_embeddings_ = objective.params["item"]
        users0, items0, context, _ = objective.layer0(None)
        self.user_factors_, self.item_factors_ = objective.final_factors(users0, items0, context)
        content0 = np.zeros_like(items0)
        if context[0] is not None:
            at = objective.content_items
            content0[inputs.items[at]] = context[0][at]
        _, self.item_content_factors_ = objective.final_factors(np.zeros_like(users0), content0, context)
        self._set_graph_fold_in(objective)
        self.cold_items_ = np.flatnonzero(np.diff(objective.graph.r_norm_t.indptr) == 0)
        for key, attr in _FUSION_ATTRS.items():
            setattr(self, attr, objective.params.get(key))
        self.image_dim_ = 0 if inputs is None else inputs.image_dim
        self.text_dim_ = 0 if inputs is None else inputs.text_dim
        self._set_scaling_stats(stats)
        self.gate_ = np.full((n_items, dim), np.nan, dtype=np.float32)
        _, cache = objective.content()
        if cache is not None:
            self.gate_[inputs.items] = cache[0]
        self.image_share_ = _image_share(self.gate_)
        self.memory_weight_, self.memory_search_ = self._choose_memory_weight(memory, valid, train_matrix)
        self._set_memory(memory if self.memory_weight_ > 0 else None)
        self.similar_data_, self.similar_indices_, self.similar_indptr_ = (
            (None, None, None) if memory is None or self.memory_weight_ == 0 else
            (similar.data, similar.indices, similar.indptr))
        return self

    def _new_user_offsets(self, user_items):
        """The memory rows :math:`m_{u,:}` of new users from the kept item similarities, and :math:`\\alpha`."""
        if getattr(self, "similar_data_", None) is None:
            if self._memory() is not None:
                raise ValueError("this RLMultimodalRec was saved by an lgrec without new-user support "
                                 "(no similar_data_): refit it to use recommend_new.")
            return None, 0.0
        n_known = self.similar_indptr_.shape[0] - 1
        similar = sp.csr_matrix((self.similar_data_, self.similar_indices_, self.similar_indptr_),
                                shape=(n_known, n_known))
        memory = neighbor_memory(user_items[:, :n_known], similar)
        if self.memory_items == "cold":
            memory = keep_columns(memory, self.item_degree_ == 0)
        memory.resize((user_items.shape[0], user_items.shape[1]))
        return memory, self._effective_memory_weight()

    def build_objective(self, train: sp.csr_matrix, img, txt, rng: np.random.Generator):
        """The training objective of these hyperparameters, at its initial parameters.

        Parameters
        ----------
        train : scipy.sparse.csr_matrix of shape (n_users, n_items)
            Canonical binary training matrix.
        img, txt : ndarray of shape (n_items, d_v) / (n_items, d_t) or None
            Checked features (:func:`lgrec._validation.check_features`).
        rng : numpy.random.Generator
            Draws the initial embeddings and projections.

        Returns
        -------
        objective : RLMMObjective
        inputs : lgrec.fusion.FusionInputs or None
        stats : dict
            Feature scaling statistics per modality.
        """
        n_users, n_items = train.shape
        dim = self.embedding_size
        user = xavier_uniform(rng, n_users, dim)
        item = xavier_uniform(rng, n_items, dim)
        inputs, stats, fusion, memory, item_graphs = None, {"image": None, "text": None}, {}, None, None
        similar = None
        if img is not None or txt is not None:
            inputs, stats = prepare_features(img, txt, n_items, self.feature_scaling)
            fusion = init_fusion_params(rng, inputs.image_dim, inputs.text_dim, dim,
                                        projection=self.projection_init, input_norms=inputs.input_norms())
            auto = self.memory_weight == "auto"
            if self.n_neighbors and (auto or self.memory_weight > 0) and inputs.items.size > 1:
                similar = content_similarity(inputs, self.n_neighbors, self.image_weight)
                similar.sum_duplicates()
                similar.sort_indices()
                if self.memory_items == "cold":  # only the cold items' rows of s: no warm column is ever built
                    cold = (np.diff(train.tocsc().indptr) == 0).astype(similar.dtype)
                    memory = neighbor_memory(train, keep_columns(similar.T.tocsr(), cold).T.tocsr())
                    memory = memory if memory.nnz else None  # a catalogue without cold items: no memory
                else:
                    memory = neighbor_memory(train, similar)
            if self.item_graph and self.n_neighbors:
                item_graphs = modality_graphs(inputs, self.n_neighbors)
        objective = RLMMObjective(
            normalized_adjacency(train), user, item, fusion, inputs, self.n_layers,
            self.regularization, self.content_weight, self.cold_start,
            fixed_gate=0.5 if self.gate == "average" else None, content_refresh=self.content_refresh,
            memory=memory, memory_weight=0.0 if self.memory_weight == "auto" else self.memory_weight,
            gate_learning_rate=self.gate_learning_rate,
            item_graphs=item_graphs, warm_content=self.warm_content,
            train=train, edge_dropout=self.edge_dropout,
            item_graph_weights=item_graph_weights(self.item_graph_weight, train, self.n_neighbors),
        )
        objective.similar = similar  # the item similarities s behind the memory (new users' memory rows)
        return objective, inputs, stats

    def _choose_memory_weight(self, memory, valid, train) -> tuple[float, dict]:
        """The memory weight of the score: the fixed one, or the best of :data:`MEMORY_WEIGHTS` on validation."""
        if self.memory_weight != "auto":
            return (float(self.memory_weight) if memory is not None else 0.0), {}
        if memory is None or valid is None or valid.nnz == 0:
            return 0.0, {}
        scores = {}
        for weight in MEMORY_WEIGHTS:
            scorer = FactorScorer(self.user_factors_, self.item_factors_, memory, weight)
            scores[str(weight)] = evaluate(scorer, valid, train, k=VALID_K)[f"recall@{VALID_K}"]
        best = max(MEMORY_WEIGHTS, key=lambda w: (scores[str(w)], -w))
        return float(best), scores

    def _set_memory(self, memory: sp.csr_matrix | None) -> None:
        self.memory_data_ = None if memory is None else memory.data
        self.memory_indices_ = None if memory is None else memory.indices
        self.memory_indptr_ = None if memory is None else memory.indptr

    def _memory(self) -> sp.csr_matrix | None:
        if getattr(self, "memory_data_", None) is None:
            return None
        return sp.csr_matrix((self.memory_data_, self.memory_indices_, self.memory_indptr_),
                             shape=(self.user_factors_.shape[0], self.item_factors_.shape[0]))

    def _scorer(self) -> FactorScorer:
        """Factors plus the memory term :math:`\\alpha m`."""
        return FactorScorer(self.user_factors_, self.item_factors_, self._memory(), self._effective_memory_weight())

    def _effective_memory_weight(self) -> float:
        """:math:`\\alpha` of the score (``memory_weight_``; files saved before it existed hold only ``memory_weight``)."""
        return float(getattr(self, "memory_weight_", self.memory_weight))

    def _set_scaling_stats(self, stats: dict) -> None:
        for modality in ("image", "text"):
            pair = stats.get(modality)
            setattr(self, f"{modality}_mean_", None if pair is None else pair[0])
            setattr(self, f"{modality}_std_", None if pair is None else pair[1])

    def _scaling_stats(self) -> dict:
        return {m: None if getattr(self, f"{m}_mean_", None) is None
                else (getattr(self, f"{m}_mean_"), getattr(self, f"{m}_std_")) for m in ("image", "text")}

    def _fusion_params(self) -> dict:
        return {key: getattr(self, attr) for key, attr in _FUSION_ATTRS.items() if getattr(self, attr, None) is not None}

    def content_embeddings(self, img_feats=None, txt_feats=None) -> tuple[np.ndarray, np.ndarray]:
        """Fused content embeddings and gates of arbitrary items with the fitted fusion.

        Parameters
        ----------
        img_feats : array of shape (n, d_v) or None
        txt_feats : array of shape (n, d_t) or None
            Same dimensions and conventions as in ``fit`` (all-zero row = missing).

        Returns
        -------
        content : ndarray of shape (n, embedding_size), float32
            Zero rows for items without any feature.
        gate : ndarray of shape (n, embedding_size), float32
            NaN rows for items without any feature.
        """
        check_is_fitted(self)
        n = _common_rows(img_feats, txt_feats)
        for name, feats, expected in (("img_feats", img_feats, self.image_dim_), ("txt_feats", txt_feats, self.text_dim_)):
            if feats is not None and not expected:
                raise ValueError(f"{name} was given but the model was fitted without that modality.")
            if feats is not None and np.shape(feats)[1] != expected:
                raise ValueError(f"{name} has {np.shape(feats)[1]} columns but the model was fitted on {expected}.")
        img = check_features(img_feats, "img_feats", n)
        txt = check_features(txt_feats, "txt_feats", n)
        content = np.zeros((n, self.embedding_size), dtype=np.float32)
        gate = np.full((n, self.embedding_size), np.nan, dtype=np.float32)
        inputs, _ = prepare_features(img, txt, n, self.feature_scaling, self._scaling_stats())
        if inputs.items.size:
            fused, cache = fusion_forward(self._fusion_params(), inputs, 0.5 if self.gate == "average" else None)
            content[inputs.items] = fused
            gate[inputs.items] = cache[0]
        return content, gate

    def add_items(self, img_feats=None, txt_feats=None) -> np.ndarray:
        """Append new catalogue items, scored from their features, without retraining.

        A new item's embedding is its fused content, exactly as for an item
        that had no interactions at fit time; the content-neighbour memory
        covers the items known at fit time only (new items get no memory term).

        Parameters
        ----------
        img_feats : array of shape (n_new, d_v) or None
        txt_feats : array of shape (n_new, d_t) or None

        Returns
        -------
        ndarray of shape (n_new,), int64
            The item ids given to the new items (``n_items_`` grows by ``n_new``).
        """
        check_is_fitted(self)
        content, gate = self.content_embeddings(img_feats, txt_feats)
        start = self.item_factors_.shape[0]
        self.item_factors_ = np.concatenate([self.item_factors_, content])
        self.item_content_factors_ = np.concatenate([self.item_content_factors_, content])
        self.item_embeddings_ = np.concatenate([self.item_embeddings_, np.zeros_like(content)])
        self.gate_ = np.concatenate([self.gate_, gate])
        self.image_share_ = np.concatenate([self.image_share_, _image_share(gate)])
        new_ids = np.arange(start, start + content.shape[0], dtype=np.int64)
        self.cold_items_ = np.concatenate([self.cold_items_, new_ids])
        return new_ids

    def explain(self, user: int, item: int, interactions=None, n_contributors: int = 5) -> dict:
        """The parts of one score, the item's image share, and the history items behind it.

        The score :math:`e_u^\\top e_i + \\alpha m_{ui}` splits exactly into
        ``graph`` (the ID embeddings propagated on the graph:
        :math:`e_u^\\top (e_i - c_i)`), ``content`` (:math:`e_u^\\top c_i` with
        :math:`c_i` = ``item_content_factors_[item]``, the fused content's share of
        the item's final embedding, its item-graph term included) and
        ``memory`` (:math:`\\alpha m_{ui}`); the parts add up to ``score``.

        With ``interactions`` (the training matrix), the user's training items
        are ranked by :math:`\\hat A_{uj}\\, e_j^\\top e_i`: the graph weight
        :math:`1/\\sqrt{d_u d_j}` of the first-hop path from the user through
        item :math:`j`, times how much :math:`j` and :math:`i` agree in the
        final embedding space. It ranks the history; it is not a further
        split of the score (the graph part also flows through longer paths).

        Parameters
        ----------
        user : int
            User id in ``[0, n_users_)``.
        item : int
            Item id in ``[0, n_items_)``.
        interactions : scipy.sparse matrix of shape (n_users_, n_items_ at fit), optional
            The training interactions; needed for ``contributors``.
        n_contributors : int, default=5
            History items returned, largest contribution first.

        Returns
        -------
        dict
            ``score``, ``graph``, ``content``, ``memory`` (float), ``image_share``
            (float, NaN for an item without features) and, with ``interactions``,
            ``contributors``: a list of ``(item, contribution)`` pairs.
        """
        check_is_fitted(self, "item_content_factors_")
        owner = f"{type(self).__name__}.explain"
        user = check_int(user, "user", owner, low=0, high=self.user_factors_.shape[0] - 1)
        item = check_int(item, "item", owner, low=0, high=self.item_factors_.shape[0] - 1)
        n_contributors = check_int(n_contributors, "n_contributors", owner, low=0)
        e_u = self.user_factors_[user].astype(np.float64)
        total = float(e_u @ self.item_factors_[item])
        content = float(e_u @ self.item_content_factors_[item])
        memory = self._memory()
        memory_row = memory[user] if memory is not None else None
        m_ui = 0.0
        if memory_row is not None and item < memory.shape[1]:
            m_ui = float(memory_row[0, item])
        alpha = self._effective_memory_weight()
        result = {"score": total + alpha * m_ui, "graph": total - content, "content": content,
                  "memory": alpha * m_ui, "image_share": float(self.image_share_[item])}
        if interactions is not None:
            train = check_interactions(interactions, "interactions")
            if train.shape[0] != self.user_factors_.shape[0] or train.shape[1] > self.item_factors_.shape[0]:
                raise ValueError(f"{owner}: interactions must have shape ({self.user_factors_.shape[0]}, n_items) "
                                 f"with n_items <= {self.item_factors_.shape[0]} (the training matrix); "
                                 f"got {train.shape}.")
            history = train.indices[train.indptr[user] : train.indptr[user + 1]]
            degree = np.bincount(train.indices, minlength=train.shape[1])[history].astype(np.float64)
            similarity = self.item_factors_[history].astype(np.float64) @ self.item_factors_[item].astype(np.float64)
            contribution = similarity / np.sqrt(max(history.size, 1) * degree)
            order = np.argsort(-contribution, kind="stable")[:n_contributors]
            result["contributors"] = [(int(history[j]), float(contribution[j])) for j in order]
        return result


def item_graph_weights(weight, train: sp.csr_matrix, n_neighbors: int) -> np.ndarray | None:
    """Weight of each item's item-item term (``RLMultimodalRec.item_graph_weight``).

    Parameters
    ----------
    weight : "degree" or float
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Canonical binary training matrix.
    n_neighbors : int
        :math:`k`, the content neighbours per item.

    Returns
    -------
    ndarray of shape (n_items,), float32, or None
        :math:`k / (k + d_i)` for ``"degree"``; None for 1.0 (the unweighted
        term) and for ``k`` = 0 (no item-item term); else ``weight`` for every item.
    """
    if isinstance(weight, str):
        if n_neighbors == 0:
            return None
        degree = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float64)
        return (n_neighbors / (n_neighbors + degree)).astype(np.float32)
    if weight == 1.0:
        return None
    return np.full(train.shape[1], weight, dtype=np.float32)


def _common_rows(img_feats, txt_feats) -> int:
    shapes = []
    for name, feats in (("img_feats", img_feats), ("txt_feats", txt_feats)):
        if feats is None:
            continue
        try:
            shape = np.shape(feats)
        except ValueError:
            raise ValueError(f"{name} must be a rectangular array of shape (n_new, d); got ragged rows.") from None
        if len(shape) != 2:
            raise ValueError(f"{name} must be 2-D (n_new, d); got shape {shape}.")
        shapes.append(shape)
    if not shapes:
        raise ValueError("img_feats and txt_feats are both None; give at least one modality.")
    if len(shapes) == 2 and shapes[0][0] != shapes[1][0]:
        raise ValueError(f"img_feats has {shapes[0][0]} rows but txt_feats has {shapes[1][0]}; one row per new item.")
    return shapes[0][0]


def _image_share(gate: np.ndarray) -> np.ndarray:
    """Mean gate over dimensions per item (n_items,), float32; NaN for items without features."""
    share = np.full(gate.shape[0], np.nan, dtype=np.float32)
    known = ~np.isnan(gate).any(axis=1)
    share[known] = gate[known].mean(axis=1)
    return share


def fit(interactions, img_feats=None, txt_feats=None, *, valid=None, **params) -> RLMultimodalRec:
    """Fit an :class:`RLMultimodalRec` in one call.

    ``lgrec.fit(train, image, text, valid=valid, random_state=0)`` is
    ``RLMultimodalRec(random_state=0).fit(train, image, text, valid=valid)``.

    Parameters
    ----------
    interactions : scipy.sparse matrix of shape (n_users, n_items)
    img_feats : array of shape (n_items, d_v) or None
    txt_feats : array of shape (n_items, d_t) or None
    valid : scipy.sparse matrix of shape (n_users, n_items), optional
    **params
        Hyperparameters of :class:`RLMultimodalRec`.

    Returns
    -------
    RLMultimodalRec
        The fitted model.
    """
    return RLMultimodalRec(**params).fit(interactions, img_feats, txt_feats, valid=valid)


def gate_summary(model: RLMultimodalRec, groups=None) -> dict:
    """Summary of the per-item image share of a fitted model's gate.

    Parameters
    ----------
    model : fitted RLMultimodalRec
    groups : array-like of shape (n_items,), optional
        A label per item (e.g. product group); summaries per label are added.

    Returns
    -------
    dict
        ``items_with_features``, ``mean``, ``quartiles`` of ``image_share_`` over
        items that have features, and ``by_group`` (label -> count and mean) when
        ``groups`` is given.
    """
    check_is_fitted(model, "image_share_")
    share = model.image_share_
    known = ~np.isnan(share)
    out = {"items_with_features": int(known.sum())}
    if known.any():
        out["mean"] = float(share[known].mean())
        out["quartiles"] = [float(q) for q in np.quantile(share[known], [0.25, 0.5, 0.75])]
    if groups is not None and known.any():
        labels = np.asarray(groups, dtype=object).ravel()[: share.shape[0]]
        if labels.shape[0] < share.shape[0]:
            raise ValueError(f"groups has {labels.shape[0]} labels but the model has {share.shape[0]} items; "
                             "give one label per item id.")
        out["by_group"] = {
            str(label): {"items": int(mask.sum()), "mean": float(share[mask].mean())}
            for label in sorted({str(v) for v in labels[known]})
            if (mask := known & (labels.astype(str) == label)).any()
        }
    return out
