"""Benchmark of batch recommendation with lgrec.dask (issue 15): 10^6-10^7 users x 10^5 items, k = 100.

A synthetic model (random 64-d float32 user and item factors) and a seen-items
matrix from :func:`lgrec.datasets.make_powerlaw` (10 items per user on
average, Zipf-skewed) are ranked in full, every recommendation written to
Parquet (columns user, rank, item, score; one file per partition of 65,536
users), by

- ``single``: one process, ``model.recommend`` partition by partition, each
  partition's frame written with pandas (the same output as the Dask job; the
  time inside ``recommend`` is reported separately);
- ``dask-W``: ``lgrec.dask.recommend(...).to_parquet(...)`` on a
  ``distributed.LocalCluster`` of W single-threaded worker processes (each
  task still runs rank_blocks' two stages, BLAS scoring and Numba top-k, on two
  threads, as the single process does).

Each configuration runs in a fresh child process so that its peak memory is
its own. A watchdog in this (parent) process samples the RSS of the child and
of every process it starts (the Dask workers) twice a second, and kills the
whole tree if any process passes ``--max-rss-gib`` (8 GiB); Dask workers also
get ``memory_limit`` = that value. Peak RSS per process is reported twice: the
watchdog's samples and the kernel's ``ru_maxrss`` of each process. The output
is read back, column ``user`` only: every user once, in order, with k rows.

Usage (timings under the shared lock)::

    flock /tmp/lgrec-bench.lock python benchmarks/bench_dask.py --users 1000000 --configs single,dask-1,dask-2
    flock /tmp/lgrec-bench.lock python benchmarks/bench_dask.py --users 10000000 --configs dask-2

Every run is appended to ``benchmarks/results/dask.json`` (earlier runs are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


def _peak_rss_bytes() -> int:
    """Peak resident set of the calling process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build(n_users: int, n_items: int, dim: int, seen_per_user: int, seed: int):
    """The synthetic model and seen matrix; deterministic for ``seed``."""
    from lgrec import BPRMF
    from lgrec.datasets import make_powerlaw

    started = time.perf_counter()
    seen = make_powerlaw(n_users, n_items, seen_per_user * n_users, valid_size=0.0, test_size=0.0,
                         random_state=seed).train
    rng = np.random.default_rng(seed + 1)
    model = BPRMF(embedding_size=dim)
    model.user_factors_ = rng.standard_normal((n_users, dim), dtype=np.float32)
    model.user_factors_ *= np.float32(1.0 / np.sqrt(dim))
    model.item_factors_ = rng.standard_normal((n_items, dim), dtype=np.float32)
    return model, seen, time.perf_counter() - started


def check_parquet(folder: Path, n_users: int, k: int) -> dict:
    """Rows of a Parquet folder and their users: every user 0..n-1 once, with k consecutive rows.

    Reads only the ``user`` column, one file (one partition) at a time.
    """
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"), key=lambda p: int(p.stem.split(".")[-1]))
    rows, expected_next, exact = 0, 0, True
    for path in files:
        users = pq.read_table(path, columns=["user"])["user"].to_numpy()
        rows += users.shape[0]
        n = users.shape[0] // k
        exact = exact and users.shape[0] == n * k and np.array_equal(
            users, np.repeat(np.arange(expected_next, expected_next + n), k))
        expected_next += n
    return {"files": len(files), "rows": rows, "bytes": sum(p.stat().st_size for p in files),
            "every_user_once_with_k_rows": bool(exact and expected_next == n_users)}


def run_single(args, out_dir: Path) -> dict:
    from lgrec.dask import _recommendation_frame

    model, seen, build_seconds = build(args.users, args.items, args.dim, args.seen_per_user, args.seed)
    warm = np.arange(min(1024, args.users))
    started = time.perf_counter()
    model.recommend(warm, seen[warm], k=args.k)
    warmup = time.perf_counter() - started
    ranking = writing = 0.0
    started = time.perf_counter()
    for index, start in enumerate(range(0, args.users, args.partition_size)):
        users = np.arange(start, min(start + args.partition_size, args.users))
        t = time.perf_counter()
        ids, scores = model.recommend(users, seen[users], k=args.k)
        ranking += time.perf_counter() - t
        t = time.perf_counter()
        _recommendation_frame(users, ids, scores, None, None).to_parquet(out_dir / f"part.{index}.parquet",
                                                                         index=False)
        writing += time.perf_counter() - t
    total = time.perf_counter() - started
    return {"build_seconds": build_seconds, "warmup_seconds": warmup, "seconds": total,
            "recommend_seconds": ranking, "write_seconds": writing,
            "users_per_second": args.users / total, "recommend_users_per_second": args.users / ranking,
            "peak_rss_gib": {"process": _peak_rss_bytes() / GIB}}


def _warm_worker(k: int) -> float:
    """Load lgrec and its compiled kernels in a worker (not timed with the job)."""
    from lgrec import BPRMF

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    model = BPRMF()
    model.user_factors_ = rng.standard_normal((64, 8), dtype=np.float32)
    model.item_factors_ = rng.standard_normal((2 * k, 8), dtype=np.float32)
    model.recommend(np.arange(64), k=k, filter_already_liked_items=False)
    return time.perf_counter() - started


