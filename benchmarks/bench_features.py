"""Benchmark of offline ONNX feature extraction, and a check that the features carry meaning.

Throughput: images/s and texts/s of ``ImageEncoder.encode`` / ``TextEncoder.encode``
end to end (decode or tokenise, preprocess, model, pooling, normalisation)
against onnxruntime's raw model time on pre-made input tensors of the same
batches, measured in alternation (end to end, raw, end to end, ...) so that
both see the same load on a shared machine. Also JPEG draft decoding on
large photos.

Meaning, on the H&M folder built by ``tools/prepare_hm.py``: mean cosine of
photos of the same ``product_code`` (colour variants of one product) vs
random pairs; of texts of the same ``product_type_name`` vs random pairs;
and, because the item text contains the product type name itself, the same
for texts made of ``detail_desc`` alone.

Usage::

    python benchmarks/bench_features.py --src ../shared/data/hm --models ../shared/models \\
        --data /work/data/hm --out benchmarks/results/features.json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lgrec
from lgrec.features import ImageEncoder, TextEncoder, default_n_threads, load_image_crop, normalize_pixels

ROOT = Path(__file__).resolve().parents[1]


def _prepare_hm():
    spec = importlib.util.spec_from_file_location("prepare_hm", ROOT / "tools" / "prepare_hm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stats(values):
    arr = np.asarray(values, dtype=np.float64)
    return {
        "median": round(float(np.median(arr)), 2),
        "min": round(float(arr.min()), 2),
        "max": round(float(arr.max()), 2),
        "iqr": round(float(np.subtract(*np.percentile(arr, [75, 25]))), 2),
        "runs": [round(float(v), 2) for v in arr],
    }


def _cpu_steal_ticks():
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return None


def environment():
    """Versions, core and thread counts, load."""
    versions = {"python": platform.python_version(), "lgrec": lgrec.__version__}
    for name in ("numpy", "onnxruntime", "tokenizers", "PIL"):
        versions[name] = getattr(importlib.import_module(name), "__version__", "?")
    return {
        "versions": versions,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.uname().machine,
        "cpu_count": os.cpu_count(),
        "cores_available": default_n_threads(),
        "onnxruntime_intra_op_threads": default_n_threads(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ----------------------------------------------------------------------------
# Throughput
# ----------------------------------------------------------------------------


def _paired(runners, n_items, passes):
    """Time each runner on each chunk in turn, so that paired runs see the same machine load.

    ``runners`` maps a name to a list of callables, one per chunk (same chunks for every
    name); each chunk's runs follow each other immediately. Returns items/s over all
    chunks and passes, and, per other runner, its time divided by the first runner's ("raw")
    time: overall and per chunk.
    """
    names = list(runners)
    seconds = {name: [] for name in names}
    for _ in range(passes):
        for chunk in range(len(runners[names[0]])):
            for name in names:
                start = time.perf_counter()
                runners[name][chunk]()
                seconds[name].append(time.perf_counter() - start)
    sizes = np.tile(n_items, passes)
    out = {"items_per_s": {}, "time_ratio_to_raw": {}}
    for name in names:
        t = np.asarray(seconds[name])
        out["items_per_s"][name] = {
            "overall": round(float(sizes.sum() / t.sum()), 2),
            "per_chunk": _stats(sizes / t),
        }
    raw = np.asarray(seconds[names[0]])
    for name in names[1:]:
        ratio = np.asarray(seconds[name]) / raw
        out["time_ratio_to_raw"][name] = {
            "overall": round(float(np.sum(seconds[name]) / raw.sum()), 3),
            "per_chunk_median": round(float(np.median(ratio)), 3),
            "per_chunk_iqr": round(float(np.subtract(*np.percentile(ratio, [75, 25]))), 3),
        }
    return out


def bench_images(paths, model, batch_size, chunk, passes):
    """End-to-end ImageEncoder (with and without prefetch) vs raw session.run on pre-made tensors."""
    n = len(paths)
    pixels = np.stack([load_image_crop(p) for p in paths])
    start = time.perf_counter()
    for p in paths:
        normalize_pixels(load_image_crop(p))
    decode_rate = n / (time.perf_counter() - start)
    encoders = {
        "end_to_end_prefetch": ImageEncoder(model, batch_size=batch_size, prefetch=True, progress=False),
        "end_to_end_no_prefetch": ImageEncoder(model, batch_size=batch_size, prefetch=False, progress=False),
    }
    session = encoders["end_to_end_prefetch"].session
    chunks = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    tensors = [
        [normalize_pixels(pixels[b : min(b + batch_size, e)]) for b in range(s, e, batch_size)] for s, e in chunks
    ]

    def raw(batches):
        return lambda: [session.run(["features"], {"pixel_values": x}) for x in batches]

    def e2e(enc, s, e):
        return lambda: enc.encode(paths[s:e])

    runners = {"raw": [raw(t) for t in tensors]}
    for name, enc in encoders.items():
        runners[name] = [e2e(enc, s, e) for s, e in chunks]
    for fns in runners.values():
        fns[0]()
    sizes = np.array([e - s for s, e in chunks])
    result = {"n_images": n, "batch_size": batch_size, "chunk": chunk, "passes": passes,
              "decode_preprocess_only_images_per_s_1_thread": round(decode_rate, 1)}
    result.update(_paired(runners, sizes, passes))
    result["raw_ms_per_image"] = round(1e3 / result["items_per_s"]["raw"]["overall"], 2)
    return result


def _text_feeds(enc, texts):
    """The model inputs the encoder builds for ``texts`` (length-sorted, dynamically padded batches)."""
    feeds = []
    for c in range(0, len(texts), enc.chunk_size):
        encodings = enc.tokenizer.encode_batch(texts[c : c + enc.chunk_size])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for b in range(0, len(order), enc.batch_size):
            part = [encodings[i] for i in order[b : b + enc.batch_size]]
            length = max(len(e.ids) for e in part)
            ids = np.zeros((len(part), length), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, e in enumerate(part):
                ids[row, : len(e.ids)] = e.ids
                mask[row, : len(e.ids)] = 1
            feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    return feeds


def bench_texts(texts, tokenizer, batch_size, chunk, passes):
    """End-to-end TextEncoder vs raw session.run on the same pre-tokenised, length-sorted batches.

    Each chunk of ``chunk`` texts is encoded as the encoder would (its ``chunk_size`` is
    set to ``chunk``), so the raw runs see exactly the batches the encoder makes.
    """
    n = len(texts)
    enc = TextEncoder(tokenizer_path=tokenizer, batch_size=batch_size, chunk_size=chunk, progress=False)
    chunks = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    feeds = [_text_feeds(enc, texts[s:e]) for s, e in chunks]
    lengths = np.array([len(e.ids) for e in enc.tokenizer.encode_batch(texts)])
    session = enc.session
    start = time.perf_counter()
    enc.tokenizer.encode_batch(texts)
    tokenize_rate = n / (time.perf_counter() - start)

    def raw(batches):
        return lambda: [session.run(None, f) for f in batches]

    def e2e(s, e):
        return lambda: enc.encode(texts[s:e])

    runners = {"raw": [raw(f) for f in feeds], "end_to_end": [e2e(s, e) for s, e in chunks]}
    for fns in runners.values():
        fns[0]()
    sizes = np.array([e - s for s, e in chunks])
    padded = sum(f["input_ids"].size for fs in feeds for f in fs)
    result = {
        "n_texts": n, "batch_size": batch_size, "chunk": chunk, "passes": passes,
        "tokens_per_text_mean": round(float(lengths.mean()), 1),
        "tokens_per_text_max": int(lengths.max()),
        "padding_fraction": round(float(1 - lengths.sum() / padded), 4),
        "tokenize_only_texts_per_s": round(tokenize_rate, 1),
    }
    result.update(_paired(runners, sizes, passes))
    result["raw_ms_per_text"] = round(1e3 / result["items_per_s"]["raw"]["overall"], 2)
    return result


def bench_jpeg_draft(paths, model, factor=4):
    """Decode time and feature agreement of JPEG draft vs full decode on upscaled photos."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        big = []
        for i, path in enumerate(paths):
            with Image.open(path) as img:
                rgb = img.convert("RGB")
                large = rgb.resize((rgb.width * factor, rgb.height * factor), Image.Resampling.BICUBIC)
            target = Path(tmp) / f"{i}.jpg"
            large.save(target, quality=92)
            big.append(target)
        out = {"n_images": len(paths), "size": list(large.size)}
        for draft in (False, True):
            load_image_crop(big[0], jpeg_draft=draft)
            start = time.perf_counter()
            for path in big:
                load_image_crop(path, jpeg_draft=draft)
            out[f"decode_ms_{'draft' if draft else 'full'}"] = round((time.perf_counter() - start) / len(big) * 1e3, 2)
        full = ImageEncoder(model, jpeg_draft=False, progress=False).encode(big)
        draft = ImageEncoder(model, jpeg_draft=True, progress=False).encode(big)
    cosine = np.einsum("ij,ij->i", full, draft)
    out["feature_cosine_draft_vs_full"] = {"min": round(float(cosine.min()), 4), "mean": round(float(cosine.mean()), 4)}
    return out


