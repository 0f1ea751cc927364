"""Does RLMultimodalRec's gate learn? Gate variants and corrupted modalities on a two-modality dataset (issue 11).

``variants``: the default model with the learned gate against a fixed gate
(g = 0.5), image only, text only and no graph (``n_layers=0``), several seeds.
``corrupt``: the experiment the paper motivates (modality quality varying per
item). A seeded random half of the items (group A) gets its image features
replaced, the other half (group B) its text features, either by another
item's (``swap``: a random derangement within the group) or by Gaussian noise
of the same per-row norm (``noise``); learned vs fixed gate on each. A gate
that tells good from bad modalities gives group A a lower image share than
group B; the JSON records both means for every learned fit.

Every fit uses the model's defaults plus ``--set`` overrides and early
stopping on the validation split; test figures are reported, nothing is
chosen on them. With ``--plot`` the learned gate's image share by the
first listed genre of each item (``item_info.csv`` column ``genres``) of the
first seed is drawn (needs matplotlib, the ``[plots]`` extra).

Usage::

    python benchmarks/bench_gate.py variants --data /work/data/ml1m --seeds 0,1,2 --jobs 2 \\
        --set batch_size=auto --out benchmarks/results/gate_ml1m.json --plot benchmarks/results/gate_ml1m_genres.png
    python benchmarks/bench_gate.py corrupt --data /work/data/ml1m --seeds 0 --jobs 2 \\
        --set batch_size=auto --out benchmarks/results/gate_corrupt_ml1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

VARIANTS = {
    "learned": {},
    "fixed": {"gate": "average"},
    "image_only": {"modalities": ("image",)},
    "text_only": {"modalities": ("text",)},
    "no_graph": {"n_layers": 0},
}


def corrupt(image: np.ndarray, text: np.ndarray, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the features with half the images and the other half's texts replaced; returns the group-A mask."""
    rng = np.random.default_rng(seed)
    n = image.shape[0]
    group_a = np.zeros(n, dtype=bool)
    group_a[rng.permutation(n)[: n // 2]] = True
    image, text = image.copy(), text.copy()
    for values, rows in ((image, np.flatnonzero(group_a)), (text, np.flatnonzero(~group_a))):
        if kind == "swap":
            shift = rng.permutation(rows.size)
            source = rows[np.roll(shift, 1)]  # a cyclic shift of a random order: no row keeps its own
            values[rows[shift]] = values[source].copy()
        else:
            norms = np.linalg.norm(values[rows], axis=1, keepdims=True)
            noise = rng.standard_normal((rows.size, values.shape[1])).astype(values.dtype)
            values[rows] = noise / np.maximum(np.linalg.norm(noise, axis=1, keepdims=True), 1e-12) * norms
    return image, text, group_a


def run(job: dict) -> dict:
    import lgrec

    data = lgrec.load_mmrec(job["data"])
    params = {**job["params"], "random_state": job["seed"]}
    modalities = params.pop("modalities", ("image", "text"))
    image, text = data.image, data.text
    group_a = None
    if job.get("corrupt"):
        image, text, group_a = corrupt(image, text, job["corrupt"], seed=1000 + job["seed"])
    started = time.perf_counter()
    model = lgrec.RLMultimodalRec(**params).fit(
        data.train, image if "image" in modalities else None, text if "text" in modalities else None,
        valid=data.valid)
    fit_seconds = time.perf_counter() - started
    test = lgrec.evaluate(model, data.test, data.train, k=20)
    share = model.image_share_
    out = {"variant": job["variant"], "corrupt": job.get("corrupt"), "seed": job["seed"], "params": job["params"],
           "valid_recall@20": max(h["valid_recall@20"] for h in model.history_),
           "test_recall@20": test["recall@20"], "test_ndcg@20": test["ndcg@20"],
           "best_epoch": model.best_epoch_, "epochs": len(model.history_), "fit_seconds": fit_seconds,
           "image_share_quantiles": [float(q) for q in np.nanquantile(share, [0.05, 0.5, 0.95])]
           if np.isfinite(share).any() else None}
    if group_a is not None:
        out["image_share_group_a_bad_image"] = float(np.nanmean(share[group_a]))
        out["image_share_group_b_bad_text"] = float(np.nanmean(share[~group_a]))
    if job.get("keep_share"):
        out["image_share"] = [None if np.isnan(v) else float(v) for v in share]
    return out


def plot_genres(data_dir: str, share: list, path: str) -> None:
    import pandas as pd

    from lgrec.plots import plot_image_share

    info = pd.read_csv(Path(data_dir) / "item_info.csv")
    genres = info["genres"].astype(str).str.split("|").str[0].to_numpy()
    plot_image_share(np.array([np.nan if v is None else v for v in share], dtype=np.float32), path, genres)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("variants", "corrupt"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=None, help="comma-separated subset (variants mode)")
    parser.add_argument("--kinds", default="swap,noise", help="corruptions to run (corrupt mode)")
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE for every fit")
    parser.add_argument("--jobs", type=int, default=1, help="fits at once (each on one Numba thread when > 1)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None, help="PNG of the learned gate's image share by first genre")
    args = parser.parse_args(argv)
    from lgrec.cli import _parse_sets  # the CLI's --set NAME=VALUE rules

    base = _parse_sets(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = []
    if args.mode == "variants":
        names = args.variants.split(",") if args.variants else list(VARIANTS)
        for seed in seeds:
            for name in names:
                jobs.append({"data": args.data, "variant": name, "seed": seed, "params": {**base, **VARIANTS[name]},
                             "keep_share": bool(args.plot) and name == "learned" and seed == seeds[0]})
    else:
        for seed in seeds:
            for kind in args.kinds.split(","):
                for name in ("learned", "fixed"):
                    jobs.append({"data": args.data, "variant": name, "seed": seed, "corrupt": kind,
                                 "params": {**base, **VARIANTS[name]}})
    if args.jobs > 1:
        os.environ.setdefault("NUMBA_NUM_THREADS", "1")
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run, jobs))
    else:
        results = [run(job) for job in jobs]
    for r in results:
        extra = ""
        if "image_share_group_a_bad_image" in r:
            extra = f"  share bad-image {r['image_share_group_a_bad_image']:.3f} bad-text {r['image_share_group_b_bad_text']:.3f}"
        print(f"{r['variant']:>10} {r['corrupt'] or '':>5} seed {r['seed']}: valid {r['valid_recall@20']:.4f} "
              f"test R@20 {r['test_recall@20']:.4f} N@20 {r['test_ndcg@20']:.4f} best {r['best_epoch']} "
              f"fit {r['fit_seconds']:.0f} s{extra}", flush=True)
    if args.plot:
        learned = next(r for r in results if r.get("image_share"))
        plot_genres(args.data, learned.pop("image_share"), args.plot)
    for r in results:
        r.pop("image_share", None)
    if args.out:
        Path(args.out).write_text(json.dumps({"mode": args.mode, "data": args.data, "set": base,
                                              "date": time.strftime("%Y-%m-%d %H:%M"), "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
