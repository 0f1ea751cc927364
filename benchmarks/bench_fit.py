"""Fit one model configuration on one dataset folder and append a JSON line of its figures (issue 11).

The runner behind the warm-data experiments in ``benchmarks/README.md``: the
model is fitted on the train split with early stopping on the valid split,
then the test split is evaluated once (training items excluded, as MMRec
does). The line records the parameters, the best validation Recall@20 of the
training history, test Recall@20 / NDCG@20, the best and last epoch, the fit
time, the median epoch and validation times, RLMultimodalRec's chosen memory
weight and the 5/50/95 % quantiles of its per-item image share.

Usage::

    python benchmarks/bench_fit.py /work/data/sports rlmm --seed 0 --set item_graph=True \\
        --tag my-run --log benchmarks/results/warm_runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import lgrec
from lgrec.cli import _parse_sets as parse_sets  # the CLI's --set NAME=VALUE rules
from lgrec.models import MODELS


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="MMRec-format dataset folder")
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-image", action="store_true")
    parser.add_argument("--no-text", action="store_true")
    parser.add_argument("--log", default="benchmarks/results/warm_runs.jsonl")
    args = parser.parse_args(argv)
    data = lgrec.load_mmrec(args.data)
    params = parse_sets(args.set)
    cls = MODELS[args.model]
    if "random_state" in cls._get_param_names():
        params["random_state"] = args.seed
    image = None if args.no_image else data.image
    text = None if args.no_text else data.text
    started = time.perf_counter()
    model = cls(**params).fit(data.train, image, text, valid=data.valid)
    fit_seconds = time.perf_counter() - started
    test = lgrec.evaluate(model, data.test, data.train, k=(10, 20))
    history = getattr(model, "history_", [])
    valid = max([h.get("valid_recall@20", 0.0) for h in history] or
                [lgrec.evaluate(model, data.valid, data.train, k=20)["recall@20"]])
    record = {
        "data": str(args.data), "model": args.model, "tag": args.tag, "seed": args.seed,
        "params": {k: v for k, v in params.items() if k != "random_state"},
        "valid_r20": round(valid, 5), "test_r20": round(test["recall@20"], 5), "test_n20": round(test["ndcg@20"], 5),
        "best_epoch": getattr(model, "best_epoch_", None), "epochs": len(history), "fit_s": round(fit_seconds, 1),
        "epoch_s": round(float(np.median([h["train_seconds"] for h in history])), 3) if history else None,
        "eval_s": round(float(np.median([h["eval_seconds"] for h in history])), 3) if history else None,
        "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": [round(x, 2) for x in __import__("os").getloadavg()],
    }
    if getattr(model, "memory_weight_", None) is not None:
        record["memory_weight_"] = model.memory_weight_
    share = getattr(model, "image_share_", None)
    if share is not None and np.isfinite(share).any():
        record["image_share_q"] = [round(float(q), 3) for q in np.nanquantile(share, [0.05, 0.5, 0.95])]
    print(json.dumps(record), flush=True)
    if args.log:
        with Path(args.log).open("a") as handle:
            handle.write(json.dumps(record) + "\n")
    return record


if __name__ == "__main__":
    main()
