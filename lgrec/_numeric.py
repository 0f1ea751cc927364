"""Row L2 normalisation that survives any feature scale."""

from __future__ import annotations

import numpy as np

__all__ = ["unit_rows"]


def unit_rows(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Each row divided by its L2 norm; all-zero rows stay zero. Returns a new array.

    Rows are first divided by their largest absolute entry, so features
    scaled by 1e-30 or 1e30 neither underflow nor overflow the norm, then
    L2-normalised with :func:`sklearn.preprocessing.normalize`.

    Parameters
    ----------
    x : array-like of shape (n, d)
        Not modified.
    dtype : numpy dtype, default=float32

    Returns
    -------
    ndarray of shape (n, d), ``dtype``
    """
    from sklearn.preprocessing import normalize  # lazily: importing scikit-learn sets KMP_* variables

    out = np.array(x, dtype=dtype)
    if out.size == 0:
        return out
    peak = np.max(np.abs(out), axis=1, keepdims=True)
    np.divide(out, peak, out=out, where=peak > 0)
    return normalize(out, copy=False)
