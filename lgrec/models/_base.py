"""What every lgrec recommender shares: scoring, ``recommend``, save and load, and its tags.

A fitted model scores user ``u`` and item ``i`` with the dot product
``user_factors_[u] @ item_factors_[i]`` (plus, for RLMultimodalRec, a fixed
sparse term; :class:`lgrec.scoring.FactorScorer`); every model (also the
popularity and content baselines) is expressed that way, so ranking,
evaluation and persistence are written once.

Class-level tags say what an estimator does with item features, for the code
that chooses what to pass it (``lgrec compare``, the CLI, the tests):
``requires_features`` (refuses to fit without them) and ``uses_features``
(reads them at all; the collaborative models ignore them).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from .._base import BaseEstimator, check_is_fitted
from .._validation import (
    check_allocation,
    check_bool,
    check_float,
    check_int,
    check_interactions,
    check_item_ids,
    check_k,
    check_user_ids,
    warn_empty_rows,
)
from ..evaluation import rank_blocks
from ..persistence import Array, Value, load_model, save_model
from ..scoring import FactorScorer
from ..training import TripletSampler, train

__all__ = ["Recommender", "check_fit_data", "check_training_params", "single_blas_thread", "xavier_normal",
           "xavier_uniform"]

#: Learned state every model saves (see :mod:`lgrec.persistence`): symbols U users, I items, F factor width.
FACTOR_STATE = {"user_factors_": Array(("U", "F")), "item_factors_": Array(("I", "F")), "history_": Value("history")}
#: ... and what the BPR training loop adds.
TRAINED_STATE = {"best_epoch_": Value("count"), "batch_size_": Value("positive")}
#: ... and the layer-0 ID embeddings of the graph models (E: ``embedding_size``).
EMBEDDING_STATE = {"user_embeddings_": Array(("U", "E")), "item_embeddings_": Array(("I", "E"))}


class Recommender(BaseEstimator):
    """Base class: dot-product scoring over learned ``user_factors_`` and ``item_factors_``.

    Attributes
    ----------
    requires_features : bool
        Class tag: ``fit`` refuses to run without item features.
    uses_features : bool
        Class tag: ``fit`` reads item features (False: they are ignored).
    """

    requires_features = False
    uses_features = False
    #: Learned attributes a saved model may hold, and what each must look like (:mod:`lgrec.persistence`):
    #: ``load`` refuses any other name. A subclass that learns a new attribute declares it here.
    _saved_state = FACTOR_STATE

    def _check_params(self) -> None:
        """Validate the hyperparameters (called by ``fit`` and by ``load``)."""
        check_bool(self.verbose, "verbose", type(self).__name__)

    def _scorer(self) -> FactorScorer:
        """The fitted model's scores (subclasses add fixed score terms)."""
        return FactorScorer(self.user_factors_, self.item_factors_)

    def score_users(self, user_ids) -> np.ndarray:
        """Scores of all items for some users.

        Parameters
        ----------
        user_ids : ndarray of shape (b,), int

        Returns
        -------
        ndarray of shape (b, n_items), float32
        """
        check_is_fitted(self)
        users, _ = check_user_ids(user_ids, self.n_users_, "user_ids")
        return self._scorer().score_users(users)

    @property
    def n_users_(self) -> int:
        check_is_fitted(self)
        return self.user_factors_.shape[0]

    @property
    def n_items_(self) -> int:
        check_is_fitted(self)
        return self.item_factors_.shape[0]

    def recommend(
        self,
        userid,
        user_items=None,
        k: int = 10,
        filter_already_liked_items: bool = True,
        filter_items=None,
        items=None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for one user or a batch of users (implicit's shape).

        Parameters
        ----------
        userid : int or array-like of shape (n,)
            User id(s).
        user_items : scipy.sparse matrix of shape (n, n_items), optional
            The interactions of exactly these users, one row per id in
            ``userid`` (as in implicit: pass ``train[userid]``). Required when
            ``filter_already_liked_items`` is True.
        k : int, default=10
            Number of items per user.
        filter_already_liked_items : bool, default=True
            Never recommend an item of the user's ``user_items`` row.
        filter_items : array-like of int, optional
            Item ids never recommended to anyone. Applied as one shared mask on
            each block of scores (memory independent of the number of users).
        items : array-like of int, optional
            Candidate item ids; only these are ranked (ids returned are item ids,
            not positions in ``items``).

        Returns
        -------
        ids : ndarray of shape (k,) or (n, k), int64
            Recommended item ids, best first. A row with fewer than ``k``
            candidates is padded with ``-1``.
        scores : ndarray of shape (k,) or (n, k), float32
            Their scores; padding is ``-inf``.
        """
        check_is_fitted(self)
        n_items = self.n_items_
        k = check_k(k, "k", n_items)
        users, scalar = check_user_ids(userid, self.n_users_)
        check_bool(filter_already_liked_items, "filter_already_liked_items", "recommend")
        check_allocation(users.shape[0] * k * 12, f"the result of recommend for {users.shape[0]} users and k={k}")
        if users.shape[0] == 0:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
        candidates = None if items is None else check_item_ids(items, n_items, "items")
        if candidates is not None and candidates.size == 0:
            raise ValueError("items is empty: give at least one candidate item id (or items=None for all items).")
        blocked = None if filter_items is None else check_item_ids(filter_items, n_items, "filter_items")
        excluded = self._excluded(users, user_items, filter_already_liked_items, n_items)
        scorer = self._scorer()
        if candidates is not None:
            position = np.full(n_items, -1, dtype=np.int64)
            position[candidates] = np.arange(candidates.shape[0])
            excluded = _remap_columns(excluded, position, candidates.shape[0])
            if blocked is not None:
                blocked = position[blocked]
                blocked = blocked[blocked >= 0]

        def score(block):
            scores = scorer.score_users(block)
            if candidates is not None:
                scores = scores[:, candidates]
            if blocked is not None:
                scores[:, blocked] = np.nan  # the top-k kernels never select NaN: one shared mask, no (n, m) matrix
            return scores

        local = np.arange(users.shape[0])
        ids_all = np.empty((users.shape[0], k), dtype=np.int64)
        scores_all = np.empty((users.shape[0], k), dtype=np.float32)
        for block, ids, top in rank_blocks(lambda rows: score(users[rows]), local, k, excluded):
            ids_all[block] = ids if candidates is None else np.where(ids >= 0, candidates[ids], -1)
            scores_all[block] = top
        if scalar:
            return ids_all[0], scores_all[0]
        return ids_all, scores_all

    def _excluded(self, users, user_items, filter_liked, n_items) -> sp.csr_matrix:
        """Per-row excluded items (the users' seen items) of a recommend call as a canonical CSR (n, n_items)."""
        n = users.shape[0]
        excluded = sp.csr_matrix((n, n_items), dtype=np.float32)
        if filter_liked:
            if user_items is None:
                raise ValueError(
                    "filter_already_liked_items=True needs user_items, the interaction rows of these "
                    "users (e.g. train[userid]); pass filter_already_liked_items=False to rank seen items too."
                )
            liked = check_interactions(user_items, "user_items", allow_empty=True)
            if liked.shape != (n, n_items):
                raise ValueError(
                    f"user_items must have one row per requested user and {n_items} item columns, i.e. "
                    f"shape ({n}, {n_items}); got {liked.shape}. Pass user_items[userid] rather than "
                    "the whole matrix."
                )
            return liked
        return excluded

    def _train(self, objective, train_matrix: sp.csr_matrix, valid, rng: np.random.Generator) -> None:
        """Run the BPR training loop on ``objective`` with this model's hyperparameters.

        Sets ``history_`` and ``best_epoch_``; the objective's parameters are
        left at the best validation epoch (see :func:`lgrec.training.train`).
        """
        result = train(
            objective, TripletSampler(train_matrix), rng=rng, learning_rate=self.learning_rate,
            batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
            valid=valid, exclude=train_matrix, verbose=self.verbose, owner=type(self).__name__,
        )
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.batch_size_ = result.batch_size

    def save(self, path) -> str:
        """Save the fitted model to an ``.npz`` file (no pickle); returns the path written."""
        check_is_fitted(self)
        return save_model(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved with :meth:`save`; the file must hold a ``cls``."""
        return load_model(cls, path)

    def _check_loaded_state(self) -> None:
        """Model-specific checks of a loaded state beyond :attr:`_saved_state` (raise ValueError)."""
        check_is_fitted(self)


def _remap_columns(matrix: sp.csr_matrix, position: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """Keep the columns with ``position >= 0`` and renumber them to ``position``."""
    coo = matrix.tocoo()
    new_cols = position[coo.col]
    keep = new_cols >= 0
    remapped = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], new_cols[keep])), shape=(matrix.shape[0], n_cols)
    )
    return check_interactions(remapped, "excluded", allow_empty=True)


def single_blas_thread(fit):
    """Run ``fit`` with BLAS limited to one thread (threadpoolctl), so a ``random_state`` gives the
    same bits for any BLAS thread count.

    Multi-threaded BLAS rounds some float32 products differently from single-threaded BLAS
    (parameters of the models with dense feature products differed by ~1e-7 between 1 and 2
    threads); the cost on two cores is measured in ``benchmarks/README.md`` (Reliability). Numba
    kernels are unaffected and already give the same bits for any ``NUMBA_NUM_THREADS``.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fit(self, *args, **kwargs)

    return wrapper


def check_training_params(model) -> None:
    """Validate the hyperparameters every BPR-trained model shares (called in ``fit``)."""
    owner = type(model).__name__
    check_int(model.embedding_size, "embedding_size", owner, low=1)
    check_float(model.learning_rate, "learning_rate", owner, low=0.0, closed="neither")
    check_float(model.regularization, "regularization", owner, low=0.0)
    if not (isinstance(model.batch_size, str) and model.batch_size == "auto"):
        try:
            check_int(model.batch_size, "batch_size", owner, low=1)
        except ValueError:
            raise ValueError(f"The 'batch_size' parameter of {owner} must be an int in the range [1, inf) "
                             f"or 'auto'. Got {model.batch_size!r} instead.") from None
    check_int(model.max_epochs, "max_epochs", owner, low=1)
    check_int(model.patience, "patience", owner, low=1)
    check_bool(model.verbose, "verbose", owner)


def check_fit_data(interactions, valid, width: int = 1) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """Canonical training matrix (warning about users without interactions) and validation matrix.

    ``width`` is the number of floats the model keeps per user and per item (its embedding
    size): a fit whose tables (float32 parameters, two Adam moments and the final factors, and
    the float64 draws of the initialisation: 24 bytes per entry) cannot fit in the machine's
    memory is refused before anything is allocated.
    """
    train = check_interactions(interactions, "interactions")
    n_users, n_items = train.shape
    check_allocation(
        (n_users + n_items) * int(width) * 24,
        f"interactions of shape {train.shape}: the ({n_users} + {n_items}) x {width} float32 tables of the fit",
    )
    warn_empty_rows(train, "interactions")
    if valid is not None:
        valid = check_interactions(valid, "valid", shape=train.shape, allow_empty=True)
    return train, valid


def xavier_uniform(rng: np.random.Generator, n_rows: int, dim: int, dtype=np.float32) -> np.ndarray:
    """Glorot-uniform table of shape (n_rows, dim), bound ``sqrt(6 / (n_rows + dim))`` (PyTorch's rule)."""
    bound = np.sqrt(6.0 / (n_rows + dim))
    return rng.uniform(-bound, bound, size=(n_rows, dim)).astype(dtype)


def xavier_normal(rng: np.random.Generator, n_rows: int, dim: int, dtype=np.float32) -> np.ndarray:
    """Glorot-normal table of shape (n_rows, dim), std ``sqrt(2 / (n_rows + dim))`` (PyTorch's rule)."""
    return (rng.standard_normal(size=(n_rows, dim)) * np.sqrt(2.0 / (n_rows + dim))).astype(dtype)
