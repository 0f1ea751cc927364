r"""The user-item graph: symmetric normalised adjacency and LightGCN propagation.

For a binary interaction matrix :math:`R` of shape (n_users, n_items) the
bipartite adjacency and its normalisation are

.. math::

    A = \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix}, \qquad
    \hat A = D^{-1/2} A D^{-1/2}, \qquad
    \tilde R = D_u^{-1/2} R D_i^{-1/2},

with node degrees :math:`D` (a node without edges gets a zero row). LightGCN
with :math:`L` layers maps layer-0 embeddings :math:`E^{(0)}` to the layer mean

.. math::

    E = \sum_{l=0}^{L} \alpha_l \hat A^{l} E^{(0)}, \qquad \alpha_l = \frac{1}{L + 1}

(other layer weights :math:`\alpha_l` can be passed to every propagation function).

:math:`\hat A` is symmetric, so the same map is its own adjoint: the gradient
with respect to :math:`E^{(0)}` is ``propagate(graph, dE)`` (``tests/test_graph.py``
checks :math:`\langle \hat A x, y \rangle = \langle x, \hat A y \rangle`).

The graph is held as scipy.sparse CSR matrices (built, normalised and sliced
with scipy.sparse). Because it is bipartite, :math:`\hat A X` splits into the
two products :math:`\tilde R X_i` and :math:`\tilde R^\top X_u`; each runs in
the Numba kernels of :mod:`lgrec.kernels.spmm` over the CSR arrays, parallel
over output rows and bit-identical for any number of threads (scipy's ``@`` is
their test oracle; ``benchmarks/bench_propagation.py`` times both).

A training batch needs the final embeddings of a few thousand rows only, and
its gradient is non-zero on those rows only. :func:`propagate_rows` computes
the last layer at the batch rows alone (:math:`\hat A_{B,:} E^{(L-1)}`) and
:func:`propagate_rows_adjoint` starts the backward pass from those rows
(:math:`\hat A_{:,B} G_B`); both use the adjacency rows of the batch,
read in place from the full matrices (nothing is sliced). The result equals the rows
of :func:`propagate` (``tests/test_graph.py``) at about half the sparse work.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from .kernels import accumulate_rows, csr_matmul, csr_matmul_rows, csr_matmul_rows_adjoint

__all__ = ["BatchRows", "BipartiteGraph", "batch_rows", "layer_weights", "normalized_adjacency", "propagate",
           "propagate_rows", "propagate_rows_adjoint"]


@contextmanager
def _kernel_threads(threaded: bool):
    """Run the enclosed Numba kernels on all Numba threads, or on one when not ``threaded``.

    ``numba.set_num_threads`` applies to launches from the calling thread only,
    and the previous value is restored on exit.
    """
    if threaded:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _csr(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return matrix.indptr, matrix.indices, matrix.data


@dataclass(frozen=True)
class BipartiteGraph:
    """Normalised user-item adjacency in the two CSR blocks that make it up.

    Attributes
    ----------
    r_norm : scipy.sparse.csr_matrix of shape (n_users, n_items)
        :math:`\\tilde R = D_u^{-1/2} R D_i^{-1/2}`.
    r_norm_t : scipy.sparse.csr_matrix of shape (n_items, n_users)
        Its transpose, stored as CSR so both products are row-parallel.
    threaded : bool
        Run the products on all Numba threads (``False``: on the calling thread
        only; the results are the same).
    """

    r_norm: sp.csr_matrix
    r_norm_t: sp.csr_matrix
    threaded: bool = True

    @property
    def n_users(self) -> int:
        return self.r_norm.shape[0]

    @property
    def n_items(self) -> int:
        return self.r_norm.shape[1]

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    def matmul(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One propagation step :math:`\\hat A x` with ``x = [users; items]``.

        Parameters
        ----------
        users : ndarray of shape (n_users, d)
        items : ndarray of shape (n_items, d)

        Returns
        -------
        new_users : ndarray of shape (n_users, d)
            :math:`\\tilde R` ``items``.
        new_items : ndarray of shape (n_items, d)
            :math:`\\tilde R^\\top` ``users``.
        """
        with _kernel_threads(self.threaded):
            return csr_matmul(*_csr(self.r_norm), items), csr_matmul(*_csr(self.r_norm_t), users)

    def to_csr(self) -> sp.csr_matrix:
        """The full symmetric :math:`\\hat A` of shape (n_nodes, n_nodes) (for tests and inspection)."""
        return sp.bmat([[None, self.r_norm], [self.r_norm_t, None]], format="csr")


