"""Datasets: a train/valid/test split of a user-item matrix plus item features.

Sources:

- :func:`load_mmrec` reads a MMRec-format folder: ``<name>.inter``
  (tab-separated, header, columns ``userID itemID x_label`` with 0 = train,
  1 = valid, 2 = test; other columns are ignored) and, when present,
  ``image_feat.npy`` / ``text_feat.npy``. A feature file is aligned with items
  by ``image_item_ids.npy`` / ``text_item_ids.npy`` (the itemID of each row)
  when those exist; otherwise it must have exactly one row per item in itemID
  order (MMRec's convention). Items without a feature row get an all-zero
  row, lgrec's mark of a missing modality.
- :meth:`Dataset.from_frame` builds one from a pandas DataFrame of
  (user, item[, time]) pairs with a random per-user or a global temporal split.
- :func:`lgrec.datasets.make_multimodal` generates a synthetic one.

:func:`save_mmrec` writes any Dataset back as such a folder.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._base import DataWarning
from ._validation import check_features, check_float, check_interactions, check_random_state

__all__ = ["ITEM_GROUP_COLUMNS", "Dataset", "UnknownIdError", "load_mmrec", "save_mmrec"]

_SPLIT_LABELS = {"train": 0, "valid": 1, "test": 2}
_MODALITIES = ("image", "text")

#: Columns of ``Dataset.item_info`` that group items (for gate summaries and plots), in the order
#: ``Dataset.item_groups("auto")`` looks for them: H&M's product group, the synthetic data's
#: category, MovieLens' first genre.
ITEM_GROUP_COLUMNS = ("product_group_name", "category", "genre")


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A split interaction dataset with optional item features.

    Attributes
    ----------
    train, valid, test : scipy.sparse.csr_matrix of shape (n_users, n_items), float32
        Binary interaction matrices of the three splits.
    image, text : ndarray of shape (n_items, d) or None
        Item features aligned with item ids; an all-zero row marks an item
        without that modality.
    name : str
        Dataset name (the ``.inter`` file's stem for MMRec folders).
    user_ids, item_ids : ndarray of shape (n_users,) / (n_items,) or None
        Original ids of users and items, when known (index = lgrec id).
    item_info : pandas.DataFrame or None
        Per-item metadata indexed by item id (e.g. a product group column).
    """

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    image: np.ndarray | None = None
    text: np.ndarray | None = None
    name: str = "dataset"
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    item_info: pd.DataFrame | None = None

    def __post_init__(self):
        train = check_interactions(self.train, "train")
        object.__setattr__(self, "train", train)
        for split in ("valid", "test"):
            object.__setattr__(
                self, split, check_interactions(getattr(self, split), split, shape=train.shape, allow_empty=True)
            )
        for modality in _MODALITIES:
            object.__setattr__(self, modality, check_features(getattr(self, modality), modality, train.shape[1]))
        for name, size in (("user_ids", train.shape[0]), ("item_ids", train.shape[1])):
            ids = getattr(self, name)
            if ids is not None and len(ids) != size:
                raise ValueError(f"{name} has {len(ids)} entries but the dataset has {size}.")
        _warn_split_overlaps(self)

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def user_index(self, ids) -> np.ndarray:
        """lgrec user ids (row numbers) of original user ids.

        Parameters
        ----------
        ids : scalar or array-like
            Original ids as in ``user_ids`` (compared as they are, then as strings, so ``"0042"``
            and ``42`` are different ids, and a command line's ``"42"`` finds an int id 42).
            Without ``user_ids`` the ids are lgrec ids already and are range-checked.

        Returns
        -------
        ndarray of shape (n,), int64

        Raises
        ------
        UnknownIdError
            A KeyError (and ValueError) naming the unknown ids (up to 5) and how many there were.
        """
        return _index_of(self.user_ids, ids, "user", self.n_users)

    def item_index(self, ids) -> np.ndarray:
        """lgrec item ids (column numbers) of original item ids; see :meth:`user_index`."""
        return _index_of(self.item_ids, ids, "item", self.n_items)

    def original_user_ids(self, index) -> np.ndarray:
        """Original ids of lgrec user ids (``None`` for ``-1`` padding), shape of ``index``, object."""
        return _original(self.user_ids, index)

    def original_item_ids(self, index) -> np.ndarray:
        """Original ids of lgrec item ids (``None`` for ``-1`` padding), shape of ``index``, object."""
        return _original(self.item_ids, index)

    def cold_items(self, split: str = "test") -> np.ndarray:
        """Items with interactions in ``split`` but none in train.

        Returns
        -------
        ndarray of shape (n_cold,), int64
        """
        matrix = getattr(self, split)
        seen = np.bincount(self.train.indices, minlength=self.n_items) > 0
        held = np.bincount(matrix.indices, minlength=self.n_items) > 0
        return np.flatnonzero(held & ~seen)

    def item_groups(self, column: str | None = "auto") -> tuple[np.ndarray | None, str | None]:
        """A group label per item from ``item_info``.

        Parameters
        ----------
        column : str or None, default="auto"
            Column of ``item_info``; ``"auto"`` takes the first of
            :data:`ITEM_GROUP_COLUMNS` present; None means no grouping.

        Returns
        -------
        labels : ndarray of shape (n_items,), object, or None
            String label per item id (``"(none)"`` for items without a row or value).
        column : str or None
            The column used.
        """
        info = self.item_info
        if column is None or info is None:
            return None, None
        if column == "auto":
            column = next((c for c in ITEM_GROUP_COLUMNS if c in info.columns), None)
            if column is None:
                return None, None
        if column not in info.columns:
            raise ValueError(f"column {column!r} is not a column of item_info ({list(info.columns)}).")
        ids = info["itemID"].to_numpy() if "itemID" in info.columns else info.index.to_numpy()
        labels = np.full(self.n_items, "(none)", dtype=object)
        values = info[column]
        known = values.notna().to_numpy()
        labels[ids[known]] = values[known].astype(str).to_numpy()
        return labels, column

    def summary(self) -> dict:
        """Counts: users, items, interactions per split, cold items, missing modalities."""
        out = {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "train": int(self.train.nnz),
            "valid": int(self.valid.nnz),
            "test": int(self.test.nnz),
            "cold_test_items": int(self.cold_items("test").shape[0]),
        }
        for modality in _MODALITIES:
            features = getattr(self, modality)
            out[f"{modality}_dim"] = None if features is None else int(features.shape[1])
            out[f"items_without_{modality}"] = (
                self.n_items if features is None else int(np.sum(~np.any(features != 0, axis=1)))
            )
        return out

    def __repr__(self) -> str:
        """The :meth:`summary` counts, e.g. ``Dataset(name='hm', n_users=9980, ..., items_without_text=0)``."""
        return f"{type(self).__name__}({', '.join(f'{key}={value!r}' for key, value in self.summary().items())})"

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        time_col: str | None = None,
        *,
        split: str = "random",
        valid_size: float = 0.1,
        test_size: float = 0.1,
        random_state=None,
        name: str = "dataset",
    ) -> "Dataset":
        """Build a Dataset from (user, item[, time]) rows.

        Repeated (user, item) pairs count once (the earliest time is kept).
        Users and items are numbered in ascending order of their ids; the
        original ids are kept in ``user_ids`` / ``item_ids``.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per interaction. Not modified.
        user_col, item_col : str
            Column names of user and item ids (any hashable, sortable type).
        time_col : str, optional
            Column of timestamps (numbers or datetimes); required for ``split="temporal"``.
        split : {"random", "temporal"}, default="random"
            ``"random"``: each user's items are shuffled and about ``test_size``
            and ``valid_size`` of them (rounded; at least one item stays in
            train) are held out. ``"temporal"``: with :math:`q_a` the
            ``a``-quantile of the pair times, train is ``t < q_{1-v-s}``, valid
            is ``q_{1-v-s} <= t < q_{1-s}``, test is ``t >= q_{1-s}``; held-out
            pairs of users without a train pair are dropped, then users and
            items are the ones that remain.
        valid_size, test_size : float, default=0.1
            Fractions held out.
        random_state : None, int or numpy.random.Generator
            Seed of the random split.
        name : str, default="dataset"

        Returns
        -------
        Dataset
        """
        if split not in ("random", "temporal"):
            raise ValueError(f"split must be 'random' or 'temporal'; got {split!r}.")
        check_float(valid_size, "valid_size", "Dataset.from_frame", low=0.0, high=1.0, closed="left")
        check_float(test_size, "test_size", "Dataset.from_frame", low=0.0, high=1.0, closed="left")
        if valid_size + test_size >= 1.0:
            raise ValueError(f"valid_size + test_size must be below 1; got {valid_size} + {test_size}.")
        pairs = _unique_pairs(frame, user_col, item_col, time_col)
        if split == "temporal":
            if time_col is None:
                raise ValueError("split='temporal' needs time_col, the column of interaction times.")
            labels = _temporal_labels(pairs["time"], valid_size, test_size)
            labels, pairs = _drop_users_without_train(labels, pairs)
        else:
            labels = _random_labels(pairs["user"].to_numpy(), valid_size, test_size, check_random_state(random_state))
        user_codes, user_ids = _factorize(pairs["user"], user_col)
        item_codes, item_ids = _factorize(pairs["item"], item_col)
        shape = (len(user_ids), len(item_ids))
        splits = [_matrix(user_codes[labels == code], item_codes[labels == code], shape) for code in range(3)]
        return cls(*splits, name=name, user_ids=np.asarray(user_ids), item_ids=np.asarray(item_ids))


