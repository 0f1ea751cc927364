"""A/B timing of one LightGCN training epoch on Amazon Baby between two checkouts of lgrec.

Runs each checkout in its own process, alternating, so both see the same machine load::

    git worktree add /tmp/lgrec-old 07dd34d
    python benchmarks/bench_epoch_ab.py /tmp/lgrec-old . --rounds 3

Prints, per round and checkout, the median of 5 epochs after a warm-up epoch
(sampling excluded; the batch loop and Adam included). Wrap it in
``flock /tmp/lgrec-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import lgrec
from lgrec.graph import normalized_adjacency
from lgrec.models._base import xavier_uniform
from lgrec.models.lightgcn import GraphObjective
from lgrec.optim import Adam
from lgrec.training import TripletSampler

data = lgrec.load_mmrec(sys.argv[2])
rng = np.random.default_rng(0)
objective = GraphObjective(normalized_adjacency(data.train), xavier_uniform(rng, data.n_users, 64),
                           xavier_uniform(rng, data.n_items, 64), 2, 1e-4)
sampler, optimizer, times = TripletSampler(data.train), Adam(objective.params), []
for _ in range(6):
    users, pos, neg = sampler.epoch(rng)
    start = time.perf_counter()
    for b in range(0, users.size, 2048):
        window = slice(b, b + 2048)
        _, grads = objective.loss_and_grads(users[window], pos[window], neg[window])
        optimizer.step(objective.params, grads)
    times.append(time.perf_counter() - start)
print(f"{np.median(times[1:]):.3f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="checkout A (e.g. a git worktree of an older commit)")
    parser.add_argument("new", help="checkout B")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/amazon-baby"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for round_ in range(1, args.rounds + 1):
        for label, checkout in (("A", args.old), ("B", args.new)):
            result = subprocess.run([sys.executable, "-c", CHILD, str(Path(checkout).resolve()), args.data],
                                    capture_output=True, text=True, check=True)
            print(f"round {round_} {label} {checkout}: epoch {result.stdout.strip()} s", flush=True)


if __name__ == "__main__":
    main()
