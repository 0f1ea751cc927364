"""Is R^T X faster as a scatter over R's rows than as a gather over R^T's rows? (issue 15)

LightGCN's item-side product gathers, for every item, the rows of its users from the
user table (``csr_matmul`` over the CSR of R^T). The same numbers come out of a
scatter that streams R's rows in user order and adds each user's row into its
items' output rows (``csr_matmul_rows_adjoint`` over R with every user listed):
the user table is then read sequentially and only the (smaller) item output is
accessed at random. Both sum each output row over its users in increasing user
order, so the results are bit-identical (checked here). For each size the script
generates a ``make_powerlaw`` graph (n/10 users, n/100 items), then times the two
products alternately (median of ``--repeats``).

Usage::

    flock /tmp/lgrec-bench.lock python benchmarks/probe_transpose_product.py --sizes 1e6,1e7
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lgrec.datasets import make_powerlaw
from lgrec.graph import normalized_adjacency
from lgrec.kernels import csr_matmul, csr_matmul_rows_adjoint


def probe(n: int, repeats: int, dim: int = 64) -> dict:
    graph = normalized_adjacency(make_powerlaw(n // 10, n // 100, n, random_state=0).train)
    users = np.random.default_rng(0).standard_normal((graph.n_users, dim)).astype(np.float32)
    r, rt = graph.r_norm, graph.r_norm_t
    every_user = np.arange(graph.n_users, dtype=np.int64)
    gather = lambda: csr_matmul(rt.indptr, rt.indices, rt.data, users)
    scatter = lambda: csr_matmul_rows_adjoint(r.indptr, r.indices, r.data, every_user, users, graph.n_items)
    identical = bool(np.array_equal(gather(), scatter()))
    times = {"gather": [], "scatter": []}
    for _ in range(repeats):
        for name, product in (("gather", gather), ("scatter", scatter)):
            start = time.perf_counter()
            product()
            times[name].append(time.perf_counter() - start)
    med = {name: float(np.median(t)) for name, t in times.items()}
    return {"interactions": int(r.nnz), "users": graph.n_users, "items": graph.n_items, "identical": identical,
            "gather_s": med["gather"], "scatter_s": med["scatter"], "scatter_over_gather": med["scatter"] / med["gather"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for size in args.sizes.split(","):
        print(json.dumps(probe(int(float(size)), args.repeats)), flush=True)


if __name__ == "__main__":
    main()
