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
    check_random_state,
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
from ._foldin import bpr_fold_in, graph_fold_in, graph_item_layers

__all__ = ["Recommender", "check_fit_data", "check_training_params", "single_blas_thread", "xavier_normal",
           "xavier_uniform"]

#: Learned state every model saves (see :mod:`lgrec.persistence`): symbols U users, I items, F factor width.
FACTOR_STATE = {"user_factors_": Array(("U", "F")), "item_factors_": Array(("I", "F")), "history_": Value("history")}
#: ... and what the BPR training loop adds.
TRAINED_STATE = {"best_epoch_": Value("count"), "batch_size_": Value("positive")}
#: ... and the layer-0 ID embeddings of the graph models (E: ``embedding_size``).
EMBEDDING_STATE = {"user_embeddings_": Array(("U", "E")), "item_embeddings_": Array(("I", "E"))}
#: ... and what the graph models keep to fold in new users (S: items at fit time, L: layers).
GRAPH_FOLD_IN_STATE = {"item_layers_": Array(("L", "S", "E")), "item_degree_": Array(("S",), dtype="int"),
                       "layer_weights_": Array(("L+1",))}


class Recommender(BaseEstimator):
    """Base class: dot-product scoring over learned ``user_factors_`` and ``item_factors_``.

    Attributes
    ----------
    requires_features : bool
        Class tag: ``fit`` refuses to run without item features.
    uses_features : bool
        Class tag: ``fit`` reads item features (False: they are ignored).
    graph_fold_in : bool
        Class tag: new users are folded in through the trained graph (LightGCN-style models).
    """

    requires_features = False
    uses_features = False
    graph_fold_in = False
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
        excluded = self._excluded(users, user_items, filter_already_liked_items, n_items)
        scorer = self._scorer()
        return self._rank(lambda block: scorer.score_users(users[block]), users.shape[0], k, excluded, items,
                          filter_items, scalar)

    #: Default number of BPR steps of the new-user fold-in (:meth:`new_user_scorer`): chosen on the
    #: validation items of held-out ML-1M users among 0, 10, 50, 200 (best for LightGCN,
    #: RLMultimodalRec and BPR-MF alike; VBPR overrides it; ``benchmarks/bench_new_users.py``).
    fold_in_steps = 200

    def new_user_scorer(self, user_items, *, n_steps: int | None = None, learning_rate: float = 0.05,
                        random_state=0) -> FactorScorer:
        """Scores of users who were not in training, from the items they interacted with.

        No parameter of the model changes. The new users' factors are :math:`e_u = c_u x_u + b_u`
        (see :mod:`lgrec.models._foldin`): :math:`b_u` and :math:`c_u` follow from the items (for
        the graph models, the users' rows of the normalised adjacency propagated through the
        trained item layers), :math:`x_u` is fitted by ``n_steps`` full-batch BPR steps on the
        users' own items with every item factor fixed. Popularity and ContentKNN are exact.

        Parameters
        ----------
        user_items : array-like of int, sequence of such, or scipy.sparse matrix of shape (n, n_items)
            The items of one new user, of several (one sequence each), or a binary matrix.
        n_steps : int, optional
            BPR steps of the fold-in (default: the class attribute ``fold_in_steps``); 0 keeps
            :math:`x_u = 0`.
        learning_rate : float, default=0.05
            Adam step size of the fold-in.
        random_state : None, int or numpy.random.Generator, default=0
            Seed of the fold-in's negative samples.

        Returns
        -------
        lgrec.scoring.FactorScorer
            ``score_users(rows)`` scores all items for rows of ``user_items``.
        """
        check_is_fitted(self)
        matrix, _ = self._new_user_items(user_items)
        owner = f"{type(self).__name__}.new_user_scorer"
        n_steps = self.fold_in_steps if n_steps is None else check_int(n_steps, "n_steps", owner, low=0)
        check_float(learning_rate, "learning_rate", owner, low=0.0, closed="neither")
        scale, base, free = self._fold_in_parts(matrix)
        offsets, weight = self._new_user_offsets(matrix)
        x = bpr_fold_in(matrix, self.item_factors_, scale, base, free, n_steps=n_steps,
                        learning_rate=learning_rate, regularization=float(getattr(self, "regularization", 0.0)),
                        rng=check_random_state(random_state), offsets=offsets, offset_weight=weight)
        factors = (scale[:, None] * x + base).astype(np.float32)
        return FactorScorer(factors, self.item_factors_, offsets, weight)

    def recommend_new(self, user_items, k: int = 10, filter_already_liked_items: bool = True,
                      filter_items=None, items=None, **fold_in) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for users who were not in training, without retraining.

        Parameters
        ----------
        user_items : array-like of int, sequence of such, or scipy.sparse matrix of shape (n, n_items)
            Item ids of one new user (1-D result), of several (one sequence per user) or a
            binary matrix (2-D result).
        k : int, default=10
        filter_already_liked_items : bool, default=True
            Never recommend an item of the user's own items.
        filter_items, items : array-like of int, optional
            As in :meth:`recommend`.
        **fold_in
            ``n_steps``, ``learning_rate``, ``random_state`` of :meth:`new_user_scorer`.

        Returns
        -------
        ids : ndarray of shape (k,) or (n, k), int64
        scores : ndarray of shape (k,) or (n, k), float32
            As in :meth:`recommend` (padding ``-1`` / ``-inf``).
        """
        check_is_fitted(self)
        k = check_k(k, "k", self.n_items_)
        check_bool(filter_already_liked_items, "filter_already_liked_items", "recommend_new")
        matrix, scalar = self._new_user_items(user_items)
        scorer = self.new_user_scorer(matrix, **fold_in)
        rows = np.arange(matrix.shape[0])
        excluded = self._excluded(rows, matrix, filter_already_liked_items, self.n_items_)
        return self._rank(scorer.score_users, matrix.shape[0], k, excluded, items, filter_items, scalar)

    def _new_user_items(self, user_items) -> tuple[sp.csr_matrix, bool]:
        """``user_items`` of :meth:`recommend_new` as a canonical CSR (n, n_items), and whether it was one user."""
        n_items = self.n_items_
        if sp.issparse(user_items):
            matrix = check_interactions(user_items, "user_items", allow_empty=True)
            if matrix.shape[1] != n_items:
                raise ValueError(f"user_items has {matrix.shape[1]} item columns but the model has {n_items} items.")
            return matrix, False
        if isinstance(user_items, (str, bytes)) or np.ndim(user_items) == 0:
            raise TypeError(f"user_items must be item ids of one user, a list of such lists or a sparse matrix; "
                            f"got {type(user_items).__name__}.")
        scalar = np.ndim(user_items) == 1 and all(np.ndim(v) == 0 for v in user_items)
        lists = [user_items] if scalar else list(user_items)
        rows, cols = [], []
        for row, values in enumerate(lists):
            ids = np.asarray(values).ravel()
            if ids.size and not np.issubdtype(ids.dtype, np.integer):
                raise TypeError(f"user_items must hold integer item ids; user {row} has dtype {ids.dtype}.")
            ids = ids.astype(np.int64, copy=False)
            bad = ids[(ids < 0) | (ids >= n_items)]
            if bad.size:
                raise ValueError(f"user_items of user {row} holds item ids outside [0, {n_items}): {bad[:5].tolist()}.")
            rows.append(np.full(ids.size, row))
            cols.append(ids)
        shape = (len(lists), n_items)
        data = np.concatenate(rows) if rows else np.empty(0, np.int64)
        matrix = sp.csr_matrix((np.ones(data.size, np.float32), (data, np.concatenate(cols) if cols else data)),
                               shape=shape)
        return check_interactions(matrix, "user_items", allow_empty=True), scalar

    def _set_graph_fold_in(self, objective) -> None:
        """Keep what :meth:`new_user_scorer` needs of a fitted LightGCN-style objective."""
        self.item_layers_, self.item_degree_, self.layer_weights_ = graph_item_layers(objective)

    def _fold_in_parts(self, user_items: sp.csr_matrix):
        """:math:`c_u`, :math:`b_u` and the trained columns of :math:`x_u` (matrix factorisation: 1, 0, all)."""
        n = user_items.shape[0]
        if self.graph_fold_in:
            if getattr(self, "item_layers_", None) is None:
                raise ValueError(f"this {type(self).__name__} was saved by an lgrec without new-user support "
                                 "(no item_layers_): refit it to use recommend_new.")
            scale, base = graph_fold_in(user_items, self.item_layers_, self.item_degree_, self.layer_weights_)
            return scale, base, None
        return np.ones(n, np.float32), np.zeros((n, self.item_factors_.shape[1]), np.float32), None

    def _new_user_offsets(self, user_items: sp.csr_matrix):
        """Fixed score terms of new users and their weight (none by default)."""
        return None, 0.0

    def _rank(self, score_rows, n, k, excluded, items, filter_items, scalar):
        """Top-``k`` of ``score_rows(rows)`` for local rows ``0 .. n-1``: candidate ``items`` (None: all),
        ``filter_items`` never ranked, ``excluded`` (n, n_items) the rows' own exclusions."""
        n_items = self.n_items_
        candidates = None if items is None else check_item_ids(items, n_items, "items")
        if candidates is not None and candidates.size == 0:
            raise ValueError("items is empty: give at least one candidate item id (or items=None for all items).")
        blocked = None if filter_items is None else check_item_ids(filter_items, n_items, "filter_items")
        if candidates is not None:
            position = np.full(n_items, -1, dtype=np.int64)
            position[candidates] = np.arange(candidates.shape[0])
            excluded = _remap_columns(excluded, position, candidates.shape[0])
            if blocked is not None:
                blocked = position[blocked]
                blocked = blocked[blocked >= 0]

        def score(block):
            scores = score_rows(block)
            if candidates is not None:
                scores = scores[:, candidates]
            if blocked is not None:
                scores[:, blocked] = np.nan  # the top-k kernels never select NaN: one shared mask, no (n, m) matrix
            return scores

        ids_all = np.empty((n, k), dtype=np.int64)
        scores_all = np.empty((n, k), dtype=np.float32)
        for block, ids, top in rank_blocks(score, np.arange(n), k, excluded):
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

    def _train(self, objective, train_matrix: sp.csr_matrix, valid, rng: np.random.Generator, *,
               learning_rate: float | None = None, optimizer: str = "adam") -> None:
        """Run the BPR training loop on ``objective`` with this model's hyperparameters
        (``learning_rate``, when given, instead of ``self.learning_rate``).

        Sets ``history_`` and ``best_epoch_``; the objective's parameters are
        left at the best validation epoch (see :func:`lgrec.training.train`).
        """
        result = train(
            objective, TripletSampler(train_matrix), rng=rng,
            learning_rate=self.learning_rate if learning_rate is None else learning_rate,
            batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
            valid=valid, exclude=train_matrix, verbose=self.verbose, owner=type(self).__name__, optimizer=optimizer,
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


def check_training_params(model, learning_rate: float | None = None) -> None:
    """Validate the hyperparameters every BPR-trained model shares (called in ``fit``).

    ``learning_rate``: the resolved step size, for a model whose own ``learning_rate`` may be None
    (it is checked instead of the attribute).
    """
    owner = type(model).__name__
    check_int(model.embedding_size, "embedding_size", owner, low=1)
    check_float(model.learning_rate if learning_rate is None else learning_rate, "learning_rate", owner, low=0.0,
                closed="neither")
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
