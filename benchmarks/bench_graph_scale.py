"""Cost of one LightGCN propagation step on make_powerlaw graphs of 10^6-10^8 interactions (issue 15).

Training is the part of issue 15 that stays on one machine; its epoch schedule
is benchmarked elsewhere (the linear-cost training work of issue 15, item 1).
This script measures the primitive that every schedule repeats, so that
``docs/scaling.md`` can extrapolate on measured numbers: for each size, in a
fresh child process, it generates the interactions
(:func:`lgrec.datasets.make_powerlaw`), builds the normalised adjacency
(:func:`lgrec.graph.normalized_adjacency`) and times one full propagation
step :math:`\\hat A E` with 64-d float32 embeddings (``BipartiteGraph.matmul``:
two sparse-dense products on two threads), median of 5 after a warm-up. Peak
RSS is the child's ``ru_maxrss``.

Usage::

    flock /tmp/lgrec-bench.lock python benchmarks/bench_graph_scale.py --sizes 1e6,1e7,1e8 \\
        --out benchmarks/results/graph_scale.json
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


def child(n: int, users_per_interaction: float, n_items: int, dim: int, repeats: int) -> dict:
    from lgrec.datasets import make_powerlaw
    from lgrec.graph import normalized_adjacency

    n_users = max(1, int(n * users_per_interaction))
    started = time.perf_counter()
    train = make_powerlaw(n_users, n_items, n, valid_size=0.0, test_size=0.0, random_state=0).train
    generate = time.perf_counter() - started
    started = time.perf_counter()
    graph = normalized_adjacency(train)
    build = time.perf_counter() - started
    del train
    rng = np.random.default_rng(0)
    users = rng.standard_normal((n_users, dim), dtype=np.float32)
    items = rng.standard_normal((n_items, dim), dtype=np.float32)
    graph.matmul(users, items)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        graph.matmul(users, items)
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"interactions": n, "users": n_users, "items": n_items, "dim": dim,
            "generate_seconds": generate, "adjacency_seconds": build,
            "propagation_step_seconds": {"median": float(np.median(times)), "min": min(times), "max": max(times),
                                         "runs": times},
            "ns_per_interaction_and_dim": float(np.median(times)) / (n * dim) * 1e9,
            "peak_rss_gib": peak / GIB, "peak_rss_bytes_per_interaction": peak / n}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7,1e8", help="interactions, comma-separated")
    parser.add_argument("--users-per-interaction", type=float, default=0.01,
                        help="n_users = this x interactions (default 0.01: 100 interactions per user)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "graph_scale.json"))
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(int(args.child), args.users_per_interaction, args.items, args.dim, args.repeats)))
        return
    from lgrec.compare import environment

    runs = []
    for size in args.sizes.split(","):
        command = [sys.executable, __file__, "--child", size, f"--users-per-interaction={args.users_per_interaction}",
                   f"--items={args.items}", f"--dim={args.dim}", f"--repeats={args.repeats}"]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    sizes = np.array([r["interactions"] for r in runs], dtype=np.float64)
    step = np.array([r["propagation_step_seconds"]["median"] for r in runs])
    report = {"command": " ".join(sys.argv), "environment": environment(), "runs": runs}
    if len(runs) > 1:
        report["step_time_exponent"] = float(np.polyfit(np.log(sizes), np.log(step), 1)[0])
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
