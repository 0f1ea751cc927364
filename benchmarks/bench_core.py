"""Speed of the core on Amazon Baby: kernels, epochs, evaluation, whole fits, and a profile.

Usage::

    python benchmarks/bench_core.py --data ../shared/data/amazon-baby --out benchmarks/results/core.json
    python benchmarks/bench_core.py --data ... --full-fit      # also a whole LightGCN fit to early stop

Every timing is a median over repeats after a warm-up (JIT compile time is
reported separately, measured in a fresh process with an empty Numba cache).
Wrap runs in ``flock /tmp/lgrec-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import time
from pathlib import Path

import numba
import numpy as np
import scipy
from _jit import compile_times

import lgrec
from lgrec.graph import normalized_adjacency
from lgrec.models._base import xavier_normal, xavier_uniform
from lgrec.models.bpr import MFObjective
from lgrec.objective import GraphObjective
from lgrec.optim import Adam
from lgrec.training import TripletSampler


def timed(fn, repeats: int, warmup: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times = np.array(times)
    return {"median_s": float(np.median(times)), "min_s": float(times.min()), "max_s": float(times.max()),
            "repeats": repeats}


def run_epoch(objective, sampler, rng, batch_size=2048, optimizer=None):
    optimizer = optimizer or Adam(objective.params)
    users, pos, neg = sampler.epoch(rng)
    objective.run_epoch(users, pos, neg, optimizer, batch_size, objective.initial_state())


COMPILE_SNIPPET = """
import time, numpy as np, scipy.sparse as sp
t0 = time.perf_counter()
import lgrec
from lgrec.kernels import sample_negatives, topk_exclude, topk_exclude_serial, hits_in_sorted, adam_dense, adam_rows, accumulate_rows
from lgrec.kernels.optim import _adam_dense_parallel, _adam_dense_serial
t1 = time.perf_counter()
m = sp.csr_matrix(np.eye(4, 6, dtype=np.float32)); out = np.empty(4, np.int32)
sample_negatives(m.indptr, m.indices, np.arange(4, dtype=np.int32), np.arange(6, dtype=np.int32), np.ones(1, np.uint64), 8, out)
ids = np.empty((4, 2), np.int64); top = np.empty((4, 2), np.float32)
topk_exclude(np.ones((4, 6), np.float32), 2, m.indptr, m.indices, ids, top)
hits = np.empty((4, 2), bool); hits_in_sorted(ids, m.indptr, m.indices, hits)
p = np.zeros(8, np.float32)
_adam_dense_parallel(p, p, p.copy(), p.copy(), 1e-3, .9, .999, 1e-8, .1, .1)
_adam_dense_serial(p, p, p.copy(), p.copy(), 1e-3, .9, .999, 1e-8, .1, .1)
P = np.zeros((4, 3), np.float32)
adam_rows(P, np.arange(2), P[:2], P.copy(), P.copy(), 1e-3, .9, .999, 1e-8, .1, .1)
accumulate_rows(np.zeros(3, np.int64), np.ones((3, 2), np.float32), 1)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def profile_epoch(objective, sampler, rng, top: int = 12) -> list[dict]:
    profiler = cProfile.Profile()
    profiler.enable()
    run_epoch(objective, sampler, rng)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        rows.append({"function": f"{Path(filename).name}:{line}({name})", "calls": ncalls,
                     "tottime_s": tottime, "cumtime_s": cumtime})
    rows.sort(key=lambda r: -r["tottime_s"])
    return rows[:top]


