r"""Two honest floors every comparison includes: popularity and a content profile.

Both are expressed as dot products of user and item factors like every lgrec
model, so ranking, evaluation and persistence are shared.
"""

from __future__ import annotations

import numpy as np

from .._numeric import unit_rows
from .._base import check_is_fitted
from .._validation import check_features
from ..scoring import FactorScorer
from ._base import Recommender, check_fit_data

__all__ = ["ContentKNN", "Popularity", "normalized_content"]


class Popularity(Recommender):
    """Rank items by their number of training interactions (ties: lower item id first).

    Parameters
    ----------
    verbose : bool, default=False
        Accepted for a uniform interface; nothing is printed.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, 1), float32
        All ones.
    item_factors_ : ndarray of shape (n_items, 1), float32
        Training interaction count of each item.
    history_ : list
        Empty (nothing is trained iteratively).
    """

    def __init__(self, verbose: bool = False):
        self.verbose = verbose

    def fit(self, interactions, img_feats=None, txt_feats=None, *, valid=None):
        """Count interactions per item; features and ``valid`` are ignored.

        Returns
        -------
        self
        """
        self._check_params()
        train, _ = check_fit_data(interactions, valid)
        counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
        self.user_factors_ = np.ones((train.shape[0], 1), dtype=np.float32)
        self.item_factors_ = counts[:, None]
        self.history_ = []
        return self

    def new_user_scorer(self, user_items, **fold_in) -> FactorScorer:
        """Exact: every user, new or not, gets the same popularity scores (``fold_in`` is ignored)."""
        check_is_fitted(self)
        matrix, _ = self._new_user_items(user_items)
        return FactorScorer(np.ones((matrix.shape[0], 1), dtype=np.float32), self.item_factors_)



def normalized_content(img_feats: np.ndarray | None, txt_feats: np.ndarray | None, n_items: int,
                       chunk_rows: int = 65536) -> np.ndarray:
    """Concatenate image and text features after L2-normalising each row of each modality.

    Parameters
    ----------
    img_feats : ndarray of shape (n_items, d_img) or None
    txt_feats : ndarray of shape (n_items, d_txt) or None
    n_items : int
    chunk_rows : int, default=65536
        Rows normalised at once (bounds temporary memory).

    Returns
    -------
    ndarray of shape (n_items, d_img + d_txt), float32
        All-zero rows stay all-zero (a missing modality contributes nothing).
        ``img_feats`` and ``txt_feats`` are not modified.
    """
    blocks = [f for f in (img_feats, txt_feats) if f is not None]
    out = np.zeros((n_items, sum(b.shape[1] for b in blocks)), dtype=np.float32)
    col = 0
    for block in blocks:
        width = block.shape[1]
        for start in range(0, n_items, chunk_rows):
            out[start : start + chunk_rows, col : col + width] = unit_rows(block[start : start + chunk_rows])
        col += width
    return out


class ContentKNN(Recommender):
    """Content profile: cosine between a user's summed item features and each item's features.

    Each modality is L2-normalised per item and the modalities are
    concatenated; a user's profile is the sum of the vectors of the items
    they interacted with in training; the score of an item is the cosine
    between the profile and the item's vector. Items without features score 0.
    It needs no training interactions for an item, so it ranks cold items.

    Parameters
    ----------
    verbose : bool, default=False
        Accepted for a uniform interface; nothing is printed.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, d), float32
        L2-normalised user profiles.
    item_factors_ : ndarray of shape (n_items, d), float32
        L2-normalised item vectors (``d = d_img + d_txt``).
    history_ : list
        Empty.
    """

    requires_features = True
    uses_features = True

    def __init__(self, verbose: bool = False):
        self.verbose = verbose

    def fit(self, interactions, img_feats=None, txt_feats=None, *, valid=None):
        """Build profiles from the training interactions and the item features.

        Raises
        ------
        ValueError
            When both ``img_feats`` and ``txt_feats`` are None.

        Returns
        -------
        self
        """
        self._check_params()
        train, _ = check_fit_data(interactions, valid)
        n_items = train.shape[1]
        img = check_features(img_feats, "img_feats", n_items)
        txt = check_features(txt_feats, "txt_feats", n_items)
        if img is None and txt is None:
            raise ValueError("ContentKNN needs item features: img_feats and txt_feats are both None.")
        items = unit_rows(normalized_content(img, txt, n_items))
        self.user_factors_ = unit_rows(train @ items)
        self.item_factors_ = items
        self.history_ = []
        return self

    def new_user_scorer(self, user_items, **fold_in) -> FactorScorer:
        """Exact: the new users' profiles from their items, as in ``fit`` (``fold_in`` is ignored)."""
        check_is_fitted(self)
        matrix, _ = self._new_user_items(user_items)
        return FactorScorer(unit_rows(matrix @ self.item_factors_), self.item_factors_)