# ----------------------------------------------------------------------------
# Meaning: same-group vs random pairs
# ----------------------------------------------------------------------------


def pair_gap(x, groups, rng, n_samples=20000):
    """Mean cosine of same-group pairs (exact, all pairs) vs uniformly random pairs of distinct items.

    Parameters
    ----------
    x : ndarray of shape (m, d), float32
        L2-normalised rows.
    groups : ndarray of shape (m,)
        Group label of each row.
    rng : numpy.random.Generator
    n_samples : int
        Random pairs drawn; the same number of same-group pairs is drawn
        (uniformly over all same-group pairs) for the AUC and standard error.

    Returns
    -------
    dict
    """
    x = x.astype(np.float64)
    codes, inverse = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inverse)
    sums = np.zeros((len(codes), x.shape[1]))
    np.add.at(sums, inverse, x)
    sq = np.bincount(inverse, weights=np.einsum("ij,ij->i", x, x))
    pair_counts = sizes * (sizes - 1) / 2
    same_total = ((np.einsum("ij,ij->i", sums, sums) - sq) / 2).sum()
    n_same = int(pair_counts.sum())
    i = rng.integers(0, len(x), n_samples)
    j = (i + rng.integers(1, len(x), n_samples)) % len(x)
    random_cos = np.einsum("ij,ij->i", x[i], x[j])
    members = [np.flatnonzero(inverse == g) for g in range(len(codes))]
    chosen = rng.choice(len(codes), size=n_samples, p=pair_counts / pair_counts.sum())
    same_cos = np.empty(n_samples)
    for k, g in enumerate(chosen):
        a, b = rng.choice(members[g], size=2, replace=False)
        same_cos[k] = x[a] @ x[b]
    ranks = pd.Series(np.concatenate([same_cos, random_cos])).rank().to_numpy()
    auc = (ranks[:n_samples].sum() - n_samples * (n_samples + 1) / 2) / (n_samples * n_samples)
    gap_se = np.sqrt(same_cos.var() / n_samples + random_cos.var() / n_samples)
    same_mean = same_total / n_same
    return {
        "n_items": int(len(x)),
        "n_groups_with_pairs": int((sizes >= 2).sum()),
        "n_same_group_pairs": n_same,
        "mean_cosine_same_group": round(float(same_mean), 4),
        "n_random_pairs": n_samples,
        "random_pairs_in_same_group": round(float(np.mean(inverse[i] == inverse[j])), 4),
        "mean_cosine_random": round(float(random_cos.mean()), 4),
        "gap": round(float(same_mean - random_cos.mean()), 4),
        "gap_standard_error": round(float(gap_se), 4),
        "auc_same_vs_random": round(float(auc), 4),
    }


