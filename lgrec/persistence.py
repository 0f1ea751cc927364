"""Saving and loading fitted models as ``.npz`` files (no pickle).

A file holds one ``.npy`` entry per learned array attribute (``user_factors_``,
...) and one JSON string, ``__lgrec__``, with the class name, the
hyperparameters, the other learned attributes (``history_``, ``best_epoch_``,
...), ``lgrec.__version__``, :data:`FORMAT_VERSION` and (since version 3) the
shape and dtype of every array.

Loading trusts nothing in the file. Before any array is decompressed it checks
the zip directory (entry names, and an uncompressed total bounded by
:data:`MAX_EXPANSION` times the file size plus :data:`EXPANSION_SLACK`), every
``.npy`` header against the entry's size and the recorded shape and dtype, and
that the names are exactly the class's learned attributes
(``_saved_state``: none unknown, none shadowing a method or property). It
then reads the arrays without pickle and checks their values: dtypes (float32
factors, integer index arrays), shapes against each other (users, items,
embedding size), index ranges of every sparse part, finiteness, and the
hyperparameters through the estimator's own ``_check_params`` (the checks of
``fit``). A malicious file is refused with a :class:`ValueError` naming the
file; it can never run code or make scipy or a kernel read out of bounds.
"""

from __future__ import annotations

import json
import numbers
import os
import zipfile
from dataclasses import dataclass

import numpy as np

__all__ = ["EXPANSION_SLACK", "FORMAT_VERSION", "MAX_EXPANSION", "Array", "Value", "load_model", "save_model"]

FORMAT_VERSION = 3
_META_KEY = "__lgrec__"
#: Largest ratio of uncompressed entries to file size accepted (``save`` writes uncompressed entries,
#: so a genuine file is about 1.0; a zip bomb is hundreds or more) ...
MAX_EXPANSION = 50
#: ... plus this many bytes, so that small files compressed by a user still load.
EXPANSION_SLACK = 64 * 2**20
_MAX_META_BYTES = 64 * 2**20

#: Hyperparameters renamed since a format version: files of that version load with the new names.
#: Version 1 (lgrec 0.1.0 before the architecture change) named FREEDOM's kNN size ``knn_k`` and
#: RLMultimodalRec's photo weight of the memory ``memory_image_share``.
_RENAMED_SINCE = {
    1: {"FREEDOM": {"knn_k": "n_neighbors"}, "RLMultimodalRec": {"memory_image_share": "image_weight"}},
    2: {},
}
_READABLE = sorted({*_RENAMED_SINCE, FORMAT_VERSION})


@dataclass(frozen=True)
class Array:
    """What a saved learned array must look like.

    Parameters
    ----------
    shape : tuple of str or int
        One symbol per axis: ``"U"`` users, ``"I"`` items, ``"E"`` the
        ``embedding_size`` hyperparameter, ``"U+1"`` users plus one; any other
        name is bound by its first use and must agree everywhere else.
    dtype : {"float32", "int"}
        float32 exactly, or any integer dtype.
    finite : bool
        Whether NaN / inf are refused (gates hold NaN rows by design).
    optional : bool
        Whether the attribute may be absent (saved as ``None``).
    ids_of : str, optional
        The values are indices in ``[0, size of that symbol)``.
    """

    shape: tuple
    dtype: str = "float32"
    finite: bool = True
    optional: bool = False
    ids_of: str | None = None


@dataclass(frozen=True)
class Value:
    """What a saved non-array learned attribute must be: ``"history"`` (list of dicts of numbers),
    ``"count"`` (int >= 0), ``"positive"`` (int >= 1), ``"weight"`` (finite real >= 0) or
    ``"scores"`` (dict of str to real). With ``size_of``, a count must equal that array
    dimension (or be 0 when no array binds it)."""

    kind: str
    optional: bool = False
    size_of: str | None = None


def _json_value(name: str, value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.random.Generator):
        return None
    if isinstance(value, tuple):
        return list(value)
    return value


