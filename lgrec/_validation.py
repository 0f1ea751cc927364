"""Input and hyperparameter validation.

Every error names the argument, what was expected and what was received.
Nothing the caller passes in is modified: conversions make new arrays, and
arrays that are already in the right form are returned as they are (no copy).
"""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
import scipy.sparse as sp

from ._base import DataWarning

__all__ = [
    "check_allocation",
    "check_bool",
    "check_csr_arrays",
    "check_features",
    "check_float",
    "check_int",
    "check_interactions",
    "check_k",
    "check_random_state",
    "check_user_ids",
]

_INF = float("inf")

#: Largest absolute feature value accepted: the float32 range (a float32 copy of a larger value is inf).
#: Models normalise rows scale-free (:func:`lgrec._numeric.unit_rows`); a model that feeds raw
#: features to its loss (FREEDOM, VBPR) is protected by the divergence rule of :mod:`lgrec.training`.
FEATURE_ABS_MAX = float(np.finfo(np.float32).max)


def _physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None when the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_allocation(n_bytes: int, what: str) -> None:
    """Refuse, before allocating, an array that cannot fit in this machine's memory.

    Parameters
    ----------
    n_bytes : int
        Size of the allocation about to be made.
    what : str
        What needs it, naming the argument that implies the size (used in the message).

    Raises
    ------
    ValueError
        When ``n_bytes`` exceeds the machine's physical memory.
    """
    total = _physical_memory()
    if total is not None and n_bytes > total:
        raise ValueError(
            f"{what} needs {n_bytes / 2**30:,.1f} GiB, more than this machine's {total / 2**30:,.1f} GiB of memory."
        )


def _range_text(low, high, closed: str) -> str:
    left = "[" if closed in ("both", "left") else "("
    right = "]" if closed in ("both", "right") else ")"
    low_s = "-inf" if low is None else repr(low)
    high_s = "inf" if high is None else repr(high)
    if high is None:
        right = ")"
    if low is None:
        left = "("
    return f"{left}{low_s}, {high_s}{right}"


def check_int(value, name: str, owner: str, low: int | None = None, high: int | None = None) -> int:
    """Check an integer hyperparameter in the closed range ``[low, high]``.

    Returns
    -------
    int
        ``value`` as a Python int.
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok:
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be an int in the range "
            f"{_range_text(low, high, 'both')}. Got {value!r} instead."
        )
    return int(value)


def check_float(
    value,
    name: str,
    owner: str,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
    word: str | None = None,
) -> float | str:
    """Check a real hyperparameter in a range; ``closed`` is 'both', 'left', 'right' or 'neither'.

    ``word`` is a string the parameter may also take (e.g. ``"auto"``).

    Returns
    -------
    float or str
        ``value`` as a Python float, or ``word``.
    """
    if word is not None and isinstance(value, str) and value == word:
        return word
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = np.isfinite(v)
        if ok and low is not None:
            ok = v >= low if closed in ("both", "left") else v > low
        if ok and high is not None:
            ok = v <= high if closed in ("both", "right") else v < high
    if not ok:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be {'' if word is None else repr(word) + ' or '}a float "
            f"in the range {_range_text(low, high, closed)}. Got {value!r} instead."
        )
    return float(value)


def check_bool(value, name: str, owner: str) -> bool:
    """Check a boolean hyperparameter."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"The {name!r} parameter of {owner} must be a bool. Got {value!r} instead.")
    return bool(value)


def check_choice(value, name: str, owner: str, choices: tuple) -> object:
    """Check a hyperparameter that takes one of a few values."""
    if value not in choices:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be one of {list(choices)!r}. Got {value!r} instead."
        )
    return value


def check_k(k, name: str = "k", n_items: int | None = None) -> int:
    """Check a ranking length: a positive int, at most ``n_items`` when given.

    Returns
    -------
    int
    """
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{name} must be a positive int; got {k!r}.")
    if n_items is not None and k > n_items:
        raise ValueError(f"{name}={k} is larger than the model's {n_items} items; pass {name} <= {n_items}.")
    return int(k)


