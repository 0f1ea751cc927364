"""Full-ranking evaluation of all Amazon Baby test users, before and after a change (issue 12).

``lgrec.evaluate(model, test, train, k=(5, 10, 20, 50))``: 19,445 users ranked
against all 7,050 items minus their training items, four metrics at four
cut-offs (target <= 0.35 s). The model is a ``FactorScorer`` over seeded random
factors of LightGCN's shape (19,445 x 64 and 7,050 x 64, float32); the cost
does not depend on how the factors were learned.

Runs the baseline checkout (a git ref, exported with ``git archive`` into a
temporary folder) and the installed lgrec (this checkout) in fresh processes,
alternating round by round so both see the same machine load. Every process
warms up (JIT compile, caches), then times ``--repeats`` evaluations and
reports the median (JIT compile time of the kernels is measured separately, in
fresh processes with an empty Numba cache); it also hashes the top-50 rankings of every user and the
metric values, so the script checks that both checkouts rank identically::

    flock /tmp/lgrec-bench.lock python benchmarks/bench_eval.py --baseline main --rounds 5 \\
        --out benchmarks/results/eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
from _jit import compile_times

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import hashlib, json, sys, time
if sys.argv[1]:
    sys.path.insert(0, sys.argv[1])
import numba
import numpy as np
import lgrec
from lgrec.evaluation import rank_blocks
from lgrec.scoring import FactorScorer

data = lgrec.load_mmrec(sys.argv[2])
repeats = int(sys.argv[3])
rng = np.random.default_rng(0)
model = FactorScorer((0.1 * rng.standard_normal((data.n_users, 64))).astype(np.float32),
                     (0.1 * rng.standard_normal((data.n_items, 64))).astype(np.float32))
users = np.flatnonzero(np.diff(data.test.indptr)).astype(np.int64)
digest = hashlib.sha256()
for block, ids, top in rank_blocks(model.score_users, users, 50, data.train):
    digest.update(np.ascontiguousarray(ids).tobytes())
    digest.update(np.ascontiguousarray(top).tobytes())
for _ in range(2):
    lgrec.evaluate(model, data.test, data.train, k=(5, 10, 20, 50))
times = []
for _ in range(repeats):
    start = time.perf_counter()
    metrics = lgrec.evaluate(model, data.test, data.train, k=(5, 10, 20, 50))
    times.append(time.perf_counter() - start)
print(json.dumps({"lgrec_file": lgrec.__file__, "times_s": times, "median_s": float(np.median(times)),
                  "rankings_sha256": digest.hexdigest(), "metrics": metrics, "numba_threads": numba.get_num_threads()}))
"""


COMPILE_SNIPPET = """
import time
import numpy as np, scipy.sparse as sp
t0 = time.perf_counter()
from lgrec.kernels import hits_in_sorted, topk_exclude_serial
t1 = time.perf_counter()
m = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
ids = np.empty((4, 2), np.int64); top = np.empty((4, 2), np.float32)
topk_exclude_serial(np.ones((4, 6), np.float32), 2, m.indptr, m.indices, ids, top)
hits = np.empty((4, 2), bool); hits_in_sorted(ids, m.indptr, m.indices, hits)
print(t1 - t0, time.perf_counter() - t1)
"""


def export(ref: str, folder: Path) -> Path:
    """``git archive ref`` of this repository into ``folder``, with ``lgrec/kernels`` pointing at ``kernels/``
    (the package-dir mapping of pyproject.toml, for an import from the folder)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "lgrec" / "kernels").symlink_to("../kernels")
    return folder


def run_child(checkout: str, data: str, repeats: int) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, checkout, data, str(repeats)], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git ref of the code before the change")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/amazon-baby"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/eval.json"))
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.baseline], capture_output=True, text=True,
                            check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout.strip())
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = str(export(commit, Path(tmp)))
        for round_ in range(1, args.rounds + 1):
            before = run_child(baseline, args.data, args.repeats)
            after = run_child("", args.data, args.repeats)
            rounds.append({"before": before, "after": after, "ratio": before["median_s"] / after["median_s"]})
            print(f"round {round_}: before {before['median_s']:.4f} s, after {after['median_s']:.4f} s, "
                  f"ratio {rounds[-1]['ratio']:.2f}", flush=True)
    first = rounds[0]
    same_rankings = all(r["before"]["rankings_sha256"] == r["after"]["rankings_sha256"] for r in rounds)
    metric_diff = max(abs(first["before"]["metrics"][key] - first["after"]["metrics"][key])
                      for key in first["before"]["metrics"] if "@" in key)
    summary = {
        "baseline": {"ref": args.baseline, "commit": commit}, "after": {"commit": head, "uncommitted_changes": dirty},
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
                        "numba_threads": first["after"]["numba_threads"], "load_average_at_end": list(os.getloadavg())},
        "n_users": first["after"]["metrics"]["n_users"],
        "before_median_s": float(np.median([r["before"]["median_s"] for r in rounds])),
        "after_median_s": float(np.median([r["after"]["median_s"] for r in rounds])),
        "per_round_ratio_before_over_after": [r["ratio"] for r in rounds],
        "median_ratio_before_over_after": float(np.median([r["ratio"] for r in rounds])),
        "identical_rankings_and_scores": same_rankings,
        "max_abs_metric_difference": metric_diff,
        "compile": compile_times(COMPILE_SNIPPET),
    }
    print(json.dumps(summary, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**summary, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