def normalized_adjacency(
    interactions: sp.csr_matrix, dtype=np.float32, threaded: bool | None = None
) -> BipartiteGraph:
    """Build the symmetric normalised adjacency of a binary interaction matrix.

    Vectorised: the value of edge (u, i) is ``1 / sqrt(deg_u * deg_i)``.

    Parameters
    ----------
    interactions : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Canonical binary matrix (see :func:`lgrec._validation.check_interactions`).
    dtype : numpy dtype, default=float32
        dtype of the stored values (float64 for gradient checks).
    threaded : bool, optional
        Run the products on all Numba threads (``False``: on the calling
        thread only); default: when more than one CPU is available.

    Returns
    -------
    BipartiteGraph
    """
    deg_users = np.diff(interactions.indptr).astype(np.float64)
    deg_items = np.bincount(interactions.indices, minlength=interactions.shape[1]).astype(np.float64)
    inv_users = np.zeros_like(deg_users)
    inv_items = np.zeros_like(deg_items)
    np.divide(1.0, np.sqrt(deg_users), out=inv_users, where=deg_users > 0)
    np.divide(1.0, np.sqrt(deg_items), out=inv_items, where=deg_items > 0)
    rows = np.repeat(np.arange(interactions.shape[0]), np.diff(interactions.indptr))
    values = (inv_users[rows] * inv_items[interactions.indices]).astype(dtype)
    r_norm = sp.csr_matrix(
        (values, interactions.indices.copy(), interactions.indptr.copy()), shape=interactions.shape
    )
    r_norm_t = r_norm.T.tocsr()
    r_norm_t.sort_indices()
    if threaded is None:
        threaded = (os.cpu_count() or 1) > 1
    return BipartiteGraph(r_norm=r_norm, r_norm_t=r_norm_t, threaded=threaded)


def layer_weights(n_layers: int, dtype=np.float32) -> np.ndarray:
    """LightGCN's layer weights: :math:`\\alpha_l = 1 / (L + 1)` for ``l = 0..L``, shape (L + 1,)."""
    return np.full(n_layers + 1, 1.0 / (n_layers + 1), dtype=dtype)


def _check_weights(weights, n_layers: int, dtype) -> np.ndarray:
    if weights is None:
        return layer_weights(n_layers, dtype)
    weights = np.asarray(weights, dtype=dtype)
    if weights.shape != (n_layers + 1,):
        raise ValueError(f"weights must have one entry per layer 0..{n_layers}, shape ({n_layers + 1},); "
                         f"got shape {weights.shape}.")
    return weights


def propagate(
    graph: BipartiteGraph, users: np.ndarray, items: np.ndarray, n_layers: int, weights=None
) -> tuple[np.ndarray, np.ndarray]:
    """Layer combination :math:`\\sum_{l=0}^{L} \\alpha_l \\hat A^l x`, ``x = [users; items]``.

    With the default weights :math:`\\alpha_l = 1/(L+1)` this is LightGCN's
    layer mean. Linear and self-adjoint: it is also the backward pass (apply
    it to the gradients with respect to the outputs to get the gradients with
    respect to the inputs).

    Parameters
    ----------
    graph : BipartiteGraph
    users : ndarray of shape (n_users, d)
        Layer-0 user embeddings.
    items : ndarray of shape (n_items, d)
        Layer-0 item embeddings.
    n_layers : int
        Number of propagation layers ``L`` (0 returns ``alpha_0`` times the inputs).
    weights : array-like of shape (L + 1,), optional
        :math:`\\alpha_l`; default :func:`layer_weights`.

    Returns
    -------
    users_out : ndarray of shape (n_users, d), dtype of ``users``
    items_out : ndarray of shape (n_items, d), dtype of ``items``
    """
    weights = _check_weights(weights, n_layers, users.dtype)
    total_users, total_items = users * weights[0], items * weights[0]
    layer_users, layer_items = users, items
    for layer in range(1, n_layers + 1):
        layer_users, layer_items = graph.matmul(layer_users, layer_items)
        total_users += weights[layer] * layer_users
        total_items += weights[layer] * layer_items
    return total_users, total_items


