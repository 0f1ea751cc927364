"""Training cost against data size on make_powerlaw data: epoch time, time to early stop, peak RSS (issue 15).

For each model and size, in a fresh child process: generate ``n`` interactions
with :func:`lgrec.datasets.make_powerlaw` (``n / 10`` users, ``n / 100`` items
capped at ``--max-items``, 64-d cluster-correlated image and text features for
RLMultimodalRec; 10 % validation and 10 % test), fit with ``batch_size="auto"``
(64 optimiser steps per epoch, at least 2,048 triplets) and early stopping on
the validation Recall@20 of a fixed sample of ``--valid-users`` users (the
validation interactions of the other users are dropped: ranking every user
of a 10^6-user catalogue after every epoch would cost more than the epoch),
then record the median epoch time, the median validation time, the whole fit
time, the epochs to the best validation epoch and to the stop, and the
child's peak RSS (``ru_maxrss``, data generation included).

The growth exponent is the least-squares slope of log(median epoch time)
against log(interactions) over the sizes run for a model.

Usage::

    flock /tmp/lgrec-bench.lock python benchmarks/bench_train_scale.py \\
        --models lightgcn,rlmm --sizes 1e5,1e6,1e7 --out benchmarks/results/train_scale.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


def sample_valid(valid, n_users: int, rng: np.random.Generator):
    """``valid`` with only the rows of ``n_users`` random users that have validation items."""
    import scipy.sparse as sp

    has = np.flatnonzero(np.diff(valid.indptr))
    keep = np.sort(rng.choice(has, min(n_users, has.size), replace=False))
    mask = np.zeros(valid.shape[0], dtype=np.float32)
    mask[keep] = 1.0
    return sp.csr_matrix(sp.diags(mask) @ valid)


def child(model: str, n: int, max_items: int, valid_users: int, max_epochs: int, patience: int) -> dict:
    import lgrec
    from lgrec.datasets import make_powerlaw

    n_users, n_items = max(100, n // 10), int(min(max_items, max(1_000, n // 100)))
    features = 64 if model == "rlmm" else None
    started = time.perf_counter()
    data = make_powerlaw(n_users, n_items, n, image_dim=features, text_dim=features, random_state=0)
    generate = time.perf_counter() - started
    valid = sample_valid(data.valid, valid_users, np.random.default_rng(1))
    params = {"batch_size": "auto", "max_epochs": max_epochs, "patience": patience, "random_state": 0}
    started = time.perf_counter()
    if model == "rlmm":
        fitted = lgrec.RLMultimodalRec(**params).fit(data.train, data.image, data.text, valid=valid)
    else:
        fitted = lgrec.LightGCN(**params).fit(data.train, valid=valid)
    fit_seconds = time.perf_counter() - started
    history = fitted.history_
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "model": model, "interactions": int(data.train.nnz), "generated": n, "users": n_users, "items": n_items,
        "batch_size": int(fitted.batch_size_), "generate_seconds": generate, "fit_seconds": fit_seconds,
        "epochs": len(history), "best_epoch": int(fitted.best_epoch_),
        "stopped_early": len(history) < max_epochs,
        "epoch_seconds_median": float(np.median([h["train_seconds"] for h in history])),
        "eval_seconds_median": float(np.median([h["eval_seconds"] for h in history])),
        "best_valid_recall20": float(max(h["valid_recall@20"] for h in history)),
        "peak_rss_bytes": int(peak), "peak_rss_bytes_per_interaction": peak / data.train.nnz,
        "max_epochs": max_epochs, "patience": patience, "valid_users": valid_users,
    }


def growth_exponent(runs: list[dict]) -> float | None:
    """Slope of log(median epoch seconds) against log(training interactions)."""
    if len(runs) < 2:
        return None
    x = np.log([r["interactions"] for r in runs])
    y = np.log([r["epoch_seconds_median"] for r in runs])
    return float(np.polyfit(x, y, 1)[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lightgcn,rlmm", help="comma-separated: lightgcn, rlmm")
    parser.add_argument("--sizes", default="1e5,1e6,1e7", help="interactions generated, comma-separated")
    parser.add_argument("--max-items", type=float, default=1e5)
    parser.add_argument("--valid-users", type=int, default=10_000)
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per child")
    parser.add_argument("--out", default=None, help="append the runs to this JSON file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model, n = args.child.split(":")
        print(json.dumps(child(model, int(float(n)), int(args.max_items), args.valid_users, args.max_epochs,
                               args.patience)))
        return
    runs = []
    for model in args.models.split(","):
        model_runs = []
        for size in args.sizes.split(","):
            cmd = [sys.executable, __file__, "--child", f"{model}:{size}", "--max-items", str(args.max_items),
                   "--valid-users", str(args.valid_users), "--max-epochs", str(args.max_epochs),
                   "--patience", str(args.patience)]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
            except subprocess.TimeoutExpired:
                print(f"{model} {size}: timed out after {args.timeout:.0f} s", flush=True)
                runs.append({"model": model, "generated": int(float(size)), "error": "timeout"})
                continue
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-3:]
                print(f"{model} {size}: failed (exit {done.returncode}): {tail}", flush=True)
                runs.append({"model": model, "generated": int(float(size)), "error": " | ".join(tail)})
                continue
            run = json.loads(done.stdout.strip().splitlines()[-1])
            model_runs.append(run)
            runs.append(run)
            print(f"{model} {run['interactions']:>11,d}: batch {run['batch_size']:>7,d}  "
                  f"epoch {run['epoch_seconds_median']:8.2f} s  eval {run['eval_seconds_median']:6.2f} s  "
                  f"fit {run['fit_seconds']:8.1f} s ({run['epochs']} epochs, best {run['best_epoch']})  "
                  f"peak {run['peak_rss_bytes'] / GIB:5.2f} GiB ({run['peak_rss_bytes_per_interaction']:.0f} B/int)",
                  flush=True)
        exponent = growth_exponent(model_runs)
        if exponent is not None:
            print(f"{model}: epoch time ~ interactions^{exponent:.2f}", flush=True)
            runs.append({"model": model, "growth_exponent": exponent,
                         "sizes": [r["interactions"] for r in model_runs]})
    if args.out:
        path = Path(args.out)
        previous = json.loads(path.read_text()) if path.exists() else []
        import lgrec

        previous.append({"date": time.strftime("%Y-%m-%d %H:%M"), "lgrec": lgrec.__version__,
                         "load_average": list(np.round(np.array(__import__("os").getloadavg()), 2)),
                         "runs": runs})
        path.write_text(json.dumps(previous, indent=1) + "\n")


if __name__ == "__main__":
    main()
