"""The LightGCN propagation product against scipy and against its memory floor (issue 12).

One propagation step is the two products ``R~ @ X_items`` and ``R~.T @ X_users``
(``lgrec.graph.BipartiteGraph.matmul``, Numba kernels of ``lgrec.kernels.spmm``).
In the same run, interleaved repeat by repeat, the script times

- ``kernel``: ``graph.matmul`` (both products on all Numba threads);
- ``scipy``: scipy's ``@`` for both products, one after the other (single-threaded);
- ``scipy_2_threads``: scipy's ``@`` for the two products on two Python threads at once
  (what lgrec did before the kernels);
- ``floor``: a memory probe of the same shape, threads and loop structure: for every stored
  entry, read the d-float row ``x[indices[k]]`` and add it to the output row, without the
  multiplication by ``data``. Its time is what gathering the rows costs on this machine
  at this moment; ``kernel / floor`` is the figure of merit (target <= 1.5).

Usage::

    flock /tmp/lgrec-bench.lock python benchmarks/bench_propagation.py \\
        --baby ../shared/data/amazon-baby --ml1m ../shared/data/ml1m-mm --out benchmarks/results/propagation.json

Amazon Baby: the training rows (``x_label == 0``) of ``baby.inter``. ML-1M: the
``split == "train"`` rows of ``interactions.csv`` (801,218), ids mapped to
0-based dense ids in sorted order. JIT compile time (first calls with an empty
Numba cache, in a fresh process) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import scipy
import scipy.sparse as sp
from _jit import compile_times

import lgrec
from lgrec.graph import normalized_adjacency

ROOT = Path(__file__).resolve().parents[1]


@numba.njit(parallel=True, nogil=True, cache=True)
def gather_floor(indptr, indices, x, out):
    """``out[r] = sum of x[indices[k]]`` over the stored entries of row r: the product without ``data``."""
    for r in numba.prange(indptr.shape[0] - 1):
        for c in range(x.shape[1]):
            out[r, c] = 0
        for k in range(indptr[r], indptr[r + 1]):
            j = indices[k]
            for c in range(x.shape[1]):
                out[r, c] += x[j, c]


def floor_step(graph, x_users, x_items):
    """The floor probe for both blocks, allocating its outputs like the product does."""
    out_users = np.empty((graph.n_users, x_items.shape[1]), dtype=x_items.dtype)
    out_items = np.empty((graph.n_items, x_users.shape[1]), dtype=x_users.dtype)
    gather_floor(graph.r_norm.indptr, graph.r_norm.indices, x_items, out_users)
    gather_floor(graph.r_norm_t.indptr, graph.r_norm_t.indices, x_users, out_items)
    return out_users, out_items


def baby_train(folder: Path) -> sp.csr_matrix:
    return lgrec.load_mmrec(folder).train


def ml1m_train(folder: Path) -> sp.csr_matrix:
    frame = pd.read_csv(folder / "interactions.csv")
    frame = frame[frame["split"] == "train"]
    _, users = np.unique(frame["user"].to_numpy(), return_inverse=True)
    _, items = np.unique(frame["item"].to_numpy(), return_inverse=True)
    matrix = sp.csr_matrix((np.ones(len(frame), np.float32), (users, items)),
                           shape=(users.max() + 1, items.max() + 1))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


COMPILE_SNIPPET = """
import sys, time
import numpy as np, scipy.sparse as sp
t0 = time.perf_counter()
import lgrec
from lgrec.kernels import csr_matmul, csr_matmul_rows, csr_matmul_rows_adjoint
t1 = time.perf_counter()
m = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
x = np.ones((6, 3), np.float32)
csr_matmul(m.indptr, m.indices, m.data, x)
t2 = time.perf_counter()
csr_matmul_rows(m.indptr, m.indices, m.data, np.arange(2), x)
csr_matmul_rows_adjoint(m.indptr, m.indices, m.data, np.arange(2), x[:2], 6)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def summary(times: list[float]) -> dict:
    arr = np.asarray(times)
    return {"median_ms": 1e3 * float(np.median(arr)), "min_ms": 1e3 * float(arr.min()),
            "q25_ms": 1e3 * float(np.quantile(arr, 0.25)), "q75_ms": 1e3 * float(np.quantile(arr, 0.75)),
            "max_ms": 1e3 * float(arr.max()), "repeats": int(arr.size)}


