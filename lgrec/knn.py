r"""Item-item k-nearest-neighbour graphs from item features.

Two users: FREEDOM's frozen modality graphs (:func:`modality_graph`) and
RLMultimodalRec's content-neighbour memory (:func:`content_memory`).


For the items that have a modality (a feature row that is not all zeros), with
L2-normalised rows :math:`\bar x_i`, the cosine similarity is
:math:`s_{ij} = \bar x_i^\top \bar x_j`. Every such item keeps its ``k`` most
similar items (itself included, as in LATTICE and FREEDOM: its own similarity
is 1), higher similarity first and ties broken by the lower item id. That gives
a binary, directed adjacency :math:`A` and its symmetric normalisation

.. math::

    \hat S = D^{-1/2} A D^{-1/2}, \qquad D = \operatorname{diag}(A \mathbf 1),

so :math:`\hat S_{ij} = 1 / \sqrt{d_i d_j}` for every kept pair, which is
:math:`1/k` when every item has ``k`` neighbours (MMRec's
``compute_normalized_laplacian``). Items without the modality have no
neighbours and are nobody's neighbour: their rows and columns are empty.

The similarities are computed in blocks of rows (BLAS), and the top-k of each
row is chosen by the Numba kernel :func:`lgrec.kernels.topk_exclude`; no dense
``n_items x n_items`` matrix is held, only ``block_rows x n_with_features``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._numeric import unit_rows
from ._validation import check_float, check_int
from .kernels import topk_exclude

__all__ = ["content_memory", "content_similarity", "keep_columns", "knn_adjacency", "modality_graph",
           "modality_graphs", "neighbor_memory", "symmetric_normalize"]

_BLOCK_ELEMENTS = 1 << 23  # similarities held at once (32 MiB in float32)


def knn_adjacency(features: np.ndarray, k: int = 10, *, block_rows: int | None = None,
                  dtype=np.float32) -> sp.csr_matrix:
    """Binary cosine top-``k`` adjacency of the items that have features.

    Parameters
    ----------
    features : ndarray of shape (n_items, d)
        Item features; an all-zero row marks an item without this modality.
    k : int, default=10
        Neighbours per item (the item itself included). Items with features
        keep ``min(k, n_with_features)`` neighbours.
    block_rows : int, optional
        Rows of similarities computed at once; default: as many as fit in
        2**23 similarities.
    dtype : numpy dtype, default=float32
        Precision of the similarity computation.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items), ``dtype``
        ``A[i, j] = 1`` when ``j`` is among the ``k`` most similar items of
        ``i``; each row's columns are sorted. Rows of items without features
        are empty.
    """
    k = check_int(k, "k", "knn_adjacency", low=1)
    n_items = features.shape[0]
    has = np.flatnonzero(np.any(features != 0, axis=1))
    n_has = has.shape[0]
    kk = min(k, n_has)
    if kk == 0:
        return sp.csr_matrix((n_items, n_items), dtype=dtype)
    if block_rows is None:
        block_rows = max(1, _BLOCK_ELEMENTS // n_has)
    block_rows = check_int(block_rows, "block_rows", "knn_adjacency", low=1)
    unit = unit_rows(features[has], dtype)
    neighbours = np.empty((n_has, kk), dtype=np.int64)
    no_exclusions = np.zeros(block_rows + 1, dtype=np.int64)
    empty = np.empty(0, dtype=np.int32)
    for start in range(0, n_has, block_rows):
        stop = min(start + block_rows, n_has)
        sims = unit[start:stop] @ unit.T
        top = np.empty((stop - start, kk), dtype=sims.dtype)
        topk_exclude(sims, kk, no_exclusions[: stop - start + 1], empty, neighbours[start:stop], top)
    rows = np.repeat(has, kk)
    cols = has[neighbours.ravel()]
    adjacency = sp.csr_matrix((np.ones(rows.shape[0], dtype=dtype), (rows, cols)), shape=(n_items, n_items))
    adjacency.sort_indices()
    return adjacency


def symmetric_normalize(adjacency: sp.csr_matrix) -> sp.csr_matrix:
    """:math:`D^{-1/2} A D^{-1/2}` with :math:`D` the row sums of ``adjacency`` (zero rows stay zero).

    Parameters
    ----------
    adjacency : scipy.sparse.csr_matrix of shape (n, n)
        Non-negative; usually the binary output of :func:`knn_adjacency`.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n, n), dtype of ``adjacency``
    """
    degree = np.asarray(adjacency.sum(axis=1), dtype=np.float64).ravel()
    inv = np.zeros_like(degree)
    np.divide(1.0, np.sqrt(degree), out=inv, where=degree > 0)
    rows = np.repeat(np.arange(adjacency.shape[0]), np.diff(adjacency.indptr))
    values = (adjacency.data * inv[rows] * inv[adjacency.indices]).astype(adjacency.dtype)
    out = sp.csr_matrix((values, adjacency.indices.copy(), adjacency.indptr.copy()), shape=adjacency.shape)
    out.has_sorted_indices = adjacency.has_sorted_indices
    return out


def modality_graph(img_feats: np.ndarray | None, txt_feats: np.ndarray | None, k: int = 10,
                   image_weight: float = 0.1, *, block_rows: int | None = None,
                   dtype=np.float32) -> sp.csr_matrix:
    r"""FREEDOM's frozen item-item graph: normalised kNN graphs of both modalities, mixed.

    .. math::

        S = w_i \hat S_{\mathrm{img}} + (1 - w_i) \hat S_{\mathrm{txt}},

    with :math:`w_i` = ``image_weight`` for items that have both modalities,
    1 for items with an image only and 0 for items with text only (an item
    missing one modality takes its other modality's row at full weight; with
    every item having both this is exactly FREEDOM's mix). With a single
    modality given, :math:`S` is that modality's :math:`\hat S`.

    Parameters
    ----------
    img_feats, txt_feats : ndarray of shape (n_items, d_img) / (n_items, d_txt) or None
        At least one must be given. All-zero rows mark missing modalities.
    k : int, default=10
        Neighbours per item and modality.
    image_weight : float, default=0.1
        Weight of the image graph (FREEDOM's ``mm_image_weight``).
    block_rows : int, optional
        See :func:`knn_adjacency`.
    dtype : numpy dtype, default=float32

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items), ``dtype``
        Row ``i`` holds item ``i``'s weighted neighbours; not symmetric in
        general (the kNN relation is directed).
    """
    check_float(image_weight, "image_weight", "modality_graph", low=0.0, high=1.0)
    given = [f for f in (img_feats, txt_feats) if f is not None]
    if not given:
        raise ValueError("modality_graph needs item features: img_feats and txt_feats are both None.")
    graphs = [symmetric_normalize(knn_adjacency(f, k, block_rows=block_rows, dtype=dtype)) for f in given]
    if len(graphs) == 1:
        return graphs[0]
    has_img = np.any(img_feats != 0, axis=1)
    has_txt = np.any(txt_feats != 0, axis=1)
    w_img = np.where(has_img & has_txt, image_weight, has_img.astype(np.float64))
    mixed = sp.diags(w_img.astype(dtype)) @ graphs[0] + sp.diags((1.0 - w_img).astype(dtype)) @ graphs[1]
    mixed = sp.csr_matrix(mixed, dtype=dtype)
    mixed.eliminate_zeros()
    mixed.sort_indices()
    return mixed


def content_memory(train: sp.csr_matrix, inputs, k: int, image_weight: float = 0.5) -> sp.csr_matrix:
    """The content-neighbour memory :math:`m_{ui}` of every user and item (RLMultimodalRec).

    Item content is the concatenation of the modalities of ``inputs``, each
    L2-normalised and weighted by the square root of its share, then
    L2-normalised; for two items with both modalities
    :math:`s_{ij} = w \\cos_v(i, j) + (1 - w) \\cos_t(i, j)`. :math:`s_{ij}` is
    kept when ``j`` is among the ``k`` most similar other items of ``i``
    (:func:`knn_adjacency`, computed in blocks of items), and

    .. math::

        m_{ui} = \\frac{1}{|N_u|} \\sum_{j \\in N_u} s_{ij}.

    Parameters
    ----------
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
    inputs : lgrec.fusion.FusionInputs
        Item features in compact form (only the items that have a modality).
    k : int
    image_weight : float, default=0.5
        :math:`w`, weight of the image cosine (the text gets :math:`1 - w`);
        0.5 is the plain concatenation of the two unit vectors.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_users, n_items), float32
        Row ``u`` is :math:`\\frac{1}{|N_u|} \\sum_{j \\in N_u} s_{\\cdot j}`; indices sorted within rows.
    """
    return neighbor_memory(train, content_similarity(inputs, k, image_weight))


def content_similarity(inputs, k: int, image_weight: float = 0.5) -> sp.csr_matrix:
    """The kept similarities :math:`s_{ij}` of :func:`content_memory`, shape (n_items, n_items), float32."""
    n_content = inputs.items.shape[0]
    blocks = []
    for values, pos, share in ((inputs.image, inputs.image_pos, image_weight),
                               (inputs.text, inputs.text_pos, 1.0 - image_weight)):
        if values is not None:
            block = np.zeros((n_content, values.shape[1]), dtype=np.float32)
            block[pos] = unit_rows(values) * np.float32(np.sqrt(share))
            blocks.append(block)
    content = unit_rows(np.hstack(blocks))
    adjacency = knn_adjacency(content, min(k + 1, n_content))
    adjacency.setdiag(0)
    adjacency.eliminate_zeros()
    rows = np.repeat(np.arange(n_content), np.diff(adjacency.indptr))
    cosine = np.einsum("ij,ij->i", content[rows], content[adjacency.indices]).astype(np.float32)
    items = inputs.items
    return sp.csr_matrix((cosine, (items[rows], items[adjacency.indices])), shape=(inputs.n_items,) * 2)


def neighbor_memory(train: sp.csr_matrix, similar: sp.csr_matrix) -> sp.csr_matrix:
    """:math:`m_{ui} = \\frac{1}{|N_u|}\\sum_{j \\in N_u} s_{ij}` for the rows of ``train`` (n, n_items), float32."""
    degree = np.maximum(np.diff(train.indptr), 1).astype(np.float32)
    memory = sp.csr_matrix(sp.diags(1.0 / degree) @ train @ similar.T, dtype=np.float32)
    memory.sort_indices()  # csr_lookup searches each row
    return memory


def keep_columns(matrix: sp.csr_matrix, mask: np.ndarray) -> sp.csr_matrix:
    """``matrix`` with the columns outside ``mask`` removed from its stored entries (same shape).

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix of shape (n, m)
    mask : ndarray of shape (m,), bool
        Columns kept.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n, m), dtype of ``matrix``; indices sorted within rows.
    """
    kept = sp.csr_matrix(matrix @ sp.diags(mask.astype(matrix.dtype)), dtype=matrix.dtype)
    kept.eliminate_zeros()
    kept.sort_indices()
    return kept


def modality_graphs(inputs, k: int = 10) -> dict[str, sp.csr_matrix]:
    """One normalised kNN graph :math:`\\hat S_m` per modality of compact item features (RLMultimodalRec).

    The graphs of :func:`modality_graph` before they are mixed: every item that
    has modality ``m`` keeps its ``k`` most similar items by that modality's
    cosine (itself included), then :func:`symmetric_normalize`.

    Parameters
    ----------
    inputs : lgrec.fusion.FusionInputs
        Item features in compact form (only the items that have a modality).
    k : int, default=10

    Returns
    -------
    dict of str to scipy.sparse.csr_matrix of shape (n_items, n_items), float32
        ``"image"`` and/or ``"text"``, for the modalities present; rows and
        columns of items without the modality are empty.
    """
    graphs = {}
    for name, values, pos in (("image", inputs.image, inputs.image_pos), ("text", inputs.text, inputs.text_pos)):
        if values is None or values.shape[0] == 0:
            continue
        compact = symmetric_normalize(knn_adjacency(values, k))
        ids = inputs.items[pos]
        rows = np.repeat(ids, np.diff(compact.indptr))
        graph = sp.csr_matrix((compact.data, (rows, ids[compact.indices])), shape=(inputs.n_items,) * 2)
        graph.sort_indices()
        graphs[name] = graph
    return graphs
