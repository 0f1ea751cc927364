r"""BPR loss and L2 regularisation with hand-written gradients.

For a batch of :math:`B` triplets :math:`(u, i, j)` with user, positive and
negative vectors :math:`e_u, e_i, e_j` (rows of the arrays below):

.. math::

    x_{uij} = e_u^\top (e_i - e_j), \qquad
    \mathcal L_{\mathrm{BPR}} = \frac{1}{B} \sum_{b=1}^{B} \log\bigl(1 + e^{-x_b}\bigr),
    \qquad
    \mathcal L_{2} = \frac{\lambda}{2B} \sum_{b=1}^{B}
        \bigl(\lVert e^{(0)}_{u_b}\rVert^2 + \lVert e^{(0)}_{i_b}\rVert^2 + \lVert e^{(0)}_{j_b}\rVert^2\bigr).

:math:`\log(1 + e^{-x})` is computed as ``np.logaddexp(0, -x)`` (stable for any
:math:`x`), and :math:`\partial/\partial x = -\sigma(-x)`. The regulariser is
the squared L2 norm of the layer-0 rows the batch touches, as in the LightGCN
paper (MMRec divides the unsquared Frobenius norm by the batch size instead;
with the small weights used here the two behave alike).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

__all__ = ["bpr_backward", "bpr_forward", "l2_backward", "l2_forward"]


def bpr_forward(user: np.ndarray, pos: np.ndarray, neg: np.ndarray,
                offset: np.ndarray | None = None) -> tuple[float, tuple]:
    """Mean BPR loss of a batch.

    Parameters
    ----------
    user, pos, neg : ndarray of shape (B, d)
        Final user, positive-item and negative-item vectors.
    offset : ndarray of shape (B,), optional
        Added to each margin :math:`x_b` (score terms without parameters).

    Returns
    -------
    loss : float
    cache : tuple
        What :func:`bpr_backward` needs.
    """
    diff = pos - neg
    x = np.einsum("bd,bd->b", user, diff)
    if offset is not None:
        x = x + offset
    loss = float(np.mean(np.logaddexp(0.0, -x)))
    return loss, (user, diff, x)


def bpr_backward(cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`bpr_forward`'s loss.

    Returns
    -------
    d_user, d_pos, d_neg : ndarray of shape (B, d)
        Gradients with respect to ``user``, ``pos`` and ``neg``.
    """
    user, diff, x = cache
    dx = (-expit(-x) / x.shape[0]).astype(user.dtype, copy=False)[:, None]
    d_user = dx * diff
    d_pos = dx * user
    return d_user, d_pos, -d_pos


def l2_forward(weight: float, batch_size: int, *rows: np.ndarray) -> float:
    """:math:`\\frac{\\lambda}{2B}\\sum \\lVert r \\rVert^2` over the given row blocks."""
    return float(weight / (2.0 * batch_size) * sum(float(np.vdot(r, r)) for r in rows))


def l2_backward(weight: float, batch_size: int, rows: np.ndarray) -> np.ndarray:
    """Gradient of :func:`l2_forward` with respect to one row block: :math:`\\lambda r / B`."""
    return rows * rows.dtype.type(weight / batch_size)
