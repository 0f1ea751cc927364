r"""Scores of every lgrec model: user factors times item factors, plus an optional fixed sparse term.

.. math::

    S_{u,:} = U_u V^\top + w\, M_{u,:},

where :math:`M` is a sparse (n_users x n_items) matrix of fixed score terms
(RLMultimodalRec's content-neighbour memory; None for the other models) and
:math:`w` its weight. Training validation, :meth:`Recommender.score_users` and
evaluation all score through :class:`FactorScorer`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["FactorScorer"]


class FactorScorer:
    """Scores :math:`U_b V^\\top + w M_b` for blocks of users.

    Parameters
    ----------
    user_factors : ndarray of shape (n_users, d)
    item_factors : ndarray of shape (n_items, d)
    sparse : scipy.sparse.csr_matrix of shape (n_users, n_items') or None
        Fixed score terms; ``n_items' <= n_items`` (items appended after
        the matrix was built get no term).
    sparse_weight : float, default=1.0
        :math:`w`.
    """

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray,
                 sparse: sp.csr_matrix | None = None, sparse_weight: float = 1.0):
        self.user_factors_ = user_factors
        self.item_factors_ = item_factors
        self.n_users_, self.n_items_ = user_factors.shape[0], item_factors.shape[0]
        self.sparse = sparse
        self.sparse_weight = sparse_weight

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores of all items for some users.

        Parameters
        ----------
        users : ndarray of shape (b,), int

        Returns
        -------
        ndarray of shape (b, n_items), dtype of the factors
        """
        scores = self.user_factors_[users] @ self.item_factors_.T
        if self.sparse is not None and self.sparse_weight != 0.0:
            block = self.sparse[users]
            block.data *= block.data.dtype.type(self.sparse_weight)
            scores[:, : block.shape[1]] += block.toarray()
        return scores