def save_model(model, path: str | os.PathLike) -> str:
    """Write a fitted model to ``path`` (``.npz`` is appended when missing).

    Parameters
    ----------
    model : fitted lgrec estimator
    path : str or path-like

    Returns
    -------
    str
        The path written.
    """
    from . import __version__

    arrays = {}
    learned = {}
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError(f"learned attribute {name} has dtype object and cannot be saved without pickle")
            arrays[name] = value
        else:
            learned[name] = _json_value(name, value)
    params = {name: _json_value(name, value) for name, value in model.get_params().items()}
    meta = {
        "class": type(model).__name__,
        "format_version": FORMAT_VERSION,
        "lgrec_version": __version__,
        "params": params,
        "learned": learned,
        "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in sorted(arrays.items())},
    }
    try:
        meta_json = json.dumps(meta, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"cannot save {type(model).__name__}: a parameter or learned value is not JSON-serialisable ({exc})") from exc
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    with open(path, "wb") as handle:
        np.savez(handle, **arrays, **{_META_KEY: np.array(meta_json)})
    return path


class _Refused(ValueError):
    """A check of :func:`load_model` failed (re-raised with the file name)."""


def load_model(cls, path: str | os.PathLike):
    """Read a model written by :func:`save_model` and check it is a ``cls``.

    Parameters
    ----------
    cls : type
        Expected estimator class (``lgrec.LightGCN``, ...), or ``None`` to
        accept any class registered in ``lgrec``.
    path : str or path-like

    Returns
    -------
    estimator
        A fitted estimator of the saved class.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not an lgrec model, is corrupt or truncated, or any
        check listed in the module docstring fails; the message names the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist.")
    if not os.path.isfile(path):
        raise ValueError(f"model file {path!r} is not a regular file.")
    try:
        with zipfile.ZipFile(path) as archive:
            return _load(cls, archive, os.path.getsize(path))
    except _Refused as exc:
        raise ValueError(f"model file {path!r}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError,
            NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(
            f"model file {path!r} is not a readable lgrec model (.npz): {type(exc).__name__}: {exc}"
        ) from None


def _load(cls, archive: zipfile.ZipFile, file_size: int):
    entries = _check_directory(archive, file_size)
    meta = _read_meta(archive, entries)
    target = _resolve_class(meta["class"]) if cls is None else cls
    if meta["class"] != target.__name__:
        raise _Refused(f"holds a {meta['class']}, not a {target.__name__}; use {meta['class']}.load.")
    spec = target._saved_state
    _check_names(target, spec, entries, meta)
    headers = {name: _read_header(archive, name) for name in entries if name != _META_KEY}
    if isinstance(meta["arrays"], dict):
        for name, (shape, dtype) in headers.items():
            recorded = meta["arrays"][name]
            if not isinstance(recorded, dict) or list(shape) != recorded.get("shape") or dtype.str != recorded.get("dtype"):
                raise _Refused(f"array {name} has shape {shape} and dtype {dtype.str} but the file records {recorded}.")
    model = target(**_checked_params(target, meta["params"]))
    sizes = {"E": model.get_params().get("embedding_size")}
    for name, (shape, dtype) in headers.items():
        _check_array_header(name, shape, dtype, spec[name], sizes)
    for name, value in meta["learned"].items():
        _check_value(name, value, spec[name], sizes)
    arrays = {}
    for name in headers:
        with archive.open(name + ".npy") as handle:
            arrays[name] = np.lib.format.read_array(handle, allow_pickle=False)
    for name, array in arrays.items():
        _check_array_values(name, array, spec[name], sizes)
    for prefix, (rows, cols) in getattr(target, "_saved_sparse", {}).items():
        parts = [arrays.get(f"{prefix}_{part}_") for part in ("data", "indices", "indptr")]
        if any(part is not None for part in parts):
            if any(part is None for part in parts):
                raise _Refused(f"the sparse matrix {prefix} is incomplete (data, indices and indptr go together).")
            from ._validation import check_csr_arrays

            try:
                check_csr_arrays(parts[2], parts[1], (sizes[rows], sizes[cols]), f"the {prefix} arrays", parts[0])
            except ValueError as exc:
                raise _Refused(str(exc)) from None
    for name, value in meta["learned"].items():
        setattr(model, name, value)
    for name, array in arrays.items():
        setattr(model, name, array)
    try:
        model._check_loaded_state()
    except ValueError as exc:
        raise _Refused(str(exc)) from None
    return model


def _check_directory(archive: zipfile.ZipFile, file_size: int) -> set[str]:
    """Entry names (without ``.npy``) after bounding the uncompressed size, before decompressing anything."""
    infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    bound = MAX_EXPANSION * file_size + EXPANSION_SLACK
    if total > bound:
        raise _Refused(
            f"its entries would expand to {total:,} bytes from a {file_size:,}-byte file (at most {bound:,} "
            "accepted): refused as a possible zip bomb."
        )
    names = set()
    for info in infos:
        if not info.filename.endswith(".npy") or "/" in info.filename or info.filename[:-4] in names:
            raise _Refused(f"unexpected zip entry {info.filename!r}; an lgrec model holds one .npy entry per array.")
        names.add(info.filename[:-4])
    if _META_KEY not in names:
        raise _Refused(f"an .npz file but not an lgrec model (no {_META_KEY!r} entry).")
    return names


def _read_header(archive: zipfile.ZipFile, name: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype from an entry's ``.npy`` header (a few hundred bytes are decompressed)."""
    info = archive.getinfo(name + ".npy")
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise _Refused(f"array {name} has an unknown .npy version {version}.")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(handle)
        header_bytes = handle.tell()
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"array {name} has dtype {dtype}; lgrec models hold plain numeric arrays only (no pickle).")
    if fortran:
        raise _Refused(f"array {name} is stored in Fortran order; lgrec writes C order.")
    expected = header_bytes + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if info.file_size != expected:
        raise _Refused(
            f"array {name} is truncated or padded: its header says shape {shape}, dtype {dtype} "
            f"({expected:,} bytes) but the entry holds {info.file_size:,} bytes."
        )
    return tuple(shape), dtype


