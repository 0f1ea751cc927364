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
  lgrec fit DATA_DIR --model lightgcn --save m.npz --report report.json
  lgrec evaluate m.npz DATA_DIR --split test
  lgrec recommend m.npz DATA_DIR --users 0,1,2 --k 10

DATA_DIR is a MMRec-format folder: <name>.inter (tab-separated, header
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


def cmd_recommend(args) -> int:
    check_output_path(args.out, "--out", directory=True)
    model = _load_any(args.model_path)
    users = np.arange(model.n_users_, dtype=np.int64) if args.all else np.asarray(args.users, dtype=np.int64)
    check_user_ids(users, model.n_users_, "--users")
    if args.out or args.scheduler:
        return _recommend_to_parquet(args, model, users)
    if args.data_dir:
        dataset = load_mmrec(args.data_dir)
        _check_dataset_fits_model(dataset, model, args.data_dir, args.model_path)
        ids, scores = model.recommend(users, dataset.train[users], k=args.k)
    else:
        dataset = None
        ids, scores = model.recommend(users, k=args.k, filter_already_liked_items=False)
    rows = []
    for u, row_ids, row_scores in zip(users, ids, scores):
        keep = row_ids >= 0
        original = None
        if dataset is not None and dataset.item_ids is not None:
            original = [str(dataset.item_ids[i]) for i in row_ids[keep]]
        rows.append({"user": int(u), "items": row_ids[keep].tolist(), "scores": row_scores[keep].round(5).tolist(),
                     **({"original_item_ids": original} if original else {})})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"user {row['user']}: " + " ".join(map(str, row.get("original_item_ids", row["items"]))))
    return 0


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
                         description="Recommend with a saved model. With DATA_DIR, items the user interacted with "
                                     "in the train split are filtered and original ids are printed when known.")
    rec.add_argument("model_path", metavar="MODEL")
    rec.add_argument("data_dir", metavar="DATA_DIR", nargs="?", help="dataset folder (to filter seen items)")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", type=_user_list, help="comma-separated user ids, e.g. 0,1,2")
    who.add_argument("--all", action="store_true", help="every user of the model")
    rec.add_argument("--k", type=_positive_int, default=10)
    rec.add_argument("--json", action="store_true", help="print JSON (ids and scores)")
    rec.add_argument("--out", metavar="PATH",
                     help="write Parquet (columns user, rank, item, score; one file per partition) instead of "
                          "printing; runs on Dask (needs lgrec[dask])")
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
    comp.add_argument("--group-by", default="auto", metavar="COLUMN",
                      help="item_info column grouping the image-share plot (default: the first of "
                           "product_group_name, category, genre present)")
    comp.add_argument("--exclude-valid", action="store_true",
                      help="also exclude validation items when ranking for test (MMRec excludes train only)")
    comp.add_argument("--quiet", action="store_true", help="no per-fit progress lines")
    comp.set_defaults(func=cmd_compare)

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
