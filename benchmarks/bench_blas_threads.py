"""Training epoch time with OpenBLAS's default threads vs one thread, on an MMRec-format folder.

Each setting runs in its own process (``OPENBLAS_NUM_THREADS=1`` or unset), alternating, so both see the
same machine load::

    python benchmarks/bench_blas_threads.py --data /work/data/hm --rounds 2

Prints, per round, setting and model, the median training epoch of a 6-epoch fit (the first epoch,
which includes compilation, left out). Wrap it in ``flock /tmp/lgrec-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import sys
import numpy as np
import lgrec

data = lgrec.load_mmrec(sys.argv[1])
for name in ("rlmm", "vbpr", "lightgcn"):
    model = lgrec.models.MODELS[name](max_epochs=6, patience=100, random_state=0)
    model.fit(data.train, data.image, data.text, valid=data.valid)
    print(name, f"{np.median([h['train_seconds'] for h in model.history_[1:]]):.3f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for round_ in range(1, args.rounds + 1):
        for label, threads in (("default BLAS threads", None), ("OPENBLAS_NUM_THREADS=1", "1")):
            env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
            if threads is not None:
                env["OPENBLAS_NUM_THREADS"] = threads
            out = subprocess.run([sys.executable, "-c", CHILD, args.data], env=env, capture_output=True,
                                 text=True, check=True).stdout.split()
            epochs = ", ".join(f"{out[i]} {out[i + 1]} s" for i in range(0, len(out), 2))
            print(f"round {round_}, {label}: {epochs}", flush=True)


if __name__ == "__main__":
    main()
