"""A BPR-MF epoch with lazy Adam (``lgrec.kernels.bpr_adam_epoch``) and with per-triplet SGD
(``lgrec.kernels.bpr_sgd_epoch``) against implicit's BPR epoch (issue 12).

Usage::

    pip install -e ".[dev,bench]"      # implicit is the bench extra
    flock /tmp/lgrec-bench.lock python benchmarks/bench_bpr.py --data ../shared/data/amazon-baby \\
        --out benchmarks/results/bpr.json

Both run on the Amazon Baby training split with 64 factors and the same number
of threads (Numba's). In the same run, interleaved round by round:

- ``lgrec`` (``optimizer="adam"``, the default): one epoch = ``TripletSampler.epoch``
  (shuffle + one negative per interaction) + the fused kernel (batches of 2,048,
  BPR + L2 1e-4, lazy Adam lr 1e-3), timed separately as ``lgrec_kernel`` and
  together as ``lgrec_epoch``;
- ``lgrec_sgd`` (``optimizer="sgd"``): the same sampler + the fused SGD kernel (one
  step per triplet, L2 1e-4, BPRMF's default SGD step size; triplets that share no
  row in parallel, the result that of the in-order visit): ``lgrec_sgd_kernel``,
  ``lgrec_sgd_epoch``;
- ``implicit``: ``implicit.cpu.bpr.BayesianPersonalizedRanking(factors=64)``; its
  per-epoch time is ``(fit with 1 + n iterations - fit with 1 iteration) / n``, which
  leaves out the setup of a fit (``implicit_epoch``); a whole 1-iteration fit is
  reported too (``implicit_fit_1_iteration``).

The figures of merit are ``lgrec_epoch / implicit_epoch`` and ``lgrec_sgd_epoch /
implicit_epoch`` (target <= 2.0). JIT compile time of each kernel (first call, empty
Numba cache, fresh process) is reported separately. The machine's load average at the
start and end is recorded (other processes on a shared machine slow every column).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np
import scipy
from _jit import compile_times

import lgrec
from lgrec.kernels import bpr_adam_epoch, bpr_sgd_epoch
from lgrec.models.bpr import DEFAULT_LEARNING_RATES
from lgrec.models._base import xavier_normal
from lgrec.training import TripletSampler

ROOT = Path(__file__).resolve().parents[1]

COMPILE_SNIPPET = """
import time
import numpy as np
t0 = time.perf_counter()
from lgrec.kernels import bpr_adam_epoch, bpr_sgd_epoch
from lgrec.models.bpr import DEFAULT_LEARNING_RATES
t1 = time.perf_counter()
p = np.zeros((3, 4), np.float32); q = np.zeros((5, 4), np.float32)
ids = np.array([0, 1, 2], np.int32)
bpr_adam_epoch(p, q, p.copy(), p.copy(), q.copy(), q.copy(), ids, ids, ids + 1, batch_size=2, regularization=1e-4,
               learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, user_step=0, item_step=0)
