r"""Folding a new user into a fitted model: user factors from the items they interacted with.

Every lgrec model scores with :math:`\hat y_{ui} = e_u^\top v_i + w\,m_{ui}` over fixed item
factors :math:`v_i` (:mod:`lgrec.scoring`), so serving a user who was not in training means
finding their :math:`e_u` (and, for RLMultimodalRec, their memory row :math:`m_{u,:}`) from their
item set :math:`N_u` alone, with every trained parameter kept as it is. The models write

.. math::

    e_u = c_u\, x_u + b_u,

with a trainable part :math:`x_u` (the user's layer-0 or ID embedding) and a part fixed by
:math:`N_u`:

- matrix factorisation (BPR-MF, VBPR): :math:`c_u = 1`, :math:`b_u = 0` (VBPR with item biases:
  :math:`b_u` is the constant 1 of the bias column);
- LightGCN-style models (LightGCN, FREEDOM, RLMultimodalRec), see :func:`graph_fold_in`;

and :math:`x_u` is either 0 or fitted by a few full-batch BPR steps (Adam) on the user's own
items with every item factor fixed (:func:`bpr_fold_in`).

Which, measured (``benchmarks/bench_new_users.py``: 10 % of the ML-1M users held out of training,
their test Recall@20 against the same users in a full fit, fits capped at 40 epochs): with
:math:`x_u = 0` LightGCN keeps 93 % and RLMultimodalRec 91 % of the full fit's Recall@20 (BPR-MF,
whose user is all :math:`x_u`, keeps nothing); with the step count chosen on the held-out users'
validation items among 0, 10, 50 and 200 (200, and 10 for VBPR), LightGCN reaches 110 %,
RLMultimodalRec 100 %, FREEDOM 107 %, BPR-MF 97 % and VBPR 90 %.
"""

from __future__ import annotations

import zlib

import numpy as np
import scipy.sparse as sp

from ..kernels import csr_lookup

__all__ = ["bpr_fold_in", "graph_fold_in", "graph_item_layers"]


def graph_item_layers(objective) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a LightGCN-style fold-in needs from a fitted :class:`lgrec.objective.GraphObjective`.

    Returns
    -------
    layers : ndarray of shape (L, n_items, d), float32
        Item embeddings of layers ``0 .. L-1`` on the training graph (:math:`H^{(l)}`).
    degree : ndarray of shape (n_items,), int64
        Training interactions per item.
    weights : ndarray of shape (L + 1,), float32
        The objective's layer weights :math:`\\alpha_l`.
    """
    users, items, _, _ = objective.layer0(None)
    graph = objective.graph
    layers = [np.asarray(items, dtype=np.float32)]
    for _ in range(objective.n_layers - 1):
        users, items = graph.matmul(users, items)
        layers.append(np.asarray(items, dtype=np.float32))
    dim = objective.params["user"].shape[1]
    stacked = np.stack(layers) if layers and objective.n_layers > 0 else np.zeros((0, graph.n_items, dim), np.float32)
    degree = np.diff(graph.r_norm_t.indptr).astype(np.int64)
    return stacked, degree, np.asarray(objective.layer_weights(), dtype=np.float32)


def graph_fold_in(user_items: sp.csr_matrix, layers: np.ndarray, degree: np.ndarray,
                  weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The part of a new user's final embedding fixed by their items, in an L-layer LightGCN.

    The new user :math:`u` joins the training graph with the edges to :math:`N_u`; their row of the
    normalised adjacency is :math:`r_{ui} = 1/\sqrt{|N_u|\,(d_i + 1)}` for :math:`i \in N_u`
    (:math:`d_i` the item's training degree, +1 for the new edge). Item embeddings are kept as
    trained. With :math:`H^{(l)}` the trained item embeddings of layer :math:`l` and
    :math:`x_u` the new user's layer 0,

    .. math::

        (\hat A^l E^{(0)})_u = \sum_i r_{ui}\,\bigl(H^{(l-1)}_i + [l = 2]\, r_{ui}\, x_u\bigr),

    the second term being the path :math:`u \to i \to u`; so

    .. math::

        e_u = \sum_{l=0}^{L} \alpha_l (\hat A^l E^{(0)})_u = c_u x_u + b_u, \qquad
        c_u = \alpha_0 + \alpha_2 \sum_i r_{ui}^2, \qquad
        b_u = \sum_{l=1}^{L} \alpha_l \sum_i r_{ui} H^{(l-1)}_i .

    This is exact for :math:`L \le 2` with the item side frozen; for :math:`L > 2` the longer
    paths that return through :math:`u` (weight :math:`O(r^4)`) are left out.

    Parameters
    ----------
    user_items : scipy.sparse.csr_matrix of shape (n, n_items)
        Binary item sets of the new users.
    layers : ndarray of shape (L, n_items', d), float32
        :math:`H^{(0)} .. H^{(L-1)}` (:func:`graph_item_layers`); items beyond ``n_items'``
        (added after fitting) have zero rows and degree 0.
    degree : ndarray of shape (n_items',), int
    weights : ndarray of shape (L + 1,), float32

    Returns
    -------
    scale : ndarray of shape (n,), float32
        :math:`c_u`.
    base : ndarray of shape (n, d), float32
        :math:`b_u`.
    """
    n, n_items = user_items.shape
    n_known = layers.shape[1]
    deg = np.zeros(n_items, dtype=np.float64)
    deg[:n_known] = degree
    coo = user_items.tocoo()
    size = np.maximum(np.diff(user_items.indptr), 1).astype(np.float64)
    values = 1.0 / np.sqrt(size[coo.row] * (deg[coo.col] + 1.0))
    keep = coo.col < n_known
    r = sp.csr_matrix((values[keep], (coo.row[keep], coo.col[keep])), shape=(n, n_known))
    n_layers = weights.shape[0] - 1
    base = np.zeros((n, layers.shape[2]), dtype=np.float32)
    for layer in range(1, n_layers + 1):
        base += weights[layer] * np.asarray(r @ layers[layer - 1], dtype=np.float32)
    scale = np.full(n, weights[0], dtype=np.float64)
    if n_layers >= 2:
        scale += weights[2] * np.bincount(coo.row, weights=values ** 2, minlength=n)
    return scale.astype(np.float32), base