@dataclass(frozen=True)
class BatchRows:
    """The distinct users and items of a batch, whose adjacency rows the batch products read.

    Attributes
    ----------
    users : ndarray of shape (n_batch_users,), int64
        Sorted distinct user ids.
    items : ndarray of shape (n_batch_items,), int64
        Sorted distinct item ids.
    user_index : ndarray of shape (n_user_samples,), int64
        Position in ``users`` of every user sample of the batch.
    item_index : ndarray of shape (n_item_samples,), int64
        Position in ``items`` of every item sample of the batch.
    graph : BipartiteGraph
        The graph whose rows ``users`` of :math:`\\tilde R` and ``items`` of
        :math:`\\tilde R^\\top` the products use.
    """

    users: np.ndarray
    items: np.ndarray
    user_index: np.ndarray
    item_index: np.ndarray
    graph: BipartiteGraph

    def sum_by_user(self, values: np.ndarray) -> np.ndarray:
        """Add up per-sample rows (n_user_samples, d) by user: shape (n_batch_users, d)."""
        return accumulate_rows(self.user_index, values, self.users.shape[0])

    def sum_by_item(self, values: np.ndarray) -> np.ndarray:
        """Add up per-sample rows (n_item_samples, d) by item: shape (n_batch_items, d)."""
        return accumulate_rows(self.item_index, values, self.items.shape[0])

    def matmul(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``users`` / ``items`` of :math:`\\hat A x`: shapes (n_batch_users, d), (n_batch_items, d)."""
        graph = self.graph
        with _kernel_threads(graph.threaded):
            return (csr_matmul_rows(*_csr(graph.r_norm), self.users, items),
                    csr_matmul_rows(*_csr(graph.r_norm_t), self.items, users))

    def adjoint_matmul(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`\\hat A_{:,B}\\, g_B` for gradients at the batch rows: shapes (n_users, d), (n_items, d)."""
        graph = self.graph
        with _kernel_threads(graph.threaded):
            return (csr_matmul_rows_adjoint(*_csr(graph.r_norm_t), self.items, items, graph.n_users),
                    csr_matmul_rows_adjoint(*_csr(graph.r_norm), self.users, users, graph.n_items))


def batch_rows(graph: BipartiteGraph, users: np.ndarray, items: np.ndarray) -> BatchRows:
    """Distinct rows of a batch and the adjacency rows that :func:`propagate_rows` needs.

    Parameters
    ----------
    graph : BipartiteGraph
    users : ndarray of shape (n_user_samples,), int
        User of every sample (repeats allowed).
    items : ndarray of shape (n_item_samples,), int
        Item of every sample, e.g. positives then negatives (repeats allowed).

    Returns
    -------
    BatchRows
    """
    unique_users, user_index = np.unique(users, return_inverse=True)
    unique_items, item_index = np.unique(items, return_inverse=True)
    return BatchRows(
        users=unique_users, items=unique_items,
        user_index=user_index.astype(np.int64, copy=False), item_index=item_index.astype(np.int64, copy=False),
        graph=graph,
    )


def propagate_rows(
    graph: BipartiteGraph, rows: BatchRows, users: np.ndarray, items: np.ndarray, n_layers: int, weights=None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows.users`` and ``rows.items`` of :func:`propagate`.

    Layers ``1..L-1`` run on the whole graph; the last layer only at the batch rows.

    Parameters
    ----------
    graph : BipartiteGraph
    rows : BatchRows
        From :func:`batch_rows` on the same graph.
    users : ndarray of shape (n_users, d)
        Layer-0 user embeddings.
    items : ndarray of shape (n_items, d)
        Layer-0 item embeddings.
    n_layers : int
    weights : array-like of shape (L + 1,), optional
        Layer weights; default :func:`layer_weights`.

    Returns
    -------
    users_out : ndarray of shape (n_batch_users, d), dtype of ``users``
    items_out : ndarray of shape (n_batch_items, d), dtype of ``items``
    """
    weights = _check_weights(weights, n_layers, users.dtype)
    total_users, total_items = weights[0] * users[rows.users], weights[0] * items[rows.items]
    if n_layers == 0:
        return total_users, total_items
    layer_users, layer_items = users, items
    for layer in range(1, n_layers):
        layer_users, layer_items = graph.matmul(layer_users, layer_items)
        total_users += weights[layer] * layer_users[rows.users]
        total_items += weights[layer] * layer_items[rows.items]
    last_users, last_items = rows.matmul(layer_users, layer_items)
    total_users += weights[n_layers] * last_users
    total_items += weights[n_layers] * last_items
    return total_users, total_items


def propagate_rows_adjoint(
    graph: BipartiteGraph, rows: BatchRows, grad_users: np.ndarray, grad_items: np.ndarray, n_layers: int,
    weights=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Adjoint of :func:`propagate_rows`: gradients at the batch rows to gradients of layer 0.

    Equal to :func:`propagate` applied to the gradients scattered into zero
    arrays; the first layer uses only the batch's adjacency rows.

    Parameters
    ----------
    graph : BipartiteGraph
    rows : BatchRows
    grad_users : ndarray of shape (n_batch_users, d)
        Gradient with respect to the final embeddings of ``rows.users``.
    grad_items : ndarray of shape (n_batch_items, d)
        Gradient with respect to the final embeddings of ``rows.items``.
    n_layers : int
    weights : array-like of shape (L + 1,), optional
        Layer weights; default :func:`layer_weights`.

    Returns
    -------
    d_users : ndarray of shape (n_users, d)
    d_items : ndarray of shape (n_items, d)
    """
    weights = _check_weights(weights, n_layers, grad_users.dtype)
    if n_layers == 0:
        total_users = np.zeros((graph.n_users, grad_users.shape[1]), dtype=grad_users.dtype)
        total_items = np.zeros((graph.n_items, grad_items.shape[1]), dtype=grad_items.dtype)
    else:
        layer_users, layer_items = rows.adjoint_matmul(grad_users, grad_items)
        total_users, total_items = weights[1] * layer_users, weights[1] * layer_items
        for layer in range(2, n_layers + 1):
            layer_users, layer_items = graph.matmul(layer_users, layer_items)
            total_users += weights[layer] * layer_users
            total_items += weights[layer] * layer_items
    total_users[rows.users] += weights[0] * grad_users
    total_items[rows.items] += weights[0] * grad_items
    return total_users, total_items