def check_random_state(random_state) -> np.random.Generator:
    """Turn ``None``, an int or a Generator into a :class:`numpy.random.Generator`.

    An int always gives the same stream; a Generator is used as is (and advanced).
    The global NumPy state is never touched.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int. Got {random_state!r} instead.")
        return np.random.default_rng(int(random_state))
    raise ValueError(
        "random_state must be None, an int or a numpy.random.Generator. "
        f"Got {type(random_state).__name__} instead."
    )


def check_csr_arrays(indptr, indices, shape: tuple[int, int], name: str, data=None) -> None:
    """Check the structure of CSR arrays before scipy (or a kernel) reads them.

    ``indptr`` must have ``shape[0] + 1`` non-decreasing integer entries from 0 to
    ``len(indices)``; every index must lie in ``[0, shape[1])``; ``data``, when given,
    must have one entry per index. A corrupt structure makes scipy read or write out
    of bounds, so nothing else may touch the arrays before this check.

    Raises
    ------
    ValueError
        Naming ``name`` and the first violation.
    """
    n_rows, n_cols = shape
    for part, array in (("indptr", indptr), ("indices", indices)):
        if not isinstance(array, np.ndarray) or array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            got = f"dtype {array.dtype}, shape {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
            raise ValueError(f"{name} is a corrupt sparse matrix: its {part} must be a 1-D integer array; got {got}.")
    if indptr.shape[0] != n_rows + 1:
        raise ValueError(
            f"{name} is a corrupt sparse matrix: indptr has {indptr.shape[0]} entries for {n_rows} rows "
            f"(expected {n_rows + 1})."
        )
    if indptr[0] != 0 or indptr[-1] != indices.shape[0]:
        raise ValueError(
            f"{name} is a corrupt sparse matrix: indptr must run from 0 to the {indices.shape[0]} stored entries; "
            f"it runs from {int(indptr[0])} to {int(indptr[-1])}."
        )
    if n_rows and (np.diff(indptr) < 0).any():
        row = int(np.flatnonzero(np.diff(indptr) < 0)[0])
        raise ValueError(f"{name} is a corrupt sparse matrix: indptr decreases at row {row}.")
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= n_cols:
            bad = low if low < 0 else high
            raise ValueError(
                f"{name} is a corrupt sparse matrix: column index {bad} is outside [0, {n_cols}) for its shape {shape}."
            )
    if data is not None and (not isinstance(data, np.ndarray) or data.shape != indices.shape):
        got = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{name} is a corrupt sparse matrix: data has shape {got} but there are {indices.shape[0]} indices.")


def _check_sparse_structure(matrix, name: str) -> None:
    """Structure checks of the compressed and coordinate formats (others are rebuilt by scipy)."""
    if matrix.format in ("csr", "csc"):
        major = matrix.shape if matrix.format == "csr" else matrix.shape[::-1]
        check_csr_arrays(matrix.indptr, matrix.indices, major, name, matrix.data)
    elif matrix.format == "coo":
        rows, cols = matrix.coords if hasattr(matrix, "coords") else (matrix.row, matrix.col)
        for axis, (part, size) in enumerate(((rows, matrix.shape[0]), (cols, matrix.shape[1]))):
            if part.size and (part.min() < 0 or part.max() >= size):
                raise ValueError(
                    f"{name} is a corrupt sparse matrix: a {('row', 'column')[axis]} index lies outside [0, {size}) "
                    f"for its shape {matrix.shape}."
                )
        if not (rows.shape == cols.shape == matrix.data.shape):
            raise ValueError(f"{name} is a corrupt sparse matrix: row, col and data have different lengths.")


def check_interactions(
    interactions,
    name: str = "interactions",
    *,
    shape: tuple[int, int] | None = None,
    allow_empty: bool = False,
) -> sp.csr_matrix:
    """Canonicalise a user-item interaction matrix.

    Parameters
    ----------
    interactions : scipy.sparse matrix or array of shape (n_users, n_items)
        Any value different from zero is an interaction. CSR input is used as
        is when already canonical; other sparse formats and dense arrays are
        converted with a :class:`DataWarning` naming the class.
    name : str
        Argument name used in messages.
    shape : tuple of int, optional
        Required shape.
    allow_empty : bool, default=False
        Whether a matrix without any interaction is accepted.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_users, n_items), float32
        Binary values, duplicates summed to one, explicit zeros removed,
        sorted int32 indices. A new matrix unless the input was already
        exactly this.
    """
    if isinstance(interactions, (sp.spmatrix, sp.sparray)):
        if interactions.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_users, n_items); got {interactions.ndim} dimensions.")
        _check_sparse_structure(interactions, name)
        _check_numeric_dtype(interactions.dtype, name)
        if interactions.format != "csr":
            warnings.warn(
                f"{name} is a {type(interactions).__name__} (format {interactions.format!r}); "
                "converting it to CSR. Pass a csr_matrix to avoid the copy.",
                DataWarning,
                stacklevel=3,
            )
        matrix = interactions if interactions.format == "csr" else interactions.tocsr()
    elif isinstance(interactions, np.ndarray):
        if interactions.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D (n_users, n_items) matrix; got an array of shape {interactions.shape}."
            )
        _check_numeric_dtype(interactions.dtype, name)
        warnings.warn(
            f"{name} is a dense numpy array of shape {interactions.shape}; converting it to CSR. "
            "Pass a scipy.sparse.csr_matrix to avoid the copy.",
            DataWarning,
            stacklevel=3,
        )
        matrix = sp.csr_matrix(interactions)
    else:
        raise TypeError(
            f"{name} must be a scipy.sparse matrix of shape (n_users, n_items); got "
            f"{type(interactions).__name__}. Use lgrec.load_mmrec or lgrec.Dataset.from_frame "
            "to build one from files or a DataFrame."
        )
    if shape is not None and matrix.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {matrix.shape}.")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(f"{name} must have at least one user row and one item column; got shape {matrix.shape}.")
    data = matrix.data
    if data.size and np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int(np.flatnonzero(~np.isfinite(data))[0])
        row = int(np.searchsorted(matrix.indptr, bad, side="right") - 1)
        raise ValueError(
            f"{name} contains {int((~np.isfinite(data)).sum())} non-finite value(s) (NaN or inf); "
            f"the first is at (user {row}, item {int(matrix.indices[bad])})."
        )
    if data.size and (data < 0).any():
        raise ValueError(
            f"{name} contains {int((data < 0).sum())} negative value(s); implicit feedback must be "
            "non-negative (any positive value counts as one interaction)."
        )
    canonical = (
        matrix.has_canonical_format
        and matrix.dtype == np.float32
        and matrix.indices.dtype == np.int32
        and matrix.indptr.dtype == np.int32
        and (matrix.data == 1).all()
    )
    if canonical:
        matrix = sp.csr_matrix(matrix)  # a new object sharing the caller's arrays; never written to
    else:
        matrix = matrix.copy() if matrix is interactions else matrix
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        matrix = sp.csr_matrix(
            (
                np.ones(matrix.nnz, dtype=np.float32),
                matrix.indices.astype(np.int32, copy=False),
                matrix.indptr.astype(np.int32, copy=False),
            ),
            shape=matrix.shape,
        )
        matrix.has_sorted_indices = True
    if matrix.nnz == 0 and not allow_empty:
        raise ValueError(
            f"{name} has no interactions (all {matrix.shape[0]} x {matrix.shape[1]} entries are zero): "
            "the training split is empty."
        )
    return matrix


def _check_numeric_dtype(dtype, name: str) -> None:
    if dtype == np.bool_:
        return
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers (any non-zero counts as an interaction); got dtype {dtype}.")


def warn_empty_rows(matrix: sp.csr_matrix, name: str = "interactions") -> None:
    """Warn about users (rows) without any interaction in ``matrix``."""
    empty_users = np.flatnonzero(np.diff(matrix.indptr) == 0)
    if empty_users.size:
        warnings.warn(
            f"{name} has {empty_users.size} user row(s) without any interaction "
            f"(first: {empty_users[:5].tolist()}); their embeddings are not trained and their "
            "recommendations carry no personal signal.",
            DataWarning,
            stacklevel=3,
        )


def count_empty_columns(matrix: sp.csr_matrix) -> int:
    """Number of item columns of ``matrix`` without any interaction."""
    return int(matrix.shape[1] - np.count_nonzero(np.bincount(matrix.indices, minlength=matrix.shape[1])))


def check_features(features, name: str, n_items: int) -> np.ndarray | None:
    """Validate an item feature matrix without copying it.

    Parameters
    ----------
    features : array-like of shape (n_items, d) or None
        Dense item features aligned with the item columns of the interactions.
        An all-zero row means the item lacks this modality. Any floating dtype
        (float16, float32, float64) is accepted as is.
    name : str
        Argument name used in messages (``"img_feats"``, ``"txt_feats"``).
    n_items : int
        Number of item columns of the interactions.

    Returns
    -------
    ndarray of shape (n_items, d) or None
        The same array when it already is a floating ndarray; otherwise a new
        float32 array.
    """
    if features is None:
        return None
    if sp.issparse(features):
        raise TypeError(f"{name} must be a dense array of shape (n_items, d); got a sparse {type(features).__name__}.")
    if isinstance(features, (str, bytes)):
        raise TypeError(f"{name} must be an array of shape (n_items, d); got {type(features).__name__}.")
    try:
        array = features if isinstance(features, np.ndarray) else np.asarray(features)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be a rectangular array of shape (n_items, d); it could not be read as one ({exc}).") from None
    if array.dtype == object:
        raise TypeError(f"{name} must hold real numbers; got an object array (ragged rows or mixed types?).")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n_items, d); got an array of shape {array.shape}.")
    if array.shape[0] != n_items:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but interactions has {n_items} item columns; "
            "feature rows must be aligned with item ids."
        )
    if array.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature columns; pass None when a modality is absent.")
    if not np.issubdtype(array.dtype, np.floating):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}.")
        array = array.astype(np.float32)
    bad_rows, peak = _scan_rows(array)
    if bad_rows.size:
        raise ValueError(
            f"{name} contains NaN or inf in {bad_rows.size} row(s) (first item ids: "
            f"{bad_rows[:5].tolist()}). Mark a missing modality with an all-zero row instead."
        )
    if peak > FEATURE_ABS_MAX:
        raise ValueError(
            f"{name} holds values up to {peak:.3g} in absolute value; lgrec accepts at most {FEATURE_ABS_MAX:g} "
            "(float32 arithmetic on larger values overflows). Standardise or rescale the features."
        )
    if peak == 0 and array.shape[0]:
        warnings.warn(
            f"{name} is all zeros: every item lacks this modality, so it carries no signal. Pass None "
            "when a modality is absent.",
            DataWarning,
            stacklevel=3,
        )
    return array


def _scan_rows(array: np.ndarray, chunk_rows: int = 65536) -> tuple[np.ndarray, float]:
    """Row indices holding a non-finite value, and the largest finite absolute value; in chunks to bound memory."""
    bad, peak = [], 0.0
    for start in range(0, array.shape[0], chunk_rows):
        chunk = array[start : start + chunk_rows]
        finite = np.isfinite(chunk)
        bad.append(start + np.flatnonzero(~finite.all(axis=1)))
        if chunk.size:
            peak = max(peak, float(np.max(np.abs(np.where(finite, chunk, 0)))))
    return (np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)), peak


def check_user_ids(userid, n_users: int, name: str = "userid") -> tuple[np.ndarray, bool]:
    """Validate user ids.

    Returns
    -------
    ids : ndarray of shape (n,), int64
    scalar : bool
        Whether a single id was given.
    """
    if userid is None or isinstance(userid, (str, bytes)):
        raise TypeError(f"{name} must be an int or a 1-D array of ints; got {type(userid).__name__}.")
    scalar = np.ndim(userid) == 0
    try:
        ids = np.atleast_1d(np.asarray(userid))
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be an int or a 1-D array of ints; it could not be read as one ({exc}).") from None
    if ids.ndim != 1:
        raise ValueError(f"{name} must be an int or a 1-D array of ints; got shape {ids.shape}.")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer user ids; got dtype {ids.dtype}.")
    if ids.size and ids.dtype == np.uint64 and ids.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds ids outside [0, {n_users}).")
    ids = ids.astype(np.int64, copy=False)
    if ids.size and (ids.min() < 0 or ids.max() >= n_users):
        bad = ids[(ids < 0) | (ids >= n_users)]
        raise ValueError(
            f"{name} holds ids outside [0, {n_users}) for a model fitted on {n_users} users: {bad[:5].tolist()}."
        )
    return ids, scalar


def check_item_ids(values, n_items: int, name: str) -> np.ndarray:
    """Validate a set of item ids (``filter_items``, ``items``).

    Returns
    -------
    ndarray of shape (m,), int64
        Sorted distinct ids.
    """
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be an array of integer item ids; got {type(values).__name__}.")
    try:
        ids = np.unique(np.asarray(values).ravel())
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be an array of integer item ids; it could not be read as one ({exc}).") from None
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer item ids; got dtype {ids.dtype}.")
    if ids.size and ids.dtype == np.uint64 and ids[-1] > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds item ids outside [0, {n_items}).")
    ids = ids.astype(np.int64, copy=False)
    if ids.size and (ids[0] < 0 or ids[-1] >= n_items):
        raise ValueError(f"{name} holds item ids outside [0, {n_items}): {ids[(ids < 0) | (ids >= n_items)][:5].tolist()}.")
    return ids