class UnknownIdError(KeyError, ValueError):
    """An original user or item id that the dataset does not know (a KeyError and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _index_of(known: np.ndarray | None, ids, kind: str, size: int) -> np.ndarray:
    values = np.atleast_1d(np.asarray(ids, dtype=object)).ravel()
    if known is None:
        try:
            index = np.array([int(v) for v in values], dtype=np.int64)
        except (TypeError, ValueError):
            raise UnknownIdError(f"this dataset has no original {kind} ids ({kind}_ids is None), so {kind} ids are "
                           f"lgrec ids 0..{size - 1}; got {values[:5].tolist()}.") from None
        bad = (index < 0) | (index >= size)
        if bad.any():
            raise UnknownIdError(f"{int(bad.sum())} {kind} id(s) outside 0..{size - 1}: {index[bad][:5].tolist()}.")
        return index
    lookup = pd.Index(known)
    if not lookup.is_unique:
        raise ValueError(f"{kind}_ids holds duplicate ids; cannot map them to lgrec ids.")
    index = lookup.get_indexer(pd.Index(values, dtype=object)).astype(np.int64)
    missing = index < 0
    if missing.any():
        by_text = pd.Index([str(v) for v in known]).get_indexer([str(v) for v in values[missing]])
        index[missing] = by_text
        missing = index < 0
    if missing.any():
        unknown = values[missing]
        raise UnknownIdError(f"{int(missing.sum())} unknown {kind} id(s) (not in the dataset's {kind}_ids): "
                       f"{[str(v) for v in unknown[:5]]}{' ...' if unknown.size > 5 else ''}.")
    return index


def _original(known: np.ndarray | None, index) -> np.ndarray:
    index = np.asarray(index, dtype=np.int64)
    out = np.full(index.shape, None, dtype=object)
    valid = index >= 0
    out[valid] = index[valid] if known is None else np.asarray(known, dtype=object)[index[valid]]
    return out


def _warn_split_overlaps(dataset: "Dataset") -> None:
    """Warn when a (user, item) pair sits in two splits: evaluation would count a training pair as held out."""
    for first, second in (("train", "valid"), ("train", "test"), ("valid", "test")):
        both = getattr(dataset, first).multiply(getattr(dataset, second)).tocoo()
        if both.nnz:
            pairs = list(zip(both.row[:3].tolist(), both.col[:3].tolist()))
            warnings.warn(
                f"dataset {dataset.name!r}: {both.nnz} (user, item) pair(s) are in both {first} and {second} "
                f"(first: {pairs}); metrics on {second} then reward recalling {first} pairs.",
                DataWarning,
                stacklevel=4,
            )


def _matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)), shape=shape)
    return check_interactions(matrix, allow_empty=True)


def _factorize(values: pd.Series, column: str):
    """Codes in ascending id order; ids of mixed, unorderable types are refused naming the column."""
    try:
        return pd.factorize(values, sort=True)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in values})
        raise TypeError(f"frame column {column!r} mixes id types {kinds}; ids must be all numbers or all strings.") from None


def _unique_pairs(frame: pd.DataFrame, user_col: str, item_col: str, time_col: str | None) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame; got {type(frame).__name__}.")
    columns = [c for c in (user_col, item_col, time_col) if c is not None]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame has no column(s) {missing}; its columns are {list(frame.columns)}.")
    if len(frame) == 0:
        raise ValueError("frame has no rows.")
    for column in (user_col, item_col):
        kind = pd.api.types.infer_dtype(frame[column], skipna=True)
        if kind.startswith("mixed") or kind in ("complex", "bytes"):
            kinds = sorted({type(v).__name__ for v in frame[column].dropna()})
            raise TypeError(f"frame column {column!r} mixes id types {kinds}; ids must be all numbers or all strings.")
    data = frame[columns].rename(columns={user_col: "user", item_col: "item", time_col: "time"})
    for column in data.columns:
        n_missing = int(data[column].isna().sum())
        if n_missing:
            raise ValueError(f"frame column {({'user': user_col, 'item': item_col}).get(column, time_col)!r} has {n_missing} missing value(s).")
    if time_col is None:
        return data.drop_duplicates(["user", "item"]).reset_index(drop=True)
    times = data["time"]
    if not (pd.api.types.is_numeric_dtype(times) or pd.api.types.is_datetime64_any_dtype(times)) or \
            pd.api.types.is_bool_dtype(times):
        raise TypeError(f"frame column {time_col!r} (time_col) must hold numbers or datetimes; got dtype {times.dtype}.")
    return (
        data.sort_values("time", kind="stable")
        .drop_duplicates(["user", "item"], keep="first")
        .reset_index(drop=True)
    )


def _temporal_labels(times: pd.Series, valid_size: float, test_size: float) -> np.ndarray:
    q_valid = times.quantile(1.0 - valid_size - test_size)
    q_test = times.quantile(1.0 - test_size)
    labels = np.zeros(len(times), dtype=np.int8)
    labels[(times >= q_valid).to_numpy()] = 1
    labels[(times >= q_test).to_numpy()] = 2
    return labels


def _drop_users_without_train(labels: np.ndarray, pairs: pd.DataFrame):
    train_users = set(pairs["user"].to_numpy()[labels == 0].tolist())
    keep = (labels == 0) | pairs["user"].isin(train_users).to_numpy()
    return labels[keep], pairs[keep].reset_index(drop=True)


def _random_labels(users: np.ndarray, valid_size: float, test_size: float, rng: np.random.Generator) -> np.ndarray:
    """Per-user random hold-out, vectorised: rank each user's pairs by a random key."""
    codes, counts = np.unique(users, return_inverse=True, return_counts=True)[1:]
    order = np.lexsort((rng.random(users.shape[0]), codes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(users.shape[0], dtype=np.int64)
    position[order] = np.arange(users.shape[0]) - np.repeat(starts, counts)
    return _holdout_labels(position, counts[codes], valid_size, test_size)


def _holdout_labels(position: np.ndarray, n: np.ndarray, valid_size: float, test_size: float) -> np.ndarray:
    """Split labels (0 train, 1 valid, 2 test) from each pair's random position among its user's ``n`` pairs.

    About ``test_size`` and ``valid_size`` of each user's pairs (rounded half up) are held
    out, the first positions going to test; at least one pair per user stays in train.
    """
    n_test = np.floor(n * test_size + 0.5).astype(np.int64)
    n_valid = np.floor(n * valid_size + 0.5).astype(np.int64)
    over = np.maximum(n_test + n_valid - (n - 1), 0)
    n_valid = np.maximum(n_valid - over, 0)
    n_test = np.minimum(n_test, n - 1 - n_valid)
    labels = np.zeros(position.shape[0], dtype=np.int8)
    labels[position < n_test + n_valid] = 1
    labels[position < n_test] = 2
    return labels


def load_mmrec(folder: str | os.PathLike, name: str | None = None) -> Dataset:
    """Read a MMRec-format dataset folder.

    Parameters
    ----------
    folder : str or path-like
        Folder holding ``<name>.inter`` and optionally ``image_feat.npy``,
        ``text_feat.npy``, ``image_item_ids.npy``, ``text_item_ids.npy``,
        ``u_id_mapping.csv``, ``i_id_mapping.csv`` and ``item_info.csv``.
    name : str, optional
        Stem of the ``.inter`` file; needed only when the folder holds several.

    Returns
    -------
    Dataset
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist or is not a directory.")
    inter_path = _find_inter(folder, name)
    frame = _read_inter(inter_path)
    user_map = _read_id_map(folder / "u_id_mapping.csv", "userID")
    item_map = _read_id_map(folder / "i_id_mapping.csv", "itemID")
    n_users = _id_count(frame["userID"].to_numpy(), user_map, inter_path, "userID")
    n_items = _id_count(frame["itemID"].to_numpy(), item_map, inter_path, "itemID")
    labels = frame["x_label"].to_numpy()
    users, items = frame["userID"].to_numpy(), frame["itemID"].to_numpy()
    splits = {}
    for split, code in _SPLIT_LABELS.items():
        mask = labels == code
        matrix = sp.csr_matrix((np.ones(int(mask.sum()), np.float32), (users[mask], items[mask])), shape=(n_users, n_items))
        n_dup = int(mask.sum()) - int((matrix.data > 0).sum())
        if n_dup:
            warnings.warn(
                f"{inter_path.name}: {n_dup} duplicate (userID, itemID) pair(s) in the {split} split; each counts once.",
                DataWarning,
                stacklevel=2,
            )
        splits[split] = check_interactions(matrix, split, allow_empty=True)
    if splits["train"].nnz == 0:
        raise ValueError(f"{inter_path} has no training rows (x_label == 0): the train split is empty.")
    features = {m: _read_features(folder, m, n_items) for m in _MODALITIES}
    item_info = None
    if (folder / "item_info.csv").exists():
        item_info = _read_csv(folder / "item_info.csv", dtype={"article_id": str, "item_id": str, "title": str})
        if "itemID" not in item_info.columns:
            raise ValueError(f"{folder / 'item_info.csv'} has no 'itemID' column; found {list(item_info.columns)}.")
        item_info = item_info.set_index("itemID", drop=False)
    return Dataset(
        **splits,
        **features,
        name=inter_path.stem,
        user_ids=_ordered_ids(user_map, "userID", n_users, folder / "u_id_mapping.csv"),
        item_ids=_ordered_ids(item_map, "itemID", n_items, folder / "i_id_mapping.csv"),
        item_info=item_info,
    )


#: ``load_mmrec`` refuses ids whose largest value exceeds twice the number of distinct ids by more
#: than this: MMRec ids are dense (0 .. n-1), and a stray huge id would allocate a row per missing id.
_ID_GAP_SLACK = 1000


def _id_count(ids: np.ndarray, id_map: pd.DataFrame | None, path: Path, column: str) -> int:
    """Number of users or items: the largest id + 1 (or the id map's size), after checking ids are dense."""
    top = int(ids.max()) + 1
    mapped = 0 if id_map is None else len(id_map)
    distinct = int(np.unique(ids).size)
    if top > max(mapped, 2 * distinct + _ID_GAP_SLACK):
        raise ValueError(
            f"{path}: {column} values are not dense ids 0..n-1: the largest is {top - 1} but only {distinct} distinct "
            f"ids occur, so {top:,} rows would be allocated. Renumber the ids (lgrec.Dataset.from_frame does)."
        )
    return max(top, mapped)


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` whose parse errors name the file."""
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable {'tab-separated' if kwargs.get('sep') == chr(9) else 'CSV'} "
                         f"file: {type(exc).__name__}: {exc}") from None


def _load_npy(path: Path) -> np.ndarray:
    """``numpy.load`` without pickle whose errors name the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npy array (without pickle): {type(exc).__name__}: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path} must hold one .npy array; got {type(array).__name__}.")
    return array


def _find_inter(folder: Path, name: str | None) -> Path:
    if name is not None:
        path = folder / f"{name}.inter"
        if not path.exists():
            raise FileNotFoundError(f"{str(path)!r} does not exist.")
        return path
    candidates = sorted(folder.glob("*.inter"))
    if len(candidates) != 1:
        found = [p.name for p in candidates]
        raise FileNotFoundError(
            f"expected exactly one '<name>.inter' file in {str(folder)!r}; found {found or 'none'}"
            + ("; pass name=" if len(candidates) > 1 else "")
        )
    return candidates[0]


def _read_inter(path: Path) -> pd.DataFrame:
    header = _read_csv(path, sep="\t", nrows=0).columns
    required = ["userID", "itemID", "x_label"]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(
            f"{path} must be tab-separated with a header holding {required}; missing {missing}, "
            f"found {list(header)}."
        )
    frame = _read_csv(path, sep="\t", usecols=required)
    if len(frame) == 0:
        raise ValueError(f"{path} has a header but no rows: the train split is empty.")
    for column in required:
        values = frame[column]
        if values.isna().any() or not pd.api.types.is_integer_dtype(values):
            raise ValueError(f"{path}: column {column!r} must hold integers without gaps; got dtype {values.dtype} "
                             f"with {int(values.isna().sum())} missing value(s).")
        if (values < 0).any():
            raise ValueError(f"{path}: column {column!r} has negative values (first at row {int(np.argmax(values.to_numpy() < 0))}).")
    bad = ~frame["x_label"].isin(list(_SPLIT_LABELS.values()))
    if bad.any():
        raise ValueError(f"{path}: x_label must be 0 (train), 1 (valid) or 2 (test); found {sorted(set(frame['x_label'][bad]))[:5]}.")
    return frame


def _read_id_map(path: Path, id_column: str) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = _read_csv(path, dtype=str, sep=None, engine="python")
    if id_column not in frame.columns or len(frame.columns) < 2:
        raise ValueError(f"{path} must have two columns, the original id and {id_column!r}; found {list(frame.columns)}.")
    ids = pd.to_numeric(frame[id_column], errors="coerce")
    if ids.isna().any() or (ids < 0).any() or (ids != np.floor(ids)).any() or ids.duplicated().any():
        raise ValueError(f"{path}: column {id_column!r} must hold distinct non-negative integer ids.")
    return frame


def _ordered_ids(id_map: pd.DataFrame | None, id_column: str, size: int, path: Path) -> np.ndarray | None:
    if id_map is None:
        return None
    original_column = next(c for c in id_map.columns if c != id_column)
    ids = np.full(size, None, dtype=object)
    positions = id_map[id_column].astype(np.int64).to_numpy()
    if positions.size and positions.max() >= size:
        raise ValueError(f"{path}: {id_column} {int(positions.max())} is outside the {size} ids of the .inter file.")
    ids[positions] = id_map[original_column].to_numpy()
    return ids


def _read_features(folder: Path, modality: str, n_items: int) -> np.ndarray | None:
    path = folder / f"{modality}_feat.npy"
    if not path.exists():
        return None
    features = _load_npy(path)
    if features.ndim != 2:
        raise ValueError(f"{path} must hold a 2-D (n_rows, d) array; got shape {features.shape}.")
    with warnings.catch_warnings():  # an all-zero modality is reported once, by Dataset
        warnings.simplefilter("ignore", DataWarning)
        check_features(features, str(path), features.shape[0])
    ids_path = folder / f"{modality}_item_ids.npy"
    if not ids_path.exists():
        if features.shape[0] != n_items:
            raise ValueError(
                f"{path} has {features.shape[0]} rows but the dataset has {n_items} items, and there is no "
                f"{ids_path.name} saying which item each row belongs to."
            )
        return features
    ids = _load_npy(ids_path)
    if ids.shape != (features.shape[0],) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{ids_path} must hold {features.shape[0]} integer item ids (one per row of {path.name}); "
                         f"got shape {ids.shape}, dtype {ids.dtype}.")
    if ids.size and (ids.min() < 0 or ids.max() >= n_items):
        raise ValueError(f"{ids_path} has item ids outside [0, {n_items}).")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{ids_path} lists some item ids more than once.")
    if ids.size == n_items and (ids == np.arange(n_items)).all():
        return features
    aligned = np.zeros((n_items, features.shape[1]), dtype=features.dtype)
    aligned[ids] = features
    return aligned


def save_mmrec(dataset: Dataset, folder: str | os.PathLike) -> Path:
    """Write ``dataset`` as a MMRec-format folder that :func:`load_mmrec` reads back.

    Writes ``<name>.inter`` (``userID itemID x_label``), for each present
    modality ``<modality>_feat.npy`` (float32, one row per item) with
    ``<modality>_item_ids.npy``, the id maps ``u_id_mapping.csv`` (``user_id,userID``) and
    ``i_id_mapping.csv`` (``item_id,itemID``) when the dataset has original ids (written as
    text: they read back as strings, leading zeros kept), and ``item_info.csv`` when it has item
    metadata.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be an lgrec.Dataset; got {type(dataset).__name__}.")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} exists and is not a directory.")
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for split, code in _SPLIT_LABELS.items():
        coo = getattr(dataset, split).tocoo()
        parts.append(pd.DataFrame({"userID": coo.row, "itemID": coo.col, "x_label": code}))
    frame = pd.concat(parts, ignore_index=True).sort_values(["userID", "itemID"], kind="stable")
    frame.to_csv(folder / f"{dataset.name}.inter", sep="\t", index=False)
    for modality in _MODALITIES:
        features = getattr(dataset, modality)
        if features is not None:
            np.save(folder / f"{modality}_feat.npy", np.asarray(features, dtype=np.float32))
            np.save(folder / f"{modality}_item_ids.npy", np.arange(dataset.n_items, dtype=np.int64))
    for ids, kind in ((dataset.user_ids, "user"), (dataset.item_ids, "item")):
        if ids is not None:
            column = f"{kind}ID"
            pd.DataFrame({f"{kind}_id": np.asarray(ids, dtype=object), column: np.arange(len(ids))}).to_csv(
                folder / f"{kind[0]}_id_mapping.csv", index=False)
    if dataset.item_info is not None:
        info = dataset.item_info
        if "itemID" not in info.columns:
            info = info.rename_axis("itemID").reset_index()
        info.to_csv(folder / "item_info.csv", index=False)
    return folder