print(t1 - t0, time.perf_counter() - t1)
"""

COMPILE_SNIPPET_SGD = """
import time
import numpy as np
t0 = time.perf_counter()
from lgrec.kernels import bpr_sgd_epoch
t1 = time.perf_counter()
p = np.zeros((3, 4), np.float32); q = np.zeros((5, 4), np.float32)
ids = np.array([0, 1, 2], np.int32)
bpr_sgd_epoch(p, q, ids, ids, ids + 1, regularization=1e-4, learning_rate=0.05, block_size=2)
print(t1 - t0, time.perf_counter() - t1)
"""


class LgrecMF:
    """BPR-MF state as ``lgrec.models.bpr.BPRMF`` initialises it, trained by a fused kernel."""

    def __init__(self, train, dim: int, seed: int, optimizer: str = "adam"):
        self.rng = np.random.default_rng(seed)
        self.sampler = TripletSampler(train)
        self.user = xavier_normal(self.rng, train.shape[0], dim)
        self.item = xavier_normal(self.rng, train.shape[1], dim)
        self.optimizer = optimizer
        self.moments = [np.zeros_like(self.user), np.zeros_like(self.user), np.zeros_like(self.item),
                        np.zeros_like(self.item)]
        self.steps = 0

    def epoch(self) -> tuple[float, float, float]:
        """One epoch; returns (sampling seconds, kernel seconds, mean loss)."""
        start = time.perf_counter()
        users, pos, neg = self.sampler.epoch(self.rng)
        sampled = time.perf_counter()
        if self.optimizer == "sgd":
            losses = bpr_sgd_epoch(self.user, self.item, users, pos, neg, regularization=1e-4,
                                   learning_rate=DEFAULT_LEARNING_RATES["sgd"], block_size=2048)
        else:
            losses = bpr_adam_epoch(self.user, self.item, *self.moments, users, pos, neg, batch_size=2048,
                                    regularization=1e-4, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                    user_step=self.steps, item_step=self.steps)
            self.steps += losses.shape[0]
        done = time.perf_counter()
        return sampled - start, done - sampled, float(losses.mean())


def implicit_fit(train, iterations: int, threads: int) -> float:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(factors=64, iterations=iterations, num_threads=threads, random_state=0)
    start = time.perf_counter()
    model.fit(train, show_progress=False)
    return time.perf_counter() - start


def summary(values) -> dict:
    arr = np.asarray(values)
    return {"median_s": float(np.median(arr)), "q25_s": float(np.quantile(arr, 0.25)),
            "q75_s": float(np.quantile(arr, 0.75)), "min_s": float(arr.min()), "max_s": float(arr.max()),
            "n": int(arr.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/amazon-baby"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs-per-round", type=int, default=5)
    parser.add_argument("--implicit-iterations", type=int, default=10,
                        help="n: each round fits implicit with 1 and with 1 + n iterations")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/bpr.json"))
    args = parser.parse_args()

    import implicit

    threads = numba.get_num_threads()
    train = lgrec.load_mmrec(args.data).train
    results = {
        "environment": {
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "implicit": implicit.__version__, "threads": threads,
            "cpu_count": os.cpu_count(), "lgrec": lgrec.__version__, "machine": platform.machine(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "compile": compile_times(COMPILE_SNIPPET, ("import_s", "first_call_s")),
        "compile_sgd": compile_times(COMPILE_SNIPPET_SGD, ("import_s", "first_call_s")),
        "sgd_learning_rate": DEFAULT_LEARNING_RATES["sgd"],
        "dataset": {"n_users": int(train.shape[0]), "n_items": int(train.shape[1]), "nnz": int(train.nnz)},
    }
    models = {"lgrec": LgrecMF(train, 64, seed=0), "lgrec_sgd": LgrecMF(train, 64, seed=0, optimizer="sgd")}
    for model in models.values():
        model.epoch()  # warm-up (compiles nothing: the kernels are cached; touches the tables)
    implicit_fit(train, 1, threads)
    times = {name: {"sampling": [], "kernel": [], "epoch": [], "losses": []} for name in models}
    implicit_epochs, implicit_one = [], []
    for round_ in range(args.rounds):
        for name, model in models.items():
            for _ in range(args.epochs_per_round):
                s, k, loss = model.epoch()
                times[name]["sampling"].append(s)
                times[name]["kernel"].append(k)
                times[name]["epoch"].append(s + k)
                times[name]["losses"].append(loss)
        one = implicit_fit(train, 1, threads)
        many = implicit_fit(train, 1 + args.implicit_iterations, threads)
        implicit_one.append(one)
        implicit_epochs.append((many - one) / args.implicit_iterations)
        last = {name: {key: np.median(values[-args.epochs_per_round:]) for key, values in t.items()}
                for name, t in times.items()}
        print(f"round {round_ + 1}: lgrec adam epoch {last['lgrec']['epoch']:.4f} s (kernel "
              f"{last['lgrec']['kernel']:.4f} s), sgd epoch {last['lgrec_sgd']['epoch']:.4f} s (kernel "
              f"{last['lgrec_sgd']['kernel']:.4f} s), implicit epoch {implicit_epochs[-1]:.4f} s "
              f"(1-iteration fit {one:.4f} s)", flush=True)
    for name, t in times.items():
        for key in ("sampling", "kernel", "epoch"):
            results[f"{name}_{key}"] = summary(t[key])
        results[f"{name}_mean_loss_per_epoch"] = t["losses"]
    results["implicit_epoch"] = summary(implicit_epochs)
    results["implicit_fit_1_iteration"] = summary(implicit_one)
    for name in models:
        for key in ("epoch", "kernel"):
            results[f"{name}_{key}_over_implicit_epoch"] = (results[f"{name}_{key}"]["median_s"]
                                                            / results["implicit_epoch"]["median_s"])
    results["environment"]["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps({key: results[key] for key in (
        "lgrec_epoch", "lgrec_kernel", "lgrec_sampling", "lgrec_sgd_epoch", "lgrec_sgd_kernel", "lgrec_sgd_sampling",
        "implicit_epoch", "implicit_fit_1_iteration", "lgrec_epoch_over_implicit_epoch",
        "lgrec_kernel_over_implicit_epoch", "lgrec_sgd_epoch_over_implicit_epoch",
        "lgrec_sgd_kernel_over_implicit_epoch", "compile", "compile_sgd", "environment")}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