def bpr_fold_in(user_items: sp.csr_matrix, item_factors: np.ndarray, scale: np.ndarray, base: np.ndarray,
                free: np.ndarray | None, *, n_steps: int, learning_rate: float, regularization: float,
                rng: np.random.Generator, offsets: sp.csr_matrix | None = None,
                offset_weight: float = 0.0) -> np.ndarray:
    r"""Fit the trainable part :math:`x_u` of new users by full-batch BPR with the items fixed.

    Starting from :math:`x_u = 0`, ``n_steps`` Adam steps (:math:`\beta = (0.9, 0.999)`) on

    .. math::

        \mathcal L_u = \frac{1}{|N_u|}\sum_{i \in N_u} \log\bigl(1 + e^{-(s_{ui} - s_{uj_i})}\bigr)
            + \frac{\lambda}{2}\lVert x_u\rVert^2, \qquad
        s_{ui} = (c_u x_u + b_u)^\top v_i + w\, m_{ui},

    one uniformly drawn negative :math:`j_i \notin N_u` per positive and step (a draw that hits
    :math:`N_u` is drawn again once, then kept). Users are independent and all are stepped at
    once; each user's negatives come from a generator seeded by ``rng``'s seed and the user's
    item ids, so a user's result does not depend on the other users of the call.

    Parameters
    ----------
    user_items : scipy.sparse.csr_matrix of shape (n, n_items)
    item_factors : ndarray of shape (n_items, d), float32
    scale : ndarray of shape (n,)
        :math:`c_u`.
    base : ndarray of shape (n, d)
        :math:`b_u`.
    free : ndarray of shape (d,), bool, or None
        Columns of :math:`x_u` that are trained (None: all); the others stay 0.
    n_steps : int
        0 returns :math:`x_u = 0`.
    learning_rate, regularization : float
    rng : numpy.random.Generator
        Draws the negatives.
    offsets : scipy.sparse.csr_matrix of shape (n, n_items) or None
        :math:`m_{u,:}`.
    offset_weight : float
        :math:`w`.

    Returns
    -------
    ndarray of shape (n, d), float32
        :math:`x_u`.
    """
    n, n_items = user_items.shape
    dim = item_factors.shape[1]
    x = np.zeros((n, dim), dtype=np.float32)
    coo = user_items.tocoo()
    rows, pos = coo.row.astype(np.int64), coo.col.astype(np.int64)
    if n_steps == 0 or rows.size == 0:
        return x
    size = np.maximum(np.diff(user_items.indptr), 1).astype(np.float32)
    pair_weight = (1.0 / size)[rows]
    scale = np.asarray(scale, dtype=np.float32)
    mask = np.ones(dim, dtype=np.float32) if free is None else free.astype(np.float32)
    m, v = np.zeros_like(x), np.zeros_like(x)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    pair_index = np.arange(rows.size)
    use_offsets = offsets is not None and offset_weight != 0.0
    if use_offsets:
        offsets = offsets.sorted_indices() if not offsets.has_sorted_indices else offsets
        positive_offset = offset_weight * _lookup(offsets, rows, pos)
    negatives = _negatives(user_items, n_steps, rng)
    for step in range(1, n_steps + 1):
        neg = negatives[step - 1]
        e = scale[:, None] * x + base
        diff = item_factors[pos] - item_factors[neg]
        margin = np.einsum("bd,bd->b", e[rows], diff)
        if use_offsets:
            margin += positive_offset - offset_weight * _lookup(offsets, rows, neg)
        coef = -pair_weight / (1.0 + np.exp(margin))  # d log(1 + exp(-margin)) / d margin, per pair
        grad = np.asarray(sp.csr_matrix((coef, (rows, pair_index)), shape=(n, rows.size)) @ diff)
        grad = (grad * scale[:, None] + regularization * x) * mask
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1 ** step)
        v_hat = v / (1 - beta2 ** step)
        x -= (learning_rate * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)
    return x


def _lookup(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return csr_lookup(matrix.indptr, matrix.indices, matrix.data, rows, cols).astype(np.float32, copy=False)


def _negatives(user_items: sp.csr_matrix, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Negatives of every (step, pair), shape (n_steps, nnz), int64; row-major pairs of ``user_items``."""
    n_items = user_items.shape[1]
    seed = int(rng.integers(2**63 - 1))
    out = np.empty((n_steps, user_items.nnz), dtype=np.int64)
    indptr, indices = user_items.indptr, user_items.indices
    for row in range(user_items.shape[0]):
        own = indices[indptr[row]:indptr[row + 1]]
        if own.size == 0:
            continue
        key = zlib.crc32(np.ascontiguousarray(own, dtype=np.int64).tobytes())
        draws = np.random.default_rng([seed, key, own.size]).integers(0, n_items, size=(2, n_steps, own.size))
        hit = np.isin(draws[0], own)
        out[:, indptr[row]:indptr[row + 1]] = np.where(hit, draws[1], draws[0])
    return out