def semantic_gaps(data, src, tokenizer, n_desc, rng):
    """Gaps on the prepared H&M folder, plus detail_desc-only texts."""
    P = _prepare_hm()
    info = pd.read_csv(data / "item_info.csv", dtype={"article_id": str}, keep_default_na=False)
    articles = P.read_articles(src / "articles.csv")
    image = np.load(data / "image_feat.npy")
    text = np.load(data / "text_feat.npy")
    with_image = info["has_image"].to_numpy() == 1
    with_text = info["has_text"].to_numpy() == 1
    code = articles["product_code"].reindex(info["article_id"]).to_numpy()
    ptype = info["product_type_name"].to_numpy()
    out = {
        "image_same_product_code": pair_gap(image[with_image], code[with_image], rng),
        "image_same_product_type_name": pair_gap(image[with_image], ptype[with_image], rng),
        "text_same_product_type_name": pair_gap(text[with_text], ptype[with_text], rng),
    }
    rows = np.flatnonzero(with_text)
    desc = articles["detail_desc"].reindex(info["article_id"].to_numpy()[rows]).to_numpy()
    keep = rows[[bool(str(d).strip()) for d in desc]]
    keep = np.sort(rng.choice(keep, size=min(n_desc, len(keep)), replace=False))
    desc_texts = articles["detail_desc"].reindex(info["article_id"].to_numpy()[keep]).tolist()
    desc_feat = TextEncoder(tokenizer_path=tokenizer, progress=False).encode(desc_texts)
    out["text_detail_desc_only_same_product_type_name"] = pair_gap(desc_feat, ptype[keep], rng)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=str(ROOT.parent / "shared" / "data" / "hm"), help="H&M source folder")
    parser.add_argument("--models", default=str(ROOT.parent / "shared" / "models"),
        help="folder with the ONNX image model and tokenizer")
    parser.add_argument("--data", default="/work/data/hm", help="folder built by tools/prepare_hm.py (for the gaps)")
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--n-texts", type=int, default=512)
    parser.add_argument("--n-desc", type=int, default=1000, help="items re-encoded from detail_desc alone")
    parser.add_argument("--image-batch-size", type=int, default=32)
    parser.add_argument("--text-batch-size", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=128,
        help="items per timed run; raw and end-to-end runs alternate per chunk")
    parser.add_argument("--passes", type=int, default=3, help="passes over all chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "features.json"))
    args = parser.parse_args(argv)
    src, models, data = Path(args.src), Path(args.models), Path(args.data)
    rng = np.random.default_rng(args.seed)
    P = _prepare_hm()

    result = {"command": [Path(sys.argv[0]).name, *sys.argv[1:]], "environment": environment()}
    steal0 = _cpu_steal_ticks()
    print(json.dumps(result["environment"], indent=2))

    photos = sorted((src / "images").glob("*/*.jpg"))
    photos = [photos[k] for k in np.sort(rng.choice(len(photos), size=min(args.n_images, len(photos)), replace=False))]
    image_model = models / "efficientnet-lite0.onnx"
    tokenizer = models / "all-minilm-l6-v2-tokenizer.json"
    result["images"] = bench_images(photos, image_model, args.image_batch_size, args.chunk, args.passes)
    print(json.dumps({"images": result["images"]}, indent=2))

    articles = P.read_articles(src / "articles.csv")
    picks = np.sort(rng.choice(len(articles), size=min(args.n_texts, len(articles)), replace=False))
    texts = [P.item_text(row) for _, row in articles.iloc[picks].iterrows()]
    result["texts"] = bench_texts(texts, tokenizer, args.text_batch_size, args.chunk, args.passes)
    print(json.dumps({"texts": result["texts"]}, indent=2))

    result["jpeg_draft"] = bench_jpeg_draft(photos[:32], image_model)
    print(json.dumps({"jpeg_draft": result["jpeg_draft"]}, indent=2))

    if (data / "item_info.csv").exists():
        result["semantic_gaps"] = semantic_gaps(data, src, tokenizer, args.n_desc, rng)
        print(json.dumps({"semantic_gaps": result["semantic_gaps"]}, indent=2))
    else:
        print(f"no prepared folder at {data}; run tools/prepare_hm.py first for the semantic gaps", file=sys.stderr)

    steal1 = _cpu_steal_ticks()
    result["environment"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["environment"]["cpu_steal_ticks_during_run"] = None if steal0 is None else steal1 - steal0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
