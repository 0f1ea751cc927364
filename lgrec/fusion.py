r"""Gated image/text fusion with hand-written gradients.

For an item with image features :math:`x_v` and text features :math:`x_t`:

.. math::

    h_v = x_v W_v + b_v, \qquad h_t = x_t W_t + b_t, \qquad
    g = \sigma\bigl([h_v, h_t] W_g + b_g\bigr), \qquad
    f = g \odot h_v + (1 - g) \odot h_t,

with :math:`W_v \in \mathbb R^{d_v \times d}`, :math:`W_t \in \mathbb R^{d_t \times d}`,
:math:`W_g \in \mathbb R^{2d \times d}`: a gate per item and per dimension. An
item without image uses its text only (:math:`g = 0`), one without text its
image only (:math:`g = 1`), one with neither has :math:`f = 0`. With
``fixed_gate`` the gate is a constant (the "average" ablation uses 0.5).

Work is proportional to the items that have features: inputs are stored
compactly (:class:`FusionInputs`), only their rows are projected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ._numeric import unit_rows

__all__ = ["FusionInputs", "fusion_backward", "fusion_forward", "init_fusion_params", "prepare_features"]


@dataclass(frozen=True)
class FusionInputs:
    """Item features in compact form: only the items that have a modality are stored.

    Attributes
    ----------
    n_items : int
        Catalogue size.
    items : ndarray of shape (n_content,), int64
        Items with at least one modality, ascending.
    image : ndarray of shape (n_image, d_v) or None
        Image rows (of the items ``items[image_pos]``).
    image_pos : ndarray of shape (n_image,), int64
        Position in ``items`` of each image row.
    text : ndarray of shape (n_text, d_t) or None
    text_pos : ndarray of shape (n_text,), int64
    both : ndarray of shape (n_content,), bool
        Items (positions) that have both modalities: the only ones with a learned gate.
    image_only : ndarray of shape (n_content,), bool
        Items with an image but no text (gate fixed at 1).
    """

    n_items: int
    items: np.ndarray
    image: np.ndarray | None
    image_pos: np.ndarray
    text: np.ndarray | None
    text_pos: np.ndarray
    both: np.ndarray
    image_only: np.ndarray

    @property
    def image_dim(self) -> int:
        return 0 if self.image is None else self.image.shape[1]

    @property
    def text_dim(self) -> int:
        return 0 if self.text is None else self.text.shape[1]

    def input_norms(self) -> tuple[float, float]:
        """Root mean square row norms of the stored image and text rows (1.0 when absent)."""
        def rms(x):
            return 1.0 if x is None or x.shape[0] == 0 else float(np.sqrt(np.mean(np.einsum("ij,ij->i", x, x))))
        return rms(self.image), rms(self.text)

    def present(self, modality: str) -> np.ndarray:
        """Boolean mask of shape (n_items,): items that have ``modality`` ("image" or "text")."""
        mask = np.zeros(self.n_items, dtype=bool)
        pos = self.image_pos if modality == "image" else self.text_pos
        mask[self.items[pos]] = True
        return mask


def _present_rows(features: np.ndarray | None, chunk_rows: int = 65536) -> np.ndarray:
    """Item ids whose feature row is not all zero."""
    if features is None:
        return np.empty(0, dtype=np.int64)
    found = [start + np.flatnonzero(np.any(features[start : start + chunk_rows] != 0, axis=1))
             for start in range(0, features.shape[0], chunk_rows)]
    return np.concatenate(found).astype(np.int64) if found else np.empty(0, dtype=np.int64)


def scaling_stats(features: np.ndarray, rows: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-column mean and standard deviation over the present rows (for ``scaling="standard"``)."""
    if scaling != "standard" or rows.size == 0:
        return None
    x = np.asarray(features[rows], dtype=np.float64)
    std = x.std(axis=0)
    return x.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def scale_rows(x: np.ndarray, scaling: str, stats=None) -> np.ndarray:
    """Apply the input scaling to present feature rows; returns a new float32 array.

    ``"l2"``: each row divided by its L2 norm; ``"standard"``: ``(x - mean) / std``
    with the training statistics ``stats``; ``"none"``: unchanged.
    """
    if scaling == "l2":
        return unit_rows(x)
    x = np.array(x, dtype=np.float32)
    if scaling == "standard" and x.shape[0]:
        mean, std = stats
        x -= mean
        x /= std
    return x


