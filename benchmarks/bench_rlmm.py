"""RLMultimodalRec on real data: the fixes to the paper's reading, ablations, baselines, and epoch speed.

Quality (H&M folder from tools/prepare_hm.py; 3 seeds; early stopping on validation; test touched once):

    python benchmarks/bench_rlmm.py quality --data /work/data/hm --out benchmarks/results/rlmm_hm.json

Speed (one training epoch, median of repeats, RLMultimodalRec vs LightGCN on the same data):

    python benchmarks/bench_rlmm.py speed --data /work/data/hm --out benchmarks/results/rlmm_speed_hm.json
    python benchmarks/bench_rlmm.py speed --data ../shared/data/amazon-baby --out benchmarks/results/rlmm_speed_baby.json

Learned gate against g = 0.5 under several fusion schedules and gate step sizes (5 seeds, validation curves)::

    python benchmarks/bench_rlmm.py gate --data /work/data/hm --out benchmarks/results/rlmm_gate_hm.json --seeds 5

Colour variants among the content profile's hits (a diagnostic of why the memory term helps)::

    python benchmarks/bench_rlmm.py variants --data /work/data/hm --out benchmarks/results/rlmm_variants_hm.json

Wrap runs in ``flock /tmp/lgrec-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numba
import numpy as np
import scipy

import lgrec
from lgrec.evaluation import restrict_items
from lgrec.training import TripletSampler

PAPER = dict(cold_start=False, content_weight=0.0, n_neighbors=0, projection_init="glorot")

# (row name, constructor keyword arguments, modalities used)
FIXES = [
    ("paper reading", PAPER, "both"),
    ("+ cold-start path", {**PAPER, "cold_start": True}, "both"),
    ("+ content BPR term", {**PAPER, "cold_start": True, "content_weight": 1.0}, "both"),
    ("+ isometric projection init", {**PAPER, "cold_start": True, "content_weight": 1.0,
                                     "projection_init": "isometric"}, "both"),
    ("+ content-neighbour memory", {"image_weight": 0.5}, "both"),
    ("+ memory image share 0.25 (= default)", {}, "both"),
]
LEAVE_ONE_OUT = [
    ("default - cold-start path", {"cold_start": False}, "both"),
    ("default - content BPR term", {"content_weight": 0.0}, "both"),
    ("default - isometric init", {"projection_init": "glorot"}, "both"),
    ("default - memory", {"n_neighbors": 0}, "both"),
    ("default - memory image share (0.5)", {"image_weight": 0.5}, "both"),
]
ABLATIONS = [
    ("image only", {}, "image"),
    ("text only", {}, "text"),
    ("fixed average gate (g = 0.5)", {"gate": "average"}, "both"),
    ("no graph (n_layers = 0)", {"n_layers": 0}, "both"),
]
# image_weight is chosen on validation: these rows (with the default 0.25 and the
# leave-out row's 0.5) hold the best validation Recall@20 of every seed in the JSON.
MEMORY_SHARE = [
    ("memory image share 0 (text cosine only)", {"image_weight": 0.0}, "both"),
    ("memory image share 0.1", {"image_weight": 0.1}, "both"),
]
# The gate takes ~3 Adam steps per H&M epoch; these rows give it a larger step size.
GATE_STEP = [
    ("gate step size 0.03", {"gate_learning_rate": 0.03}, "both"),
    ("gate step size 0.1", {"gate_learning_rate": 0.1}, "both"),
]

# The gate study (mode "gate"): does any fusion schedule or gate step size let validation tell the
# learned gate from the fixed g = 0.5?
GATE_STUDY = [
    ("learned gate, content_refresh 4", {"content_refresh": 4}),
    ("fixed g = 0.5, content_refresh 4", {"gate": "average", "content_refresh": 4}),
    ("learned gate, content_refresh 8", {"content_refresh": 8}),
    ("fixed g = 0.5, content_refresh 8", {"gate": "average", "content_refresh": 8}),
    ("learned gate, content_refresh 11", {"content_refresh": 11}),
    ("learned gate, refresh 8, gate step 0.01", {"content_refresh": 8, "gate_learning_rate": 0.01}),
    ("learned gate, refresh 8, gate step 0.03", {"content_refresh": 8, "gate_learning_rate": 0.03}),
    ("learned gate, refresh 8, gate step 0.1", {"content_refresh": 8, "gate_learning_rate": 0.1}),
]


def run(dataset, cold_truth, make, modalities, seeds):
    image = dataset.image if modalities in ("both", "image") else None
    text = dataset.text if modalities in ("both", "text") else None
    rows = []
    for seed in seeds:
        model = make(seed)
        started = time.perf_counter()
        model.fit(dataset.train, image, text, valid=dataset.valid)
        seconds = time.perf_counter() - started
        test = lgrec.evaluate(model, dataset.test, dataset.train, k=(10, 20))
        cold = lgrec.evaluate(model, cold_truth, dataset.train, k=(20,))
        history = getattr(model, "history_", [])
        share = None
        if image is not None and text is not None and hasattr(model, "image_share_"):
            both = image.any(axis=1) & text.any(axis=1)  # the gate is free only where both exist
            share = np.percentile(model.image_share_[both], [5, 50, 95]).tolist()
        rows.append({
            "seed": seed, "recall@20": test["recall@20"], "ndcg@20": test["ndcg@20"],
            "recall@10": test["recall@10"], "ndcg@10": test["ndcg@10"], "cold_recall@20": cold["recall@20"],
            "best_valid_recall@20": max((h["valid_recall@20"] for h in history), default=None),
            "valid_recall@20_by_epoch": [round(h["valid_recall@20"], 5) for h in history],
            "best_epoch": getattr(model, "best_epoch_", None), "epochs": len(history), "fit_seconds": seconds,
            "image_share_p5_p50_p95": share,
        })
    return rows


def summarise(rows):
    out = {}
    for key in ("recall@20", "ndcg@20", "recall@10", "ndcg@10", "cold_recall@20", "fit_seconds"):
        values = np.array([r[key] for r in rows], dtype=float)
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    out["best_epochs"] = [r["best_epoch"] for r in rows]
    valid = [r["best_valid_recall@20"] for r in rows]
    out["best_valid_recall@20"] = None if None in valid else float(np.mean(valid))
    return out


def add_row(table, dataset, cold_truth, group, name, make, modalities, seeds):
    """Fit ``make(seed)`` for every seed, append the summarised row to ``table`` and print it."""
    rows = run(dataset, cold_truth, make, modalities, seeds)
    entry = {"group": group, "name": name, "runs": rows, **summarise(rows)}
    table.append(entry)
    r, n, c = entry["recall@20"], entry["ndcg@20"], entry["cold_recall@20"]
    print(f"{group:12s} {name:42s} R@20 {r['mean']:.4f}±{r['std']:.4f}  N@20 {n['mean']:.4f}±{n['std']:.4f}  "
          f"cold R@20 {c['mean']:.4f}  valid {entry['best_valid_recall@20']}  epochs {entry['best_epochs']}",
          flush=True)


def quality(args):
    dataset = lgrec.load_mmrec(args.data)
    cold_truth = restrict_items(dataset.test, dataset.cold_items("test"))
    seeds = list(range(args.seeds))
    table = []

    def add(group, name, make, modalities="both", seeds=seeds):
        add_row(table, dataset, cold_truth, group, name, make, modalities, seeds)

    add("baseline", "Popularity", lambda s: lgrec.Popularity(), seeds=[0])
    add("baseline", "ContentKNN (content profile)", lambda s: lgrec.ContentKNN(), seeds=[0])
    add("baseline", "LightGCN", lambda s: lgrec.LightGCN(random_state=s))
    for group, rows in (("fixes", FIXES), ("leave-out", LEAVE_ONE_OUT), ("ablation", ABLATIONS),
                        ("memory share", MEMORY_SHARE), ("gate step", GATE_STEP)):
        for name, params, modalities in rows:
            add(group, name, lambda s, p=params: lgrec.RLMultimodalRec(random_state=s, **p), modalities)
    result = {"command": "python benchmarks/bench_rlmm.py quality " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "mode"),
              "dataset": dataset.summary(), "seeds": seeds, "environment": environment(), "table": table}
    write(args.out, result)


def gate_study(args):
    """Learned gate against g = 0.5 under several fusion schedules and gate step sizes, with validation curves."""
    dataset = lgrec.load_mmrec(args.data)
    cold_truth = restrict_items(dataset.test, dataset.cold_items("test"))
    seeds = list(range(args.seeds))
    table = []
    for name, params in GATE_STUDY:
        add_row(table, dataset, cold_truth, "gate study", name,
                lambda s, p=params: lgrec.RLMultimodalRec(random_state=s, **p), "both", seeds)
    for entry in table:  # mean validation Recall@20 over the seeds at epochs 1..20 (every run has >= 21)
        curves = np.array([r["valid_recall@20_by_epoch"][:20] for r in entry["runs"]])
        entry["mean_valid_recall@20_epochs_1_to_20"] = curves.mean(axis=0).round(5).tolist()
    result = {"command": "python benchmarks/bench_rlmm.py gate " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "mode"),
              "dataset": dataset.summary(), "seeds": seeds, "environment": environment(), "table": table}
    write(args.out, result)


class _EpochRunner:
    """One objective with its own Adam and triplet stream, timed one epoch at a time."""

    def __init__(self, objective, sampler, batch_size=2048):
        self.objective, self.sampler, self.batch_size = objective, sampler, batch_size
        self.optimizer = lgrec.optim.Adam(objective.params, learning_rates=objective.learning_rates)
        self.rng = np.random.default_rng(0)
        self.state = objective.initial_state()

    def epoch(self) -> float:
        """Seconds of one training epoch: the epoch's state (e.g. a pruned graph) and its batches; sampling excluded."""
        users, pos, neg = self.sampler.epoch(self.rng)
        start = time.perf_counter()
        self.state = self.objective.start_epoch(self.rng, self.state)
        _, self.state = self.objective.run_epoch(users, pos, neg, self.optimizer, self.batch_size, self.state)
        return time.perf_counter() - start