def bench_dataset(name: str, train: sp.csr_matrix, dim: int, repeats: int, warmup: int) -> dict:
    graph = normalized_adjacency(train)
    rng = np.random.default_rng(0)
    x_users = rng.standard_normal((graph.n_users, dim)).astype(np.float32)
    x_items = rng.standard_normal((graph.n_items, dim)).astype(np.float32)
    r_norm, r_norm_t = graph.r_norm, graph.r_norm_t

    expected = (r_norm @ x_items, r_norm_t @ x_users)
    got = graph.matmul(x_users, x_items)
    max_abs_diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
    bit_identical = all(np.array_equal(g, e) for g, e in zip(got, expected))

    with ThreadPoolExecutor(max_workers=1) as pool:
        def scipy_2_threads():
            future = pool.submit(r_norm.__matmul__, x_items)
            other = r_norm_t @ x_users
            return future.result(), other

        cases = {
            "kernel": lambda: graph.matmul(x_users, x_items),
            "floor": lambda: floor_step(graph, x_users, x_items),
            "scipy": lambda: (r_norm @ x_items, r_norm_t @ x_users),
            "scipy_2_threads": scipy_2_threads,
        }
        for fn in cases.values():
            for _ in range(warmup):
                fn()
        times = {key: [] for key in cases}
        for _ in range(repeats):
            for key, fn in cases.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
    ratios = np.asarray(times["kernel"]) / np.asarray(times["floor"])
    out = {
        "n_users": graph.n_users, "n_items": graph.n_items, "nnz_per_block": int(r_norm.nnz), "dim": dim,
        "dtype": "float32", "kernel_vs_scipy_max_abs_diff": max_abs_diff, "kernel_bit_identical_to_scipy": bit_identical,
        "times": {key: summary(value) for key, value in times.items()},
        "kernel_over_floor": float(np.median(times["kernel"]) / np.median(times["floor"])),
        "kernel_over_floor_per_repeat_median": float(np.median(ratios)),
        "scipy_over_kernel": float(np.median(times["scipy"]) / np.median(times["kernel"])),
        "scipy_2_threads_over_kernel": float(np.median(times["scipy_2_threads"]) / np.median(times["kernel"])),
    }
    gathered = 2 * r_norm.nnz * dim * 4
    out["floor_gather_GBps"] = gathered / (out["times"]["floor"]["median_ms"] * 1e-3) / 1e9
    print(f"{name}: {graph.n_users} users x {graph.n_items} items, {r_norm.nnz} nnz per block, d={dim}")
    for key, value in out["times"].items():
        print(f"  {key:16s} median {value['median_ms']:.3f} ms  [q25 {value['q25_ms']:.3f}, q75 {value['q75_ms']:.3f}]")
    print(f"  kernel / floor {out['kernel_over_floor']:.2f} (per-repeat median {out['kernel_over_floor_per_repeat_median']:.2f}); "
          f"scipy / kernel {out['scipy_over_kernel']:.2f}; scipy 2 threads / kernel {out['scipy_2_threads_over_kernel']:.2f}; "
          f"bit-identical to scipy: {bit_identical}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baby", default=str(ROOT.parent / "shared/data/amazon-baby"))
    parser.add_argument("--ml1m", default=str(ROOT.parent / "shared/data/ml1m-mm"))
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/propagation.json"))
    args = parser.parse_args()
    if args.repeats < 15:
        parser.error(f"--repeats must be at least 15; got {args.repeats}")

    results = {
        "environment": {
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": numba.config.THREADING_LAYER, "cpu_count": os.cpu_count(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "lgrec": lgrec.__version__,
            "machine": platform.machine(), "load_average_at_start": list(os.getloadavg()),
        },
        "compile": compile_times(COMPILE_SNIPPET, ("import_s", "csr_matmul_first_call_s", "row_kernels_first_calls_s")),
    }
    trains = {"amazon-baby": baby_train(Path(args.baby)), "ml1m": ml1m_train(Path(args.ml1m))}
    for name, train in trains.items():
        results[name] = bench_dataset(name, train, args.dim, args.repeats, args.warmup)
    results["environment"]["numba_threading_layer_used"] = numba.threading_layer()
    results["environment"]["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps({"environment": results["environment"], "compile": results["compile"]}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