def prepare_features(img_feats, txt_feats, n_items: int, scaling: str = "l2", stats=None) -> tuple[FusionInputs, dict]:
    """Compact, scaled float32 copies of the present feature rows.

    Only rows that are not all zero are copied (and converted to float32 once),
    so float16 or float64 catalogues are never duplicated whole.

    Parameters
    ----------
    img_feats : ndarray of shape (n_items, d_v) or None
    txt_feats : ndarray of shape (n_items, d_t) or None
    n_items : int
    scaling : {"l2", "standard", "none"}, default="l2"
    stats : dict, optional
        Scaling statistics from an earlier call (to prepare new items exactly
        like the training items); computed from these features when None.

    Returns
    -------
    inputs : FusionInputs
    stats : dict
        ``{"image": (mean, std) or None, "text": ...}``.
    """
    rows = {"image": _present_rows(img_feats), "text": _present_rows(txt_feats)}
    if stats is None:
        stats = {
            "image": None if img_feats is None else scaling_stats(img_feats, rows["image"], scaling),
            "text": None if txt_feats is None else scaling_stats(txt_feats, rows["text"], scaling),
        }
    items = np.union1d(rows["image"], rows["text"]).astype(np.int64)
    has_image = np.isin(items, rows["image"])
    has_text = np.isin(items, rows["text"])
    inputs = FusionInputs(
        n_items=n_items,
        items=items,
        image=None if img_feats is None else scale_rows(img_feats[rows["image"]], scaling, stats["image"]),
        image_pos=np.searchsorted(items, rows["image"]),
        text=None if txt_feats is None else scale_rows(txt_feats[rows["text"]], scaling, stats["text"]),
        text_pos=np.searchsorted(items, rows["text"]),
        both=has_image & has_text,
        image_only=has_image & ~has_text,
    )
    return inputs, stats


def init_fusion_params(rng: np.random.Generator, image_dim: int, text_dim: int, dim: int,
                       dtype=np.float32, projection: str = "glorot",
                       input_norms: tuple[float, float] = (1.0, 1.0)) -> dict[str, np.ndarray]:
    r"""Initial projections and gate (Glorot-uniform gate, zero biases).

    Parameters
    ----------
    rng : numpy.random.Generator
    image_dim, text_dim : int
        Input dimensions (0 for an absent modality).
    dim : int
        Embedding size.
    dtype : numpy dtype, default=float32
    projection : {"glorot", "isometric"}, default="glorot"
        ``"glorot"``: Glorot-uniform projections. ``"isometric"``: Gaussian
        entries with variance :math:`1 / (d\,\overline{\lVert x\rVert^2})`, a
        Johnson-Lindenstrauss map under which inner products of inputs are
        preserved in expectation and projected vectors have unit mean square
        norm, so content starts as a faithful, well-scaled copy of the feature
        similarities.
    input_norms : tuple of float, default=(1.0, 1.0)
        Root mean square row norms of the image and text inputs (used by ``"isometric"``).

    Returns
    -------
    dict
        ``W_v`` (image_dim, dim), ``b_v`` (dim,), ``W_t`` (text_dim, dim), ``b_t``,
        ``W_g`` (2 dim, dim), ``b_g`` — only the entries of the modalities present.
    """
    def glorot(fan_in, fan_out):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(dtype)

    def project(fan_in, norm):
        if projection == "glorot":
            return glorot(fan_in, dim)
        return (rng.standard_normal((fan_in, dim)) / (np.sqrt(dim) * max(norm, 1e-12))).astype(dtype)

    params = {}
    if image_dim:
        params["W_v"], params["b_v"] = project(image_dim, input_norms[0]), np.zeros(dim, dtype)
    if text_dim:
        params["W_t"], params["b_t"] = project(text_dim, input_norms[1]), np.zeros(dim, dtype)
    if image_dim and text_dim:
        params["W_g"], params["b_g"] = glorot(2 * dim, dim), np.zeros(dim, dtype)
    return params