def _read_meta(archive: zipfile.ZipFile, entries: set[str]) -> dict:
    shape, dtype = _read_header(archive, _META_KEY)
    if shape != () or dtype.kind != "U" or dtype.itemsize > _MAX_META_BYTES:
        raise _Refused(f"the {_META_KEY!r} entry must be one JSON string; got dtype {dtype}, shape {shape}.")
    with archive.open(_META_KEY + ".npy") as handle:
        text = str(np.lib.format.read_array(handle, allow_pickle=False))
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"the {_META_KEY!r} entry is not valid JSON ({exc}).") from None
    expected = {"class": str, "format_version": int, "params": dict, "learned": dict, "arrays": (list, dict)}
    if not isinstance(meta, dict):
        raise _Refused(f"the {_META_KEY!r} entry must hold a JSON object; got {type(meta).__name__}.")
    for key, kind in expected.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise _Refused(f"its metadata field {key!r} is missing or of the wrong type ({meta.get(key)!r:.80}).")
    version = meta["format_version"]
    if version not in _READABLE:
        raise _Refused(f"model format version {version!r}; this lgrec reads versions {_READABLE}.")
    if (version >= 3) != isinstance(meta["arrays"], dict):
        raise _Refused(f"format version {version} records its arrays as a {type(meta['arrays']).__name__}.")
    for old_version in sorted(_RENAMED_SINCE):
        if version <= old_version:
            renames = _RENAMED_SINCE[old_version].get(meta["class"], {})
            meta["params"] = {renames.get(k, k): v for k, v in meta["params"].items()}
    listed = set(meta["arrays"])
    if not all(isinstance(name, str) for name in listed) or listed != entries - {_META_KEY}:
        missing, extra = sorted(listed - entries), sorted(entries - listed - {_META_KEY})
        raise _Refused(f"its arrays do not match its metadata: missing {missing}, not listed {extra}.")
    return meta


def _check_names(target, spec: dict, entries: set[str], meta: dict) -> None:
    """Only the class's learned attributes, each once, none shadowing a method or property."""
    arrays = entries - {_META_KEY}
    for name in sorted(arrays | set(meta["learned"])):
        if not name.endswith("_") or name.startswith("_") or hasattr(target, name):
            raise _Refused(f"attribute {name!r} is not a learned attribute name (it would shadow or hide class members).")
        if name not in spec:
            raise _Refused(f"unknown learned attribute {name!r} for {target.__name__} (known: {sorted(spec)}).")
    for name in arrays & set(meta["learned"]):
        raise _Refused(f"attribute {name!r} is stored twice (as an array and as a value).")
    for name, rule in spec.items():
        present = name in arrays or name in meta["learned"]
        if not present and not rule.optional:
            raise _Refused(f"it is incomplete: {name} is missing.")
        if isinstance(rule, Array) and name in meta["learned"] and meta["learned"][name] is not None:
            raise _Refused(f"{name} must be an array or None; got {meta['learned'][name]!r:.80}.")
        if isinstance(rule, Array) and name in meta["learned"] and not rule.optional:
            raise _Refused(f"it is incomplete: {name} is None.")