def interleaved_epochs(objectives: dict, sampler, repeats: int) -> dict:
    """Epoch seconds of every objective, timed round by round (one epoch of each per round).

    The rounds interleave the objectives so that a drift in machine speed hits
    them alike; each objective's first epoch (compilation, warm-up) is not
    counted. Returns per objective the median, min, max and every round's
    time, and for each objective other than ``"lightgcn"`` the median of the
    per-round ratios to LightGCN.
    """
    runners = {name: _EpochRunner(objective, sampler) for name, objective in objectives.items()}
    for runner in runners.values():
        runner.epoch()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            times[name].append(runner.epoch())
    out = {}
    for name, values in times.items():
        values = np.array(values)
        out[name] = {"median_s": float(np.median(values)), "min_s": float(values.min()),
                     "max_s": float(values.max()), "rounds_s": values.round(4).tolist()}
        if name != "lightgcn":
            ratios = values / np.array(times["lightgcn"])
            out[name]["ratio_to_lightgcn"] = {"median": float(np.median(ratios)), "min": float(ratios.min()),
                                              "max": float(ratios.max())}
        print(name, {k: v for k, v in out[name].items() if k != "rounds_s"}, flush=True)
    return out


def speed(args):
    """Epoch time of RLMultimodalRec (defaults, and content_refresh=1) against LightGCN's, interleaved."""
    from lgrec._validation import check_features
    from lgrec.graph import normalized_adjacency
    from lgrec.models._base import xavier_uniform
    from lgrec.objective import GraphObjective

    dataset = lgrec.load_mmrec(args.data)
    train = dataset.train
    rng = np.random.default_rng(0)
    sampler = TripletSampler(train)
    n_batches = -(-sampler.n_triplets // 2048)
    defaults = lgrec.RLMultimodalRec()
    img = check_features(dataset.image, "image", dataset.n_items)
    txt = check_features(dataset.text, "text", dataset.n_items)
    result = {"dataset": dataset.summary(), "batches_per_epoch": n_batches, "rlmm_defaults": defaults.get_params(),
              "repeats": args.repeats, "environment": environment()}
    lightgcn = lgrec.LightGCN()
    objectives = {"lightgcn": GraphObjective(normalized_adjacency(train), xavier_uniform(rng, dataset.n_users, 64),
                                             xavier_uniform(rng, dataset.n_items, 64), lightgcn.n_layers,
                                             lightgcn.regularization)}
    started = time.perf_counter()
    objectives["rlmm_default"] = defaults.build_objective(train, img, txt, rng)[0]
    result["rlmm_build_seconds"] = time.perf_counter() - started
    if img is not None or txt is not None:
        objectives["rlmm_refresh_1"] = lgrec.RLMultimodalRec(content_refresh=1).build_objective(train, img, txt, rng)[0]
    result.update(interleaved_epochs(objectives, sampler, args.repeats))
    write(args.out, result)


def environment():
    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "numba_threads": numba.get_num_threads(), "lgrec": lgrec.__version__}