def run_dask(args, out_dir: Path, n_workers: int) -> dict:
    import distributed

    import lgrec.dask

    model, seen, build_seconds = build(args.users, args.items, args.dim, args.seen_per_user, args.seed)
    started = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                       memory_limit=int(args.max_rss_gib * GIB), dashboard_address=":0")
    client = distributed.Client(cluster, set_as_default=False)
    startup = time.perf_counter() - started
    try:
        warm = client.run(_warm_worker, args.k)
        started = time.perf_counter()
        frame = lgrec.dask.recommend(model, seen, k=args.k, client=client, partition_size=args.partition_size)
        broadcast = time.perf_counter() - started
        frame.to_parquet(out_dir, write_index=False, compute_kwargs={"scheduler": client.get})
        total = time.perf_counter() - started
        workers = client.run(_peak_rss_bytes)
    finally:
        client.close()
        cluster.close()
    return {"build_seconds": build_seconds, "cluster_start_seconds": startup,
            "worker_warmup_seconds": max(warm.values()), "broadcast_seconds": broadcast, "seconds": total,
            "users_per_second": args.users / total, "partitions": frame.npartitions,
            "peak_rss_gib": {"client_and_scheduler": _peak_rss_bytes() / GIB,
                             **{f"worker{i}": v / GIB for i, v in enumerate(workers.values())}}}


def child(args) -> None:
    out_dir = Path(args.scratch) / args.child
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    try:
        if args.child == "single":
            result = run_single(args, out_dir)
        else:
            result = run_dask(args, out_dir, int(args.child.split("-")[1]))
        result["output"] = check_parquet(out_dir, args.users, args.k)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    Path(args.result).write_text(json.dumps(result))


class Watchdog(threading.Thread):
    """Samples the RSS of a process tree; kills the tree when one process passes ``limit`` bytes."""

    def __init__(self, pid: int, limit: int, interval: float = 0.5):
        super().__init__(daemon=True)
        import psutil

        self.root = psutil.Process(pid)
        self.limit, self.interval = limit, interval
        self.peaks: dict[int, tuple[str, int]] = {}
        self.killed: str | None = None
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.done.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    name = _label(proc.cmdline())
                except psutil.Error:
                    continue
                if rss > self.peaks.get(proc.pid, ("", 0))[1]:
                    self.peaks[proc.pid] = (name, rss)
                if rss > self.limit and self.killed is None:
                    self.killed = f"pid {proc.pid} ({name}) reached {rss / GIB:.2f} GiB"
                    for victim in reversed(procs):
                        try:
                            victim.kill()
                        except psutil.Error:
                            pass
            self.done.wait(self.interval)


def _label(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "resource_tracker" in text:
        return "multiprocessing resource tracker"
    if "multiprocessing" in text:
        return "dask worker"
    return "benchmark child (client, scheduler)" if "--child" in text else text[-60:]


def environment() -> dict:
    import dask
    import distributed

    from lgrec.compare import environment as lgrec_environment

    env = lgrec_environment()
    env.update({"dask": dask.__version__, "distributed": distributed.__version__, "cpus": os.cpu_count(),
                "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1)})
    return env


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seen-per-user", type=int, default=10)
    parser.add_argument("--partition-size", type=int, default=65_536)
    parser.add_argument("--configs", default="single,dask-1,dask-2", help="comma-separated: single, dask-W")
    parser.add_argument("--max-rss-gib", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "lgrec-bench-dask"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dask.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {"runs": []}
    report["environment"] = environment()
    for config in args.configs.split(","):
        result_path = Path(args.scratch) / f"{config}.json"
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.unlink(missing_ok=True)
        command = [sys.executable, __file__, "--child", config, "--result", str(result_path),
                   *[f"--{name}={getattr(args, name.replace('-', '_'))}" for name in
                     ("users", "items", "dim", "k", "seen-per-user", "partition-size", "max-rss-gib", "seed",
                      "scratch")]]
        load_before = os.getloadavg()
        started = time.perf_counter()
        proc = subprocess.Popen(command)
        watchdog = Watchdog(proc.pid, int(args.max_rss_gib * GIB))
        watchdog.start()
        code = proc.wait()
        watchdog.done.set()
        watchdog.join()
        entry = {"users": args.users, "items": args.items, "dim": args.dim, "k": args.k,
                 "seen_per_user": args.seen_per_user, "partition_size": args.partition_size, "config": config,
                 "exit_code": code, "wall_seconds": time.perf_counter() - started,
                 "sampled_peak_rss_gib": sorted(((name, round(rss / GIB, 3)) for name, rss in watchdog.peaks.values()),
                                                key=lambda pair: -pair[1]),
                 "killed_by_watchdog": watchdog.killed,
                 "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                 "command": " ".join(sys.argv)}
        if code == 0 and result_path.exists():
            entry.update(json.loads(result_path.read_text()))
        print(json.dumps(entry, indent=1), flush=True)
        entry["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        report["runs"].append(entry)
        out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
