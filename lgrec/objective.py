r"""The training-step protocol of lgrec, and the batch step every graph model shares.

:class:`Objective` is what :func:`lgrec.training.train` calls, and all it calls:

- ``params``: dict of str to ndarray, the trainable arrays (updated in place by the optimiser);
- ``learning_rates``: per-parameter Adam step sizes that differ from the model's (default none);
- ``initial_state()`` / ``start_epoch(rng, state)``: state that changes between batches or epochs
  (a window of cached content, a resampled graph) is a value that the loop passes in and gets back,
  never hidden in the objective;
- ``loss_and_grads(users, pos, neg, state) -> (loss, grads, state)``: one batch of BPR triplets, a
  pure function of the parameters, the batch and the state;
- ``run_epoch(...)``: the loop over an epoch's batches (one optimiser step per batch; a model may
  override it with a fused kernel);
- ``optimizers``: the optimisers its ``run_epoch`` trains with (``("adam",)``; BPR-MF adds ``"sgd"``);
- ``scorer()``: what validation ranks with (:class:`lgrec.scoring.FactorScorer`).

:class:`GraphObjective` owns the batch step of every LightGCN-style model: layer 0, propagation at the
batch's rows, BPR (+ L2 on the batch's layer-0 rows) and the backward pass,

.. math::

    E^{(0)} = \mathrm{layer0}(\theta), \qquad
    E = \sum_{l=0}^{L}\alpha_l \hat A^l E^{(0)}, \qquad
    e_i \leftarrow \mathrm{final\_items}(e_i, E^{(0)}), \qquad
    x_{uij} = e_u^\top(e_i - e_j) + w\,(M_{ui} - M_{uj}),

    \mathcal L = \frac{1}{B}\sum_b \log(1 + e^{-x_b}) + \mathcal L_{\mathrm{extra}}
        + \frac{\lambda}{2B}\sum_b \bigl(\lVert e^{(0)}_{u_b}\rVert^2 + \lVert e^{(0)}_{i_b}\rVert^2
        + \lVert e^{(0)}_{j_b}\rVert^2\bigr).

A model changes only what differs, through small hooks:

- :meth:`GraphObjective.layer_weights`: the weights :math:`\alpha_l` of the layers (LightGCN's mean,
  :math:`1/(L+1)` each, by default);
- :meth:`GraphObjective.layer0` and :meth:`GraphObjective.layer0_backward`: how layer 0 is assembled
  from the parameters and how its gradient flows back to them (RLMultimodalRec adds fused content);
- :meth:`GraphObjective.final_items` and :meth:`GraphObjective.final_items_adjoint`: a linear change of
  the propagated item embeddings (FREEDOM adds its item-item graph term; RLMultimodalRec lets
  cold-start items keep their layer 0);
- :meth:`GraphObjective.extra_loss`: extra loss terms on the batch (content BPR, modality BPR);
- ``score_terms``: a fixed sparse score term :math:`M` with weight :math:`w` (RLMultimodalRec's
  content-neighbour memory), used in training margins and in scoring alike;
- :meth:`GraphObjective.training_graph`: the user-item graph of the batch step (FREEDOM prunes it
  every epoch).

The propagation is linear and :math:`\hat A` is symmetric, so the backward pass is the same
propagation applied to the gradients (:func:`lgrec.graph.propagate_rows_adjoint`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp

from .graph import (BatchRows, BipartiteGraph, batch_rows, layer_weights, propagate, propagate_rows,
                    propagate_rows_adjoint)
from .kernels import csr_lookup
from .losses import bpr_backward, bpr_forward, l2_backward, l2_forward
from .scoring import FactorScorer

__all__ = ["GraphObjective", "Objective"]


class Objective(ABC):
    """A BPR training objective: parameters, one batch's loss and gradients, and a scorer.

    Subclasses set ``self.params`` (dict of str to ndarray) in ``__init__`` and implement
    :meth:`loss_and_grads` and :meth:`scorer`.
    """

    params: dict
    #: Optimisers :meth:`run_epoch` trains with (names as :func:`lgrec.training.train` takes them).
    optimizers: tuple = ("adam",)

    @property
    def learning_rates(self) -> dict:
        """Adam step sizes of individual parameters that differ from the model's ``learning_rate``."""
        return {}

    def initial_state(self):
        """State before the first epoch (None: this objective keeps none)."""
        return None

    def start_epoch(self, rng: np.random.Generator, state):
        """Called before each epoch with the loop's state; returns the state for the epoch's batches."""
        return state

    @abstractmethod
    def loss_and_grads(self, users: np.ndarray, pos: np.ndarray, neg: np.ndarray, state):
        """Loss of one batch and the gradient of every parameter it depends on.

        Parameters
        ----------
        users, pos, neg : ndarray of shape (B,), int32
            The batch's triplets.
        state : object
            From :meth:`initial_state`, :meth:`start_epoch` or the previous call.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray or lgrec.optim.RowGrad
            Keyed like ``params`` (a missing key: no update of that parameter).
        state : object
            The state for the next batch.
        """

    @abstractmethod
    def scorer(self) -> FactorScorer:
        """Scores at the current parameters (what validation ranks with)."""

    def run_epoch(self, users, pos, neg, optimizer, batch_size: int, state, on_batch=None):
        """One pass over an epoch's triplets: one optimiser step per batch of ``batch_size``.

        Parameters
        ----------
        users, pos, neg : ndarray of shape (n,), int32
            The epoch's triplets in training order.
        optimizer : lgrec.optim.Adam
            Holds the optimiser state of ``params``.
        batch_size : int
        state : object
        on_batch : callable, optional
            Called after every batch (progress display).

        Returns
        -------
        losses : ndarray of shape (n_batches,), float64
        state : object
        """
        n_batches = -(-users.shape[0] // batch_size)
        losses = np.empty(n_batches)
        for b in range(n_batches):
            window = slice(b * batch_size, (b + 1) * batch_size)
            losses[b], grads, state = self.loss_and_grads(users[window], pos[window], neg[window], state)
            optimizer.step(self.params, grads)
            if on_batch is not None:
                on_batch()
        return losses, state


class GraphObjective(Objective):
    """The LightGCN batch step; models extend it by overriding its hooks.

    As it stands it is LightGCN: layer 0 is the free ID tables ``user`` and ``item``.

    Parameters
    ----------
    graph : BipartiteGraph
        Normalised user-item adjacency (the full training graph; scoring always uses it).
    user : ndarray of shape (n_users, d)
        Layer-0 user ID embeddings; updated in place by the optimiser.
    item : ndarray of shape (n_items, d)
        Layer-0 item ID embeddings; updated in place by the optimiser.
    n_layers : int
    regularization : float
        L2 weight :math:`\\lambda` on the batch's layer-0 rows.
    score_terms : scipy.sparse.csr_matrix of shape (n_users, n_items), optional
        Fixed score term :math:`M` (sorted indices are made if missing).
    score_weight : float, default=1.0
        :math:`w`.
    """

    def __init__(self, graph: BipartiteGraph, user: np.ndarray, item: np.ndarray, n_layers: int,
                 regularization: float, *, score_terms: sp.csr_matrix | None = None, score_weight: float = 1.0):
        self.graph = graph
        self.n_layers = n_layers
        self.regularization = regularization
        self.params = {"user": user, "item": item}
        if score_terms is not None and not score_terms.has_sorted_indices:
            score_terms = score_terms.sorted_indices()  # csr_lookup searches each row
        self.score_terms = score_terms if score_terms is not None and score_weight != 0.0 else None
        self.score_weight = score_weight

    # ----------------------------------------------------------------- hooks
    def layer_weights(self) -> np.ndarray:
        """Weights :math:`\\alpha_0 .. \\alpha_L` of the propagated layers (default: the mean), shape (L + 1,)."""
        return layer_weights(self.n_layers, self.params["user"].dtype)

    def training_graph(self, state) -> BipartiteGraph:
        """The user-item graph of the batch step (default: the full training graph)."""
        return self.graph

    def layer0(self, state):
        """Layer-0 embeddings at the current parameters.

        Returns
        -------
        users : ndarray of shape (n_users, d)
        items : ndarray of shape (n_items, d)
        context : object
            Whatever :meth:`layer0_backward` and :meth:`extra_loss` need (None here).
        state : object
        """
        return self.params["user"], self.params["item"], None, state

    def layer0_backward(self, d_users: np.ndarray, d_items: np.ndarray, rows: BatchRows, context, extra, state):
        """Parameter gradients from the gradients with respect to layer 0.

        Parameters
        ----------
        d_users : ndarray of shape (n_users, d)
        d_items : ndarray of shape (n_items, d)
        rows : BatchRows
        context : object
            From :meth:`layer0`.
        extra : dict or None
            From :meth:`extra_loss` and :meth:`final_items_adjoint`; by default its entries are
            gradients of parameters outside layer 0 and are merged as they are.
        state : object

        Returns
        -------
        grads : dict of str to ndarray
        state : object
        """
        grads = {"user": d_users, "item": d_items}
        if extra:
            grads.update(extra)
        return grads, state

    def final_items(self, items: np.ndarray, propagated: np.ndarray, items0: np.ndarray, context) -> np.ndarray:
        """Final item embeddings of ``items`` from their propagated rows (default: unchanged).

        Parameters
        ----------
        items : ndarray of shape (r,), int64
            Sorted distinct item ids.
        propagated : ndarray of shape (r, d)
            Their layer combination; may be modified in place and returned.
        items0 : ndarray of shape (n_items, d)
            Layer-0 item embeddings.
        context : object
            From :meth:`layer0`.

        Returns
        -------
        ndarray of shape (r, d)
        """
        return propagated

    def final_items_adjoint(self, items: np.ndarray, grad: np.ndarray, d_items0: np.ndarray,
                            items0: np.ndarray, context):
        """Adjoint of the change :meth:`final_items` makes (default: none).

        Parameters
        ----------
        items : ndarray of shape (r,), int64
        grad : ndarray of shape (r, d)
            Gradient with respect to the final embeddings of ``items``.
        d_items0 : ndarray of shape (n_items, d)
            Gradient with respect to layer 0 through the propagation; may be modified in place.
        items0 : ndarray of shape (n_items, d)
            Layer-0 item embeddings (as given to :meth:`final_items`).
        context : object
            From :meth:`layer0`.

        Returns
        -------
        d_items0 : ndarray of shape (n_items, d)
        extra : dict or None
            Gradients for :meth:`layer0_backward` (merged with those of :meth:`extra_loss`).
        """
        return d_items0, None

    def extra_loss(self, users, pos, neg, rows: BatchRows, e_u: np.ndarray, d_u: np.ndarray, context):
        """Extra loss terms of the batch (default: none).

        Parameters
        ----------
        users, pos, neg : ndarray of shape (B,)
        rows : BatchRows
        e_u : ndarray of shape (B, d)
            Final user embedding of each triplet.
        d_u : ndarray of shape (B, d)
            Gradient with respect to ``e_u`` so far; the hook adds its own in place.
        context : object
            From :meth:`layer0`.

        Returns
        -------
        loss : float
        extra : dict or None
            Passed to :meth:`layer0_backward`.
        """
        return 0.0, None

    # ------------------------------------------------------------ the step
    def score_offsets(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:math:`w M_{ui}` for pairs of users and items, shape (len(users),)."""
        terms = self.score_terms
        values = csr_lookup(terms.indptr, terms.indices, terms.data, users, items)
        return self.score_weight * values.astype(self.params["user"].dtype, copy=False)

    def loss_and_grads(self, users, pos, neg, state=None):
        """BPR + extra + L2 loss of a batch and the gradients of every parameter.

        Only the batch's rows of the final embeddings are computed and the
        backward pass starts from them (:func:`lgrec.graph.propagate_rows`).
        """
        graph = self.training_graph(state)
        weights = self.layer_weights()
        users0, items0, context, state = self.layer0(state)
        batch = users.shape[0]
        items = np.concatenate([pos, neg])
        rows = batch_rows(graph, users, items)
        final_users, final_items = propagate_rows(graph, rows, users0, items0, self.n_layers, weights)
        final_items = self.final_items(rows.items, final_items, items0, context)
        e_u, e_ij = final_users[rows.user_index], final_items[rows.item_index]
        offset = None
        if self.score_terms is not None:
            offset = self.score_offsets(users, pos) - self.score_offsets(users, neg)
        loss, cache = bpr_forward(e_u, e_ij[:batch], e_ij[batch:], offset)
        d_u, d_i, d_j = bpr_backward(cache)
        extra_loss, extra = self.extra_loss(users, pos, neg, rows, e_u, d_u, context)
        loss += extra_loss
        g_users, g_items = rows.sum_by_user(d_u), rows.sum_by_item(np.concatenate([d_i, d_j]))
        d_users0, d_items0 = propagate_rows_adjoint(graph, rows, g_users, g_items, self.n_layers, weights)
        d_items0, final_extra = self.final_items_adjoint(rows.items, g_items, d_items0, items0, context)
        if final_extra:
            extra = {**(extra or {}), **final_extra}
        reg = self.regularization
        if reg > 0.0:
            ego_users, ego_items = users0[users], items0[items]
            loss += l2_forward(reg, batch, ego_users, ego_items)
            d_users0[rows.users] += rows.sum_by_user(l2_backward(reg, batch, ego_users))
            d_items0[rows.items] += rows.sum_by_item(l2_backward(reg, batch, ego_items))
        grads, state = self.layer0_backward(d_users0, d_items0, rows, context, extra, state)
        return loss, grads, state

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Final user (n_users, d) and item (n_items, d) embeddings on the full graph."""
        users0, items0, context, _ = self.layer0(None)
        return self.final_factors(users0, items0, context)

    def final_factors(self, users0: np.ndarray, items0: np.ndarray, context) -> tuple[np.ndarray, np.ndarray]:
        """Final embeddings of given layer-0 tables on the full graph (linear in them for a fixed ``context``).

        Parameters
        ----------
        users0 : ndarray of shape (n_users, d)
        items0 : ndarray of shape (n_items, d)
        context : object
            From :meth:`layer0`.

        Returns
        -------
        users : ndarray of shape (n_users, d)
        items : ndarray of shape (n_items, d)
        """
        final_users, final_items = propagate(self.graph, users0, items0, self.n_layers, self.layer_weights())
        all_items = np.arange(self.graph.n_items)
        return final_users, self.final_items(all_items, final_items, items0, context)

    def scorer(self) -> FactorScorer:
        """Final embeddings plus the fixed score term."""
        return FactorScorer(*self.factors(), self.score_terms, self.score_weight)
