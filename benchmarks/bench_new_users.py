"""New users without retraining: ``recommend_new`` on users held out of training entirely.

On ML-1M (the folder of tools/prepare_ml1m.py), a seeded 10 % of the users is removed from
training. Each model is fitted twice with the same hyperparameters and seed: on every user
(the "full fit") and on the other 90 % (the "held-out fit"). For the held-out users, ranking
their test items with their train items as history (train items excluded from the ranking):

- full fit: ``model.recommend`` on their own trained rows;
- held-out fit: ``model.recommend_new`` from their train items, for several fold-in step
  counts; the count is chosen on the held-out users' valid items, the test split is read for
  every count but the choice is made on valid only.

Reported: Recall@20 / NDCG@20 of the held-out users under both fits and the ratio.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_new_users.py \\
        --data /work/data/ml1m --max-epochs 40 --out benchmarks/results/new_users_ml1m.json

Not a timing benchmark (the fit times are printed for orientation only).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numba
import numpy as np

import lgrec
from lgrec.evaluation import evaluate

MODELS = {
    "popularity": lgrec.Popularity,
    "contentknn": lgrec.ContentKNN,
    "bpr": lgrec.BPRMF,
    "lightgcn": lgrec.LightGCN,
    "rlmm": lgrec.RLMultimodalRec,
    "vbpr": lgrec.VBPR,
    "freedom": lgrec.FREEDOM,
}
TRAINED = {"bpr", "lightgcn", "rlmm", "vbpr", "freedom"}
STEPS = (0, 10, 50, 200)


class _Rows:
    """``score_users`` of a model restricted to some of its users (for :func:`lgrec.evaluate`)."""

    def __init__(self, model, users):
        self.model, self.users = model, users
        self.n_users_, self.n_items_ = users.shape[0], model.n_items_

    def score_users(self, rows):
        return self.model.score_users(self.users[rows])


def _metrics(scorer, truth, exclude) -> dict:
    result = evaluate(scorer, truth, exclude, k=(20,))
    return {"recall@20": result["recall@20"], "ndcg@20": result["ndcg@20"], "n_users": result["n_users"]}


def _fit(name, train, valid, data, args):
    params = {} if name not in TRAINED else {"random_state": args.seed, "max_epochs": args.max_epochs,
                                             "batch_size": "auto"}
    model = MODELS[name](**params)
    started = time.perf_counter()
    model.fit(train, data.image, data.text, valid=valid)
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/data/ml1m")
    parser.add_argument("--models", default="popularity,contentknn,bpr,lightgcn,rlmm,vbpr,freedom")
    parser.add_argument("--held-out", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--out", default="benchmarks/results/new_users_ml1m.json")
    args = parser.parse_args()

    data = lgrec.load_mmrec(args.data)
    rng = np.random.default_rng(args.seed)
    n_held = int(round(args.held_out * data.n_users))
    held = np.sort(rng.choice(data.n_users, size=n_held, replace=False))
    keep = np.setdiff1d(np.arange(data.n_users), held)
    history = data.train[held]
    results = {
        "command": "python benchmarks/bench_new_users.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "dataset": data.summary(), "held_out_users": int(n_held), "seed": args.seed,
        "max_epochs_cap": args.max_epochs, "batch_size": "auto", "fold_in_steps_tried": list(STEPS),
        "versions": {"lgrec": lgrec.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "numba_threads": numba.get_num_threads(), "models": {},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        full, full_seconds = _fit(name, data.train, data.valid, data, args)
        part, part_seconds = _fit(name, data.train[keep], data.valid[keep], data, args)
        row = {
            "fit_seconds": {"full": round(full_seconds, 1), "held_out": round(part_seconds, 1)},
            "best_epoch": {"full": getattr(full, "best_epoch_", None), "held_out": getattr(part, "best_epoch_", None)},
            "full_fit": {"valid": _metrics(_Rows(full, held), data.valid[held], history),
                         "test": _metrics(_Rows(full, held), data.test[held], history)},
            "fold_in": {},
        }
        for steps in (STEPS if name in TRAINED else (0,)):
            started = time.perf_counter()
            scorer = part.new_user_scorer(history, n_steps=steps, random_state=args.seed)
            row["fold_in"][steps] = {"seconds": round(time.perf_counter() - started, 2),
                                     "valid": _metrics(scorer, data.valid[held], history),
                                     "test": _metrics(scorer, data.test[held], history)}
        chosen = max(row["fold_in"], key=lambda s: row["fold_in"][s]["valid"]["recall@20"])
        row["chosen_steps_on_valid"] = chosen
        row["ratio_test_recall@20"] = (row["fold_in"][chosen]["test"]["recall@20"]
                                       / row["full_fit"]["test"]["recall@20"])
        results["models"][name] = row
        print(f"{name}: full {row['full_fit']['test']['recall@20']:.4f}  new users "
              f"{row['fold_in'][chosen]['test']['recall@20']:.4f} (steps {chosen} chosen on valid)  "
              f"ratio {row['ratio_test_recall@20']:.3f}  fits {full_seconds:.0f}s/{part_seconds:.0f}s", flush=True)
        out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