def fusion_forward(params: dict[str, np.ndarray], inputs: FusionInputs,
                   fixed_gate: float | None = None) -> tuple[np.ndarray, tuple]:
    """Fused content of the items that have features.

    Parameters
    ----------
    params : dict
        From :func:`init_fusion_params` (float32 in training, float64 in checks).
    inputs : FusionInputs
    fixed_gate : float, optional
        Use this constant gate for items with both modalities instead of the learned one.

    Returns
    -------
    fused : ndarray of shape (n_content, d)
        :math:`f` for ``inputs.items`` (in that order).
    cache : tuple
        What :func:`fusion_backward` needs; ``cache[0]`` is the gate of shape (n_content, d).
    """
    n = inputs.items.shape[0]
    some = params.get("W_v", params.get("W_t"))
    dim, dtype = some.shape[1], some.dtype
    h_v = np.zeros((n, dim), dtype)
    h_t = np.zeros((n, dim), dtype)
    if inputs.image is not None:
        h_v[inputs.image_pos] = inputs.image @ params["W_v"] + params["b_v"]
    if inputs.text is not None:
        h_t[inputs.text_pos] = inputs.text @ params["W_t"] + params["b_t"]
    gate = np.zeros((n, dim), dtype)
    gate[inputs.image_only] = 1.0
    both = inputs.both
    concat = None
    if both.any():
        if fixed_gate is None:
            concat = np.concatenate([h_v[both], h_t[both]], axis=1)
            gate[both] = expit(concat @ params["W_g"] + params["b_g"])
        else:
            gate[both] = fixed_gate
    fused = gate * h_v + (1 - gate) * h_t
    return fused, (gate, h_v, h_t, concat, fixed_gate)


def fusion_backward(d_fused: np.ndarray, params: dict[str, np.ndarray], inputs: FusionInputs,
                    cache: tuple, d_gate: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Gradients of the fusion parameters from the gradient of its output (and of its gate).

    Parameters
    ----------
    d_fused : ndarray of shape (n_content, d)
        Gradient with respect to ``fused``.
    params, inputs, cache
        As given to / returned by :func:`fusion_forward`.
    d_gate : ndarray of shape (n_content, d), optional
        Gradient with respect to the gate ``cache[0]`` where it is used outside the
        fusion too (only the rows of items with both modalities matter: the others'
        gates are constants).

    Returns
    -------
    dict
        Gradients keyed like ``params``.
    """
    gate, h_v, h_t, concat, fixed_gate = cache
    d_hv = gate * d_fused
    d_ht = (1 - gate) * d_fused
    grads = {}
    both = inputs.both
    if "W_g" in params:
        if concat is not None:
            g = gate[both]
            d_g = d_fused[both] * (h_v[both] - h_t[both])
            if d_gate is not None:
                d_g += d_gate[both]
            d_z = d_g * g * (1 - g)
            grads["W_g"] = concat.T @ d_z
            grads["b_g"] = d_z.sum(axis=0)
            d_concat = d_z @ params["W_g"].T
            dim = gate.shape[1]
            d_hv[both] += d_concat[:, :dim]
            d_ht[both] += d_concat[:, dim:]
        else:
            grads["W_g"] = np.zeros_like(params["W_g"])
            grads["b_g"] = np.zeros_like(params["b_g"])
    if inputs.image is not None:
        rows = d_hv[inputs.image_pos]
        grads["W_v"] = inputs.image.T @ rows
        grads["b_v"] = rows.sum(axis=0)
    if inputs.text is not None:
        rows = d_ht[inputs.text_pos]
        grads["W_t"] = inputs.text.T @ rows
        grads["b_t"] = rows.sum(axis=0)
    return grads
