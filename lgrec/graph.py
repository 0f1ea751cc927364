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

    E = \frac{1}{L + 1} \sum_{l=0}^{L} \hat A^{l} E^{(0)} .

:math:`\hat A` is symmetric, so the same map is its own adjoint: the gradient
with respect to :math:`E^{(0)}` is ``propagate(graph, dE)`` (``tests/test_graph.py``
checks :math:`\langle \hat A x, y \rangle = \langle x, \hat A y \rangle`).

The products run on scipy.sparse CSR matrices. Because the graph is bipartite,
:math:`\hat A X` splits into the two independent products :math:`\tilde R X_i`
and :math:`\tilde R^\top X_u`; they run on two threads (scipy releases the GIL
inside its sparse kernels), which halves the wall time on two cores.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["BipartiteGraph", "normalized_adjacency", "propagate"]


@functools.lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    """The two-worker pool shared by all graphs (created on first use)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="lgrec-spmm")


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
        Run the two block products on two threads.
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
        if self.threaded:
            users_future = _executor().submit(self.r_norm.__matmul__, items)
            new_items = self.r_norm_t @ users
            return users_future.result(), new_items
        return self.r_norm @ items, self.r_norm_t @ users

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
        Run the two block products on two threads; default: when more than
        one CPU is available.

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


def propagate(
    graph: BipartiteGraph, users: np.ndarray, items: np.ndarray, n_layers: int
) -> tuple[np.ndarray, np.ndarray]:
    """LightGCN layer mean :math:`\\frac{1}{L+1}\\sum_{l=0}^{L} \\hat A^l x`, ``x = [users; items]``.

    Linear and self-adjoint: it is also the backward pass (apply it to the
    gradients with respect to the outputs to get the gradients with respect
    to the inputs).

    Parameters
    ----------
    graph : BipartiteGraph
    users : ndarray of shape (n_users, d)
        Layer-0 user embeddings.
    items : ndarray of shape (n_items, d)
        Layer-0 item embeddings.
    n_layers : int
        Number of propagation layers ``L`` (0 returns copies of the inputs).

    Returns
    -------
    users_out : ndarray of shape (n_users, d), dtype of ``users``
    items_out : ndarray of shape (n_items, d), dtype of ``items``
    """
    if n_layers == 0:
        return users.copy(), items.copy()
    layer_users, layer_items = graph.matmul(users, items)
    total_users, total_items = users + layer_users, items + layer_items
    for _ in range(n_layers - 1):
        layer_users, layer_items = graph.matmul(layer_users, layer_items)
        total_users += layer_users
        total_items += layer_items
    scale = users.dtype.type(1.0 / (n_layers + 1))
    total_users *= scale
    total_items *= scale
    return total_users, total_items