def implicit_epoch(train, repeats: int) -> dict | None:
    try:
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        import implicit
    except ImportError:
        return None
    model = BayesianPersonalizedRanking(factors=64, iterations=1, num_threads=numba.get_num_threads(), random_state=0)
    result = timed(lambda: model.fit(train, show_progress=False), repeats)
    iterations = 20
    many = BayesianPersonalizedRanking(factors=64, iterations=iterations, num_threads=numba.get_num_threads(),
                                       random_state=0)
    start = time.perf_counter()
    many.fit(train, show_progress=False)
    result["per_epoch_in_20_epoch_fit_s"] = (time.perf_counter() - start) / iterations
    result["version"] = implicit.__version__
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/amazon-baby"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results/core.json"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--full-fit", action="store_true", help="also time whole fits to early stop")
    args = parser.parse_args()

    data = lgrec.load_mmrec(args.data)
    train = data.train
    rng = np.random.default_rng(0)
    results = {
        "environment": {
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "numba_threads": numba.get_num_threads(), "cpu_count": os.cpu_count(),
            "lgrec": lgrec.__version__, "machine": platform.machine(),
        },
        "dataset": data.summary(),
    }
    results["compile"] = compile_times(COMPILE_SNIPPET)

    sampler = TripletSampler(train)
    sample = timed(lambda: sampler.epoch(rng), args.repeats * 3)
    results["sampler"] = {**sample, "triplets": sampler.n_triplets,
                          "triplets_per_s": sampler.n_triplets / sample["median_s"]}
    users = np.repeat(np.arange(train.shape[0], dtype=np.int32), 50)
    neg = np.empty(users.shape[0], np.int32)
    seeds = rng.integers(0, 2**63, -(-users.shape[0] // 4096), dtype=np.uint64)
    candidates = np.arange(train.shape[1], dtype=np.int32)
    kernel = timed(lambda: lgrec.kernels.sample_negatives(train.indptr, train.indices, users, candidates, seeds, 4096, neg),
                   args.repeats)
    results["sampler_kernel"] = {**kernel, "triplets": int(users.shape[0]),
                                 "triplets_per_s": users.shape[0] / kernel["median_s"]}

    graph = normalized_adjacency(train)
    lightgcn = GraphObjective(graph, xavier_uniform(rng, data.n_users, 64), xavier_uniform(rng, data.n_items, 64), 2, 1e-4)
    lightgcn_opt = Adam(lightgcn.params)
    results["lightgcn_epoch"] = timed(lambda: run_epoch(lightgcn, sampler, rng, optimizer=lightgcn_opt), args.repeats)
    x_users, x_items = lightgcn.params["user"], lightgcn.params["item"]
    results["propagation_step"] = timed(lambda: graph.matmul(x_users, x_items), args.repeats * 5)
    results["lightgcn_epoch_profile"] = profile_epoch(lightgcn, sampler, rng)

    mf = MFObjective(xavier_normal(rng, data.n_users, 64), xavier_normal(rng, data.n_items, 64), 1e-4)
    mf_opt = Adam(mf.params)
    results["bprmf_epoch"] = timed(lambda: run_epoch(mf, sampler, rng, optimizer=mf_opt), args.repeats)
    results["bprmf_epoch_profile"] = profile_epoch(mf, sampler, rng)
    results["implicit_bpr_epoch"] = implicit_epoch(train, args.repeats)

    model = lgrec.LightGCN(random_state=0, max_epochs=1).fit(train)
    results["evaluate_all_users"] = timed(
        lambda: lgrec.evaluate(model, data.test, data.train, k=(5, 10, 20, 50)), args.repeats)
    results["evaluate_all_users"]["n_users"] = int((np.diff(data.test.indptr) > 0).sum())

    if args.full_fit:
        for name, cls in (("lightgcn", lgrec.LightGCN), ("bprmf", lgrec.BPRMF)):
            start = time.perf_counter()
            fitted = cls(random_state=0).fit(train, valid=data.valid)
            seconds = time.perf_counter() - start
            test = lgrec.evaluate(fitted, data.test, data.train, k=(10, 20))
            results[f"{name}_full_fit"] = {
                "seconds": seconds, "epochs": len(fitted.history_), "best_epoch": fitted.best_epoch_,
                "median_train_epoch_s": float(np.median([h["train_seconds"] for h in fitted.history_])),
                "median_eval_epoch_s": float(np.median([h["eval_seconds"] for h in fitted.history_])),
                "test": {k: test[k] for k in ("recall@20", "ndcg@20", "recall@10", "ndcg@10")},
            }

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    summary = {k: v.get("median_s") for k, v in results.items() if isinstance(v, dict) and "median_s" in v}
    print(json.dumps({"medians_s": summary, "sampler_triplets_per_s": results["sampler_kernel"]["triplets_per_s"],
                      "compile": results["compile"]}, indent=2))
    for name in ("lightgcn_full_fit", "bprmf_full_fit"):
        if name in results:
            print(name, json.dumps(results[name]))
    for name in ("lightgcn", "bprmf"):
        print(f"profile of one {name} epoch (top by own time):")
        for row in results[f"{name}_epoch_profile"]:
            print(f"  {row['tottime_s']:7.3f}s {row['calls']:5d}  {row['function']}")


if __name__ == "__main__":
    main()