def write(path, result):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


def variants(args):
    """How many of the content profile's test hits@20 are colour variants of a product the user bought.

    H&M's article id is the 7-digit ``product_code`` followed by a 3-digit colour/variant code; a hit
    counts as a colour variant when the user has a training item of the same product code.
    """
    import pandas as pd

    dataset = lgrec.load_mmrec(args.data)
    mapping = pd.read_csv(Path(args.data) / "i_id_mapping.csv", dtype={"article_id": str})
    product = np.empty(dataset.n_items, dtype=object)
    product[mapping["itemID"].to_numpy()] = mapping["article_id"].str[:7].to_numpy()
    model = lgrec.ContentKNN().fit(dataset.train, dataset.image, dataset.text)
    users = np.flatnonzero(np.diff(dataset.test.indptr))
    top, _ = model.recommend(users, dataset.train[users], k=20)
    hits = colour = 0
    for row, user in enumerate(users):
        truth = set(dataset.test.indices[dataset.test.indptr[user]:dataset.test.indptr[user + 1]].tolist())
        bought = set(product[dataset.train.indices[dataset.train.indptr[user]:dataset.train.indptr[user + 1]]])
        for item in top[row]:
            if item in truth:
                hits += 1
                colour += product[item] in bought
    result = {"command": "python benchmarks/bench_rlmm.py variants --data DATA --out OUT",
              "test_users": int(users.size), "content_profile_hits_at_20": hits, "colour_variant_hits": colour}
    print(result)
    write(args.out, result)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["quality", "gate", "speed", "variants"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    {"quality": quality, "gate": gate_study, "speed": speed, "variants": variants}[args.mode](args)


if __name__ == "__main__":
    main()
