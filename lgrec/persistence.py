"""Saving and loading fitted models as ``.npz`` files (no pickle).

A file holds one array per learned array attribute (``user_factors_``, ...)
and one JSON string, ``__lgrec__``, with the class name, the hyperparameters,
the other learned attributes (``history_``, ``best_epoch_``, ...),
``lgrec.__version__`` and :data:`FORMAT_VERSION`. Loading checks the class,
the format version, that every array is present and that shapes agree with
the recorded sizes.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

__all__ = ["FORMAT_VERSION", "load_model", "save_model"]

FORMAT_VERSION = 2
_META_KEY = "__lgrec__"

#: Hyperparameters renamed since a format version: files of that version load with the new names.
#: Version 1 (lgrec 0.1.0 before the architecture change) named FREEDOM's kNN size ``knn_k`` and
#: RLMultimodalRec's photo weight of the memory ``memory_image_share``.
_RENAMED_SINCE = {
    1: {"FREEDOM": {"knn_k": "n_neighbors"}, "RLMultimodalRec": {"memory_image_share": "image_weight"}},
}


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
        "arrays": sorted(arrays),
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
    """
    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path!r} is not a readable lgrec model file (.npz): {exc}") from exc
    with archive:
        if _META_KEY not in archive.files:
            raise ValueError(f"{path!r} is an .npz file but not an lgrec model (no {_META_KEY!r} entry).")
        meta = json.loads(str(archive[_META_KEY]))
        version = meta.get("format_version")
        if version != FORMAT_VERSION and version not in _RENAMED_SINCE:
            raise ValueError(
                f"{path!r} has model format version {version!r}; this lgrec "
                f"reads versions {sorted([*_RENAMED_SINCE, FORMAT_VERSION])}."
            )
        for old_version in sorted(_RENAMED_SINCE):
            if version <= old_version:
                renames = _RENAMED_SINCE[old_version].get(meta["class"], {})
                meta["params"] = {renames.get(k, k): v for k, v in meta["params"].items()}
        target = _resolve_class(meta["class"]) if cls is None else cls
        if meta["class"] != target.__name__:
            raise ValueError(f"{path!r} holds a {meta['class']}, not a {target.__name__}; use {meta['class']}.load.")
        missing = [name for name in meta["arrays"] if name not in archive.files]
        if missing:
            raise ValueError(f"{path!r} is incomplete: arrays {missing} are missing.")
        model = target(**meta["params"])
        for name, value in meta["learned"].items():
            setattr(model, name, value)
        for name in meta["arrays"]:
            setattr(model, name, archive[name])
    model._check_loaded_state(path)
    return model


def _resolve_class(name: str):
    import lgrec

    target = getattr(lgrec, name, None)
    if not isinstance(target, type):
        raise ValueError(f"model class {name!r} is not part of this lgrec version.")
    return target