def _checked_params(target, params: dict) -> dict:
    """Hyperparameters through the estimator's own checks (those of ``fit``)."""
    known = target._get_param_names()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise _Refused(f"unknown hyperparameter(s) {unknown} for {target.__name__} (known: {known}).")
    model = target(**params)
    try:
        model._check_params()
        if params.get("random_state") is not None:
            from ._validation import check_random_state

            check_random_state(params["random_state"])
    except (ValueError, TypeError) as exc:
        raise _Refused(f"invalid hyperparameter: {exc}") from None
    return params


def _bind(sizes: dict, symbol, size: int, name: str) -> None:
    if isinstance(symbol, int):
        if size != symbol:
            raise _Refused(f"array {name} has size {size} where {symbol} is required.")
        return
    if symbol.endswith("+1"):
        symbol, size = symbol[:-2], size - 1
    known = sizes.get(symbol)
    if known is None:
        sizes[symbol] = size
    elif known != size:
        meaning = {"U": "users", "I": "items", "E": "embedding_size"}.get(symbol, f"dimension {symbol}")
        raise _Refused(f"array {name} implies {size} for {meaning} where the other arrays imply {known}.")


def _check_array_header(name: str, shape: tuple, dtype: np.dtype, rule, sizes: dict) -> None:
    if not isinstance(rule, Array):
        raise _Refused(f"{name} must be stored as a value, not as an array.")
    if rule.dtype == "float32" and dtype != np.float32:
        raise _Refused(f"array {name} must be float32; got {dtype}.")
    if rule.dtype == "int" and dtype.kind not in "iu":
        raise _Refused(f"array {name} must hold integers; got {dtype}.")
    if len(shape) != len(rule.shape):
        raise _Refused(f"array {name} must have {len(rule.shape)} dimension(s) {rule.shape}; got shape {shape}.")
    for symbol, size in zip(rule.shape, shape):
        _bind(sizes, symbol, size, name)


def _check_array_values(name: str, array: np.ndarray, rule: Array, sizes: dict) -> None:
    if rule.finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise _Refused(f"array {name} contains NaN or inf.")
    if rule.ids_of is not None and array.size:
        bound = sizes.get(rule.ids_of)
        low, high = int(array.min()), int(array.max())
        if low < 0 or bound is None or high >= bound:
            raise _Refused(f"array {name} holds indices in [{low}, {high}], outside [0, {bound}).")


def _check_value(name: str, value, rule, sizes: dict) -> None:
    if isinstance(rule, Array):
        return  # an absent optional array (None), checked in _check_names
    if value is None and rule.optional:
        return
    if rule.kind in ("count", "positive"):
        low = 0 if rule.kind == "count" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise _Refused(f"{name} must be an int >= {low}; got {value!r:.80}.")
        if rule.size_of is not None and value != sizes.get(rule.size_of, 0):
            raise _Refused(f"{name} is {value} but the arrays imply {sizes.get(rule.size_of, 0)}.")
    elif rule.kind == "weight":
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
            raise _Refused(f"{name} must be a finite real >= 0; got {value!r:.80}.")
    elif rule.kind == "scores":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, numbers.Real)
                                                  and not isinstance(v, bool) for k, v in value.items()):
            raise _Refused(f"{name} must be a dict of str to number; got {str(value)[:80]!r}.")
    elif rule.kind == "history":
        ok = isinstance(value, list) and all(
            isinstance(row, dict) and all(isinstance(k, str) and (v is None or isinstance(v, numbers.Real))
                                          for k, v in row.items())
            for row in value
        )
        if not ok:
            raise _Refused(f"{name} must be a list of {{name: number}} records; got {str(value)[:80]!r}.")


def _resolve_class(name: str):
    from .models import MODELS

    for target in MODELS.values():
        if target.__name__ == name:
            return target
    raise _Refused(f"model class {name!r} is not an estimator of this lgrec version "
                   f"({sorted(cls.__name__ for cls in MODELS.values())}).")
