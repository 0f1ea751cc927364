"""Peak memory (RSS) of fit / evaluate / recommend at 2 M interactions (issue 14, item 6).

The dataset is :func:`lgrec.datasets.make_powerlaw` (200,000 users, 20,000 items, 2,000,000
interactions, 64-d image and 48-d text features), written once as a MMRec folder together
with a 1-epoch BPR-MF model. Every measurement then runs in a fresh subprocess that loads
the folder (and the model), records its peak RSS (``ru_maxrss``), runs one operation and
records the peak again: the table gives both, and the difference is what the operation added
on top of the loaded inputs. Fits run one epoch (``batch_size="auto"``): their peak comes
from the tables and the graph, which an epoch already allocates in full.

``--tree PATH`` runs the measurements with another checkout on ``PYTHONPATH`` (used for the
"before" figure of ``recommend(filter_items=...)``)::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --work /work/data/mem \\
        --out benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

PREPARE = r"""
import sys, lgrec
from lgrec.datasets import make_powerlaw
work = sys.argv[1]
ds = make_powerlaw(n_users=200_000, n_items=20_000, n_interactions=2_000_000, image_dim=64, text_dim=48,
                   random_state=0)
lgrec.save_mmrec(ds, work + "/data")
lgrec.BPRMF(max_epochs=1, batch_size="auto", random_state=0).fit(ds.train).save(work + "/bpr.npz")
# the same model as a format-2 file, for checkouts that predate format 3 (--tree)
import json, numpy as np
with np.load(work + "/bpr.npz") as archive:
    content = {key: archive[key] for key in archive.files}
meta = json.loads(str(content["__lgrec__"]))
meta.update(format_version=2, arrays=sorted(meta["arrays"]))
content["__lgrec__"] = np.array(json.dumps(meta))
with open(work + "/bpr_v2.npz", "wb") as handle:
    np.savez(handle, **content)
"""

MEASURE = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, lgrec
from lgrec.persistence import FORMAT_VERSION, load_model
work, what = sys.argv[1], sys.argv[2]
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ds = lgrec.load_mmrec(work + "/data")
model = load_model(None, work + ("/bpr.npz" if FORMAT_VERSION >= 3 else "/bpr_v2.npz"))
users = np.arange(ds.n_users)
model.recommend(users[:2], ds.train[:2], k=10)  # compile outside the measurement
before = peak_mib()
started = time.perf_counter()
if what == "fit_bpr":
    lgrec.BPRMF(max_epochs=1, batch_size="auto", random_state=0).fit(ds.train)
elif what == "fit_lightgcn":
    lgrec.LightGCN(max_epochs=1, batch_size="auto", random_state=0).fit(ds.train)
elif what == "fit_rlmm":
    lgrec.RLMultimodalRec(max_epochs=1, batch_size="auto", random_state=0).fit(ds.train, ds.image, ds.text)
elif what == "evaluate":
    lgrec.evaluate(model, ds.test, ds.train)
elif what == "recommend":
    model.recommend(users, ds.train, k=10)
elif what == "recommend_filter_1000":
    model.recommend(users, ds.train, k=10, filter_items=np.arange(0, 20_000, 20))
print(json.dumps({"what": what, "lgrec": lgrec.__file__, "peak_before_mib": before, "peak_after_mib": peak_mib(),
                  "seconds": time.perf_counter() - started}))
"""

OPERATIONS = ("fit_bpr", "fit_lightgcn", "fit_rlmm", "evaluate", "recommend", "recommend_filter_1000")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the generated dataset and model")
    parser.add_argument("--out", help="write the results as JSON")
    parser.add_argument("--tree", help="run the measurements with this checkout on PYTHONPATH")
    parser.add_argument("--only", nargs="*", choices=OPERATIONS)
    args = parser.parse_args(argv)
    work = Path(args.work)
    if not (work / "bpr.npz").exists():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", PREPARE, str(work)], check=True)
    env = dict(os.environ)
    if args.tree:
        env["PYTHONPATH"] = args.tree
    rows = []
    for what in args.only or OPERATIONS:
        out = subprocess.run([sys.executable, "-c", MEASURE, str(work), what], env=env, capture_output=True,
                             text=True, cwd=work)  # not the checkout: ``python -c`` imports from its cwd first
        if out.returncode != 0:
            rows.append({"what": what, "error": out.stderr.strip().splitlines()[-1]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        if "error" in row:
            print(f"{what:>24}  error: {row['error']}", flush=True)
        else:
            print(f"{what:>24}  peak {row['peak_after_mib']:8.0f} MiB  (inputs loaded: {row['peak_before_mib']:6.0f} MiB,"
                  f" added {row['peak_after_mib'] - row['peak_before_mib']:7.0f} MiB)  {row['seconds']:.1f} s", flush=True)
    import numpy
    import scipy

    result = {"machine": platform.machine(), "python": platform.python_version(), "numpy": numpy.__version__,
              "scipy": scipy.__version__, "threads": {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")},
              "tree": args.tree or "this checkout", "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
