"""Run a list of hostile inputs against lgrec and classify what each one gives (issue 14).

Every input runs in its own process (forked from a parent that imported lgrec once, or a fresh
``python -m lgrec.cli`` for the command line), so a crash is caught and counted, under a 4 GiB
address-space limit (so a runaway allocation becomes a MemoryError instead of swapping the
machine) and a time limit. Outcomes:

- ``clear``: an exception of lgrec's kinds (ValueError, TypeError, FileNotFoundError,
  ModelFitError, NotFittedError, or a CLI exit 2 with ``lgrec ...: error:``) whose message
  names the argument or file (the case lists the words that count);
- ``documented``: the call returned and the case says returning is the documented behaviour
  (for ``warn`` cases only when a warning was emitted);
- ``obscure``: any other exception, or a clear kind whose message names none of the words;
- ``silent``: the call returned (exit 0) where it had to refuse or warn, or a check the case
  makes on the result (e.g. "the input was not mutated") failed;
- ``crash``: the process died (signal, hang past the time limit, or no outcome line).

Usage::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bad_inputs.py --out benchmarks/results/bad_inputs.json

``PYTHONPATH=/some/older/tree`` runs the same list against another checkout (the "before" figures).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

CLEAR_TYPES = {"ValueError", "TypeError", "FileNotFoundError", "ModelFitError", "NotFittedError", "IsADirectoryError",
               "NotADirectoryError", "PermissionError", "DataWarning"}

PRELUDE = r'''
import io, json, os, sys, warnings, zipfile
import numpy as np, scipy.sparse as sp, pandas as pd
import lgrec
from lgrec import BPRMF, FREEDOM, VBPR, ContentKNN, LightGCN, Popularity, RLMultimodalRec, Dataset, evaluate
from lgrec.persistence import load_model
FIX = os.environ["BAD_FIX"]
DATA = FIX + "/data"
ds = lgrec.load_mmrec(DATA)
U, I = ds.n_users, ds.n_items
def model(name):
    return load_model(None, f"{FIX}/{name}.npz")
def raw_csr(data, indices, indptr, shape):
    """A CSR matrix with the given internals, bypassing scipy's constructor checks (as a corrupt file would)."""
    m = sp.csr_matrix(shape, dtype=np.float32)
    m.data, m.indices, m.indptr = np.asarray(data, np.float32), np.asarray(indices, np.int32), np.asarray(indptr, np.int32)
    return m
def folder(inter_text=None, inter_bytes=None, files=None):
    import tempfile, shutil
    d = tempfile.mkdtemp(dir=FIX)
    if inter_text is not None:
        with open(d + "/x.inter", "w") as h:
            h.write(inter_text)
    if inter_bytes is not None:
        with open(d + "/x.inter", "wb") as h:
            h.write(inter_bytes)
    for name, value in (files or {}).items():
        if isinstance(value, bytes):
            with open(d + "/" + name, "wb") as h:
                h.write(value)
        else:
            np.save(d + "/" + name, value)
    return d
with open(DATA + "/" + [f for f in os.listdir(DATA) if f.endswith(".inter")][0]) as _h:
    GOOD_INTER = _h.read()
def tamper(name, arrays=None, drop=(), meta=None, learned=None, params=None, extra=None):
    """Rewrite a fixture model with changed arrays / meta, keeping the meta's recorded sizes consistent."""
    with np.load(f"{FIX}/{name}.npz", allow_pickle=False) as f:
        content = {k: f[k] for k in f.files}
    m = json.loads(str(content.pop("__lgrec__")))
    for k, v in (arrays or {}).items():
        content[k] = v
    for k in drop:
        content.pop(k, None)
    for k, v in (extra or {}).items():
        content[k] = v
    if isinstance(m.get("arrays"), dict):
        m["arrays"] = {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in content.items()
                       if k in m["arrays"] or k in (arrays or {}) or k in (extra or {})}
    else:
        m["arrays"] = sorted(set(m["arrays"]) | set(arrays or {}) | set(extra or {}))
    m["params"].update(params or {})
    m["learned"].update(learned or {})
    m.update(meta or {})
    path = f"{FIX}/t_{os.getpid()}.npz"
    with open(path, "wb") as h:
        np.savez(h, **content, __lgrec__=np.array(json.dumps(m)))
    return path
def raw_file(data: bytes):
    path = f"{FIX}/r_{os.getpid()}.npz"
    with open(path, "wb") as h:
        h.write(data)
    return path
def model_bytes(name):
    with open(f"{FIX}/{name}.npz", "rb") as h:
        return h.read()
def same(a, b):
    assert np.array_equal(a, b), "results differ"
'''



def _cases() -> list[dict]:
    cases = []

    def add(cid, code, names, ok=None, cli=False):
        """``ok``: None = must refuse; "warn" = returning with a warning is documented; "any" = returning is fine."""
        cases.append({"id": cid, "code": textwrap.dedent(code).strip(), "names": list(names), "ok": ok, "cli": cli})

    # ---- interactions given to fit (Popularity and BPR-MF share check_fit_data with every model)
    inter = {
        "list_of_lists": "[[1, 0], [0, 1]]",
        "dense_object_strings": "np.array([['a', 'b'], ['c', 'd']], dtype=object)",
        "dense_unicode": "np.array([['1', '0'], ['0', '1']])",
        "dense_nan": "np.array([[1.0, np.nan], [0, 1]])",
        "dense_inf": "np.array([[1.0, np.inf], [0, 1]])",
        "dense_negative": "np.array([[1.0, -1], [0, 1]])",
        "dense_1d": "np.ones(5)",
        "dense_3d": "np.ones((2, 2, 2))",
        "dense_complex": "np.array([[1 + 1j, 0], [0, 1]])",
        "csr_nan": "sp.csr_matrix(np.array([[1.0, np.nan], [0, 1]]))",
        "csr_negative": "sp.csr_matrix(np.array([[1.0, -2.0], [0, 1]]))",
        "csr_complex": "sp.csr_matrix(np.array([[1 + 1j, 0], [0, 1]]))",
        "csr_index_1e6": "raw_csr([1, 1, 1], [0, 1000000, 1], [0, 2, 3], (2, 3))",
        "csr_index_negative": "raw_csr([1, 1, 1], [0, -4, 1], [0, 2, 3], (2, 3))",
        "csr_decreasing_indptr": "raw_csr([1, 1, 1], [0, 1, 2], [0, 3, 1, 3], (3, 3))",
        "csr_indptr_start_nonzero": "raw_csr([1, 1, 1], [0, 1, 2], [1, 2, 3], (2, 3))",
        "csr_empty_shape_rows": "sp.csr_matrix((0, 5), dtype=np.float32)",
        "csr_all_zero": "sp.csr_matrix((4, 5), dtype=np.float32)",
        "none": "None",
        "string_path": "'data/baby.inter'",
        "dataframe": "pd.DataFrame({'user': [0, 1], 'item': [1, 0]})",
        "huge_shape_1e8_users": "sp.csr_matrix((np.ones(2, np.float32), (np.array([0, 99_999_999]), np.array([0, 1]))), shape=(100_000_000, 2))",
    }
    for key, expr in inter.items():
        add(f"fit_interactions_{key}_pop", f"Popularity().fit({expr})", ["interactions"],
            ok="warn" if key in ("huge_shape_1e8_users", "dense_nan_free") else None)
    for key in ("csr_index_1e6", "csr_decreasing_indptr", "huge_shape_1e8_users", "dense_object_strings"):
        add(f"fit_interactions_{key}_bpr", f"BPRMF(max_epochs=1).fit({inter[key]})", ["interactions"])
    add("fit_valid_wrong_shape", "BPRMF(max_epochs=1).fit(ds.train, valid=ds.valid[:5])", ["valid"])
    add("fit_valid_index_out_of_range", "BPRMF(max_epochs=1).fit(ds.train, valid=raw_csr([1], [10**6], [0] + [1] * U, (U, I)))", ["valid"])
    add("fit_bool_matrix_ok", "BPRMF(max_epochs=1).fit(ds.train.astype(bool))", [], ok="any")
    add("fit_counts_ok", "m = ds.train * 7; m2 = m.copy(); BPRMF(max_epochs=1).fit(m); same(m.toarray(), m2.toarray())", [], ok="any")
    add("fit_one_item_catalogue", "BPRMF(max_epochs=2).fit(sp.csr_matrix(np.ones((5, 1), np.float32)))", ["negative", "every item"])
    add("fit_every_user_every_item", "LightGCN(max_epochs=2).fit(sp.csr_matrix(np.ones((4, 3), np.float32)))", ["negative", "every item"])

    # ---- features
    feats = {
        "wrong_rows": ("ds.image[:-3]", None),
        "nan": ("np.where(np.arange(I)[:, None] == 3, np.nan, ds.image)", None),
        "inf": ("np.where(np.arange(I)[:, None] == 3, np.inf, ds.image)", None),
        "complex": ("ds.image.astype(np.complex64)", None),
        "string": ("ds.image.astype(str)", None),
        "ragged_list": ("[[1.0, 2.0]] * (I - 1) + [[1.0]]", None),
        "one_d": ("ds.image[:, 0]", None),
        "sparse": ("sp.csr_matrix(ds.image)", None),
        "zero_columns": ("np.zeros((I, 0), np.float32)", None),
        "float64_1e39": ("ds.image.astype(np.float64) * 1e39", None),
        "object_array": ("ds.image.astype(object)", None),
    }
    for key, (expr, _) in feats.items():
        for cls in ("ContentKNN()", "RLMultimodalRec(max_epochs=1)", "VBPR(max_epochs=1)"):
            add(f"fit_img_feats_{key}_{cls.split('(')[0]}", f"{cls}.fit(ds.train, {expr}, ds.text)", ["img_feats"])
    add("fit_img_feats_int8_ok", "ContentKNN().fit(ds.train, (ds.image * 10).astype(np.int8), ds.text)", [], ok="any")
    for scale in ("1e20", "1e30"):
        add(f"fit_feats_scaled_{scale}_contentknn",
            f"a = ContentKNN().fit(ds.train, ds.image, ds.text); b = ContentKNN().fit(ds.train, ds.image * {scale}, ds.text * {scale})\n"
            "np.testing.assert_allclose(a.item_factors_, b.item_factors_, atol=1e-4)", ["img_feats", "txt_feats"], ok="any")
        add(f"fit_feats_scaled_{scale}_rlmm",
            f"a = RLMultimodalRec(max_epochs=2, random_state=0).fit(ds.train, ds.image, ds.text)\n"
            f"b = RLMultimodalRec(max_epochs=2, random_state=0).fit(ds.train, ds.image * {scale}, ds.text * {scale})\n"
            "np.testing.assert_allclose(a.image_share_, b.image_share_, atol=1e-3)", ["img_feats", "txt_feats"], ok="any")
        add(f"fit_feats_scaled_{scale}_freedom",
            f"m = FREEDOM(max_epochs=3, random_state=0).fit(ds.train, ds.image * {scale}, ds.text * {scale})\n"
            "assert m.history_[-1]['loss'] < 10 * m.history_[0]['loss'] and m.history_[-1]['loss'] < 1e3, m.history_[-1]['loss']",
            ["img_feats", "txt_feats", "learning_rate", "standardi"], ok="any")
    add("fit_feats_all_zero_contentknn", "ContentKNN().fit(ds.train, np.zeros_like(ds.image), None)", ["img_feats"], ok="warn")
    add("fit_feats_all_zero_rlmm", "RLMultimodalRec(max_epochs=1).fit(ds.train, np.zeros_like(ds.image), None)", ["img_feats"], ok="warn")
    add("fit_feats_not_mutated",
        "a = ds.image.copy(); b = ds.text.copy(); RLMultimodalRec(max_epochs=1, feature_scaling='standard').fit(ds.train, a, b)\n"
        "same(a, ds.image); same(b, ds.text)", [], ok="any")

    # ---- hyperparameters (fit)
    hyper = [
        ("BPRMF", "embedding_size", "0"), ("BPRMF", "embedding_size", "2.5"), ("BPRMF", "learning_rate", "-1.0"),
        ("BPRMF", "learning_rate", "float('nan')"), ("BPRMF", "batch_size", "0"), ("BPRMF", "batch_size", "'big'"),
        ("BPRMF", "max_epochs", "0"), ("BPRMF", "patience", "0"), ("BPRMF", "regularization", "-1.0"),
        ("BPRMF", "random_state", "-1"), ("BPRMF", "random_state", "'seed'"), ("LightGCN", "n_layers", "-5"),
        ("FREEDOM", "n_neighbors", "-1"), ("FREEDOM", "image_weight", "2.0"), ("FREEDOM", "dropout", "1.0"),
        ("RLMultimodalRec", "gate", "'x'"), ("RLMultimodalRec", "n_layers", "-5"), ("RLMultimodalRec", "content_refresh", "0"),
        ("RLMultimodalRec", "feature_scaling", "'zscore'"), ("VBPR", "item_bias", "'yes'"), ("Popularity", "verbose", "'yes'"),
        ("ContentKNN", "verbose", "2"),
    ]
    hyper += [("BPRMF", "embedding_size", "10**9"), ("RLMultimodalRec", "embedding_size", "10**7")]
    for cls, name, value in hyper:
        add(f"param_{cls}_{name}_{value}", f"{cls}({name}={value}).fit(ds.train, ds.image, ds.text)",
            [name] if "**" not in value else ["interactions", name])
    add("param_BPRMF_batch_size_1e12_ok", "BPRMF(batch_size=10**12, max_epochs=1).fit(ds.train)", [], ok="any")
    add("gate_summary_short_groups", "lgrec.gate_summary(model('rlmm'), groups=[1, 2])", ["groups"])
    for cls in ("BPRMF", "LightGCN", "VBPR", "FREEDOM", "RLMultimodalRec"):
        for lr in ("10.0", "1000.0"):
            add(f"diverge_{cls}_lr{lr}", f"{cls}(learning_rate={lr}, max_epochs=30, random_state=0).fit(ds.train, ds.image, ds.text)",
                ["learning_rate"], ok="warn")

    # ---- recommend / score_users / evaluate
    rec = {
        "k_0": ("model('bpr').recommend(0, ds.train[0], k=0)", ["k"]),
        "k_negative": ("model('bpr').recommend(0, ds.train[0], k=-3)", ["k"]),
        "k_float": ("model('bpr').recommend(0, ds.train[0], k=1.5)", ["k"]),
        "k_string": ("model('bpr').recommend(0, ds.train[0], k='10')", ["k"]),
        "k_bool": ("model('bpr').recommend(0, ds.train[0], k=True)", ["k"]),
        "k_1e12": ("model('bpr').recommend(0, ds.train[0], k=10**12)", ["k"]),
        "k_1e12_batch": ("model('bpr').recommend(np.arange(U), ds.train, k=10**12)", ["k"]),
        "user_out_of_range": ("model('bpr').recommend(U + 5, ds.train[0])", ["userid"]),
        "user_negative": ("model('bpr').recommend(-1, ds.train[0])", ["userid"]),
        "user_float": ("model('bpr').recommend(1.5, ds.train[0])", ["userid"]),
        "user_string": ("model('bpr').recommend('alice', ds.train[0])", ["userid"]),
        "user_2d": ("model('bpr').recommend(np.zeros((2, 2), int), ds.train[:4])", ["userid"]),
        "user_none": ("model('bpr').recommend(None, ds.train[0])", ["userid"]),
        "user_items_wrong_shape": ("model('bpr').recommend([0, 1], ds.train)", ["user_items"]),
        "user_items_index_1e6": ("model('bpr').recommend([0], raw_csr([1], [10**6], [0, 1], (1, I)))", ["user_items"]),
        "user_items_decreasing_indptr": ("model('bpr').recommend([0, 1], raw_csr([1, 1], [0, 1], [0, 2, 1], (2, I)))", ["user_items"]),
        "user_items_nan": ("model('bpr').recommend([0], sp.csr_matrix(np.where(np.arange(I) == 2, np.nan, 0.0)[None]))", ["user_items"]),
        "user_items_missing": ("model('bpr').recommend([0, 1])", ["user_items"]),
        "user_items_string": ("model('bpr').recommend([0, 1], 'seen')", ["user_items"]),
        "filter_items_out_of_range": ("model('bpr').recommend(0, ds.train[0], filter_items=[I + 3])", ["filter_items"]),
        "filter_items_negative": ("model('bpr').recommend(0, ds.train[0], filter_items=[-1])", ["filter_items"]),
        "filter_items_float": ("model('bpr').recommend(0, ds.train[0], filter_items=[1.5])", ["filter_items"]),
        "filter_items_strings": ("model('bpr').recommend(0, ds.train[0], filter_items=['a'])", ["filter_items"]),
        "items_out_of_range": ("model('bpr').recommend(0, ds.train[0], items=[0, I])", ["items"]),
        "items_negative": ("model('bpr').recommend(0, ds.train[0], items=[-2, 3])", ["items"]),
        "items_string": ("model('bpr').recommend(0, ds.train[0], items='abc')", ["items"]),
        "items_empty": ("model('bpr').recommend(0, ds.train[0], items=[])", ["items"]),
        "list_user_items": ("model('bpr').recommend([0], [[0] * I])", ["user_items"]),
        "not_fitted": ("BPRMF().recommend(0, ds.train[0])", ["fitted", "fit"]),
        "score_users_out_of_range": ("model('bpr').score_users(np.array([U + 10]))", ["user_ids"]),
        "score_users_negative": ("model('bpr').score_users(np.array([-1]))", ["user_ids"]),
        "score_users_float": ("model('bpr').score_users(np.array([0.5]))", ["user_ids"]),
        "rlmm_score_users_negative": ("model('rlmm').score_users(np.array([-1]))", ["user_ids"]),
    }
    for key, (code, names) in rec.items():
        add(f"recommend_{key}", code, names)
    add("recommend_empty_users_ok", "ids, s = model('bpr').recommend(np.array([], dtype=int), ds.train[[]]); assert ids.shape == (0, 10)", [], ok="any")
    add("recommend_user_items_not_mutated",
        "ui = ds.train[[0, 1]]; c = ui.copy(); model('rlmm').recommend([0, 1], ui, filter_items=[1, 2]); same(ui.toarray(), c.toarray())", [], ok="any")
    ev = {
        "block_size_negative": ("evaluate(model('bpr'), ds.test, ds.train, block_size=-1)", ["block_size"]),
        "block_size_zero": ("evaluate(model('bpr'), ds.test, ds.train, block_size=0)", ["block_size"]),
        "block_size_float": ("evaluate(model('bpr'), ds.test, ds.train, block_size=2.5)", ["block_size"]),
        "k_0": ("evaluate(model('bpr'), ds.test, ds.train, k=0)", ["k"]),
        "k_empty": ("evaluate(model('bpr'), ds.test, ds.train, k=[])", ["k"]),
        "k_1e12": ("evaluate(model('bpr'), ds.test, ds.train, k=10**12)", ["k"]),
        "k_mixed_negative": ("evaluate(model('bpr'), ds.test, ds.train, k=[5, -1])", ["k"]),
        "k_string": ("evaluate(model('bpr'), ds.test, ds.train, k='20')", ["k"]),
        "truth_wrong_shape": ("evaluate(model('bpr'), ds.test[:, :5], ds.train)", ["truth"]),
        "truth_index_1e6": ("evaluate(model('bpr'), raw_csr([1], [10**6], [0] + [1] * U, (U, I)), ds.train)", ["truth"]),
        "truth_negative_index": ("evaluate(model('bpr'), raw_csr([1], [-7], [0] + [1] * U, (U, I)), ds.train)", ["truth"]),
        "exclude_index_1e6": ("evaluate(model('bpr'), ds.test, raw_csr([1], [10**6], [0] + [1] * U, (U, I)))", ["exclude"]),
        "exclude_wrong_shape": ("evaluate(model('bpr'), ds.test, ds.train[:3])", ["exclude"]),
        "truth_none": ("evaluate(model('bpr'), None, ds.train)", ["truth"]),
        "truth_dense_strings": ("evaluate(model('bpr'), np.full((U, I), 'x'), ds.train)", ["truth"]),
        "model_not_fitted": ("evaluate(BPRMF(), ds.test, ds.train)", ["fitted", "fit"]),
        "model_not_a_model": ("evaluate('bpr', ds.test, ds.train)", ["model"]),
        "truth_empty_ok": ("r = evaluate(model('bpr'), sp.csr_matrix((U, I), dtype=np.float32), ds.train); assert r['n_users'] == 0", [], ),
    }
    for key, (code, names, *rest) in ev.items():
        add(f"evaluate_{key}", code, names, ok="any" if key.endswith("_ok") or key == "k_1e12" else None)

    # ---- add_items / content_embeddings
    ce = {
        "wrong_dim": "model('rlmm').add_items(np.ones((3, 5), np.float32), np.ones((3, ds.text.shape[1]), np.float32))",
        "nan": "model('rlmm').add_items(np.full((3, ds.image.shape[1]), np.nan, np.float32), None)",
        "both_none": "model('rlmm').add_items(None, None)",
        "one_d": "model('rlmm').content_embeddings(np.ones(ds.image.shape[1], np.float32), None)",
        "rows_disagree": "model('rlmm').content_embeddings(np.ones((3, ds.image.shape[1])), np.ones((4, ds.text.shape[1])))",
        "complex": "model('rlmm').content_embeddings(np.ones((3, ds.image.shape[1]), np.complex64), None)",
        "ragged": "model('rlmm').content_embeddings([[1.0] * ds.image.shape[1], [1.0]], None)",
        "strings": "model('rlmm').content_embeddings(np.full((2, ds.image.shape[1]), 'a'), None)",
        "huge_1e39": "model('rlmm').content_embeddings(np.full((2, ds.image.shape[1]), 1e39), None)",
    }
    for key, code in ce.items():
        add(f"content_{key}", code, ["img_feats", "txt_feats"])

    # ---- Dataset constructors
    dset = {
        "valid_wrong_shape": ("Dataset(ds.train, ds.valid[:4], ds.test)", ["valid"]),
        "image_wrong_rows": ("Dataset(ds.train, ds.valid, ds.test, image=ds.image[:4])", ["image"]),
        "user_ids_wrong_length": ("Dataset(ds.train, ds.valid, ds.test, user_ids=np.arange(3))", ["user_ids"]),
        "train_index_1e6": ("Dataset(raw_csr([1], [10**6], [0] + [1] * U, (U, I)), ds.valid, ds.test)", ["train"]),
        "test_overlaps_train_warn": ("Dataset(ds.train, ds.valid, ds.train)", ["test", "train"]),
        "frame_not_frame": ("Dataset.from_frame([(0, 1)])", ["frame"]),
        "frame_missing_column": ("Dataset.from_frame(pd.DataFrame({'u': [0], 'item': [1]}))", ["user"]),
        "frame_empty": ("Dataset.from_frame(pd.DataFrame({'user': [], 'item': []}))", ["frame"]),
        "frame_nan_user": ("Dataset.from_frame(pd.DataFrame({'user': [0, None], 'item': [1, 2]}))", ["user"]),
        "frame_mixed_ids": ("Dataset.from_frame(pd.DataFrame({'user': [0, 'a', 1, 'b'] * 5, 'item': list(range(20))}))", ["user"]),
        "frame_string_times": ("Dataset.from_frame(pd.DataFrame({'user': [0, 0, 1, 1] * 5, 'item': list(range(20)), 't': ['x', 'y', 3, 4] * 5}), time_col='t', split='temporal')", ["t", "time"]),
        "frame_bad_split": ("Dataset.from_frame(pd.DataFrame({'user': [0], 'item': [1]}), split='x')", ["split"]),
        "frame_valid_size_1_5": ("Dataset.from_frame(pd.DataFrame({'user': [0], 'item': [1]}), valid_size=1.5)", ["valid_size"]),
        "frame_sizes_sum_1": ("Dataset.from_frame(pd.DataFrame({'user': [0], 'item': [1]}), valid_size=0.5, test_size=0.5)", ["valid_size"]),
        "frame_temporal_no_time": ("Dataset.from_frame(pd.DataFrame({'user': [0], 'item': [1]}), split='temporal')", ["time_col"]),
        "frame_not_mutated_ok": ("f = pd.DataFrame({'user': [3, 1, 2] * 4, 'item': list(range(12))}); g = f.copy(); Dataset.from_frame(f, random_state=0); assert f.equals(g)", []),
    }
    for key, (code, names) in dset.items():
        add(f"dataset_{key}", code, names, ok="any" if key.endswith("_ok") else "warn" if key.endswith("_warn") else None)

    # ---- MMRec folders
    head = "userID\titemID\tx_label\n"
    mm = {
        "folder_missing": ("lgrec.load_mmrec(FIX + '/nope')", ["nope"]),
        "folder_empty": ("lgrec.load_mmrec(folder())", [".inter"]),
        "inter_zero_bytes": ("lgrec.load_mmrec(folder(inter_bytes=b''))", ["x.inter"]),
        "inter_header_only": (f"lgrec.load_mmrec(folder({head!r}))", ["x.inter"]),
        "inter_binary": ("lgrec.load_mmrec(folder(inter_bytes=bytes(range(256)) * 20))", ["x.inter"]),
        "inter_truncated": ("lgrec.load_mmrec(folder(GOOD_INTER[: len(GOOD_INTER) // 2 + 3]))", ["x.inter"]),
        "inter_missing_column": ("lgrec.load_mmrec(folder('userID\\titemID\\n0\\t1\\n'))", ["x.inter"]),
        "inter_float_ids": (f"lgrec.load_mmrec(folder({head!r} + '0.5\\t1\\t0\\n'))", ["x.inter"]),
        "inter_string_ids": (f"lgrec.load_mmrec(folder({head!r} + 'a\\t1\\t0\\n'))", ["x.inter"]),
        "inter_negative_ids": (f"lgrec.load_mmrec(folder({head!r} + '-1\\t1\\t0\\n'))", ["x.inter"]),
        "inter_bad_label": (f"lgrec.load_mmrec(folder({head!r} + '0\\t1\\t5\\n'))", ["x.inter"]),
        "inter_user_1e8": ("lgrec.load_mmrec(folder(GOOD_INTER + '100000000\\t1\\t0\\n'))", ["x.inter"]),
        "inter_item_1e8": ("lgrec.load_mmrec(folder(GOOD_INTER + '1\\t100000000\\t0\\n'))", ["x.inter"]),
        "inter_user_2e9": ("lgrec.load_mmrec(folder(GOOD_INTER + '2000000000\\t1\\t0\\n'))", ["x.inter"]),
        "inter_pair_in_train_and_test_warn": ("lgrec.load_mmrec(folder(GOOD_INTER + '0\\t1\\t2\\n0\\t1\\t0\\n'))", ["x.inter"]),
        "inter_no_train": (f"lgrec.load_mmrec(folder({head!r} + '0\\t1\\t2\\n'))", ["x.inter", "train"]),
        "inter_dup_in_train_warn": ("lgrec.load_mmrec(folder(GOOD_INTER + '0\\t1\\t0\\n0\\t1\\t0\\n'))", ["x.inter"]),
        "npy_zero_bytes": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': b''}))", ["image_feat.npy"]),
        "npy_garbage": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': b'hello world' * 10}))", ["image_feat.npy"]),
        "npy_truncated": ("b = open(DATA + '/image_feat.npy', 'rb').read(); lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': b[: len(b) // 2]}))", ["image_feat.npy"]),
        "npy_pickled_object": ("import pickle; buf = io.BytesIO(); np.save(buf, np.array([{'a': 1}] * 3, dtype=object), allow_pickle=True); lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': buf.getvalue()}))", ["image_feat.npy"]),
        "npy_one_d": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.ones(5, np.float32)}))", ["image_feat.npy"]),
        "npy_wrong_rows": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.ones((3, 4), np.float32)}))", ["image_feat.npy"]),
        "npy_nan": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.full((I, 4), np.nan, np.float32)}))", ["image_feat.npy", "image"]),
        "npy_strings": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.full((I, 4), 'a')}))", ["image_feat.npy", "image"]),
        "npy_complex": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.ones((I, 4), np.complex64)}))", ["image_feat.npy", "image"]),
        "npy_ids_out_of_range": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.ones((2, 4), np.float32), 'image_item_ids.npy': np.array([0, 10**6])}))", ["image_item_ids.npy"]),
        "npy_ids_duplicate": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.ones((2, 4), np.float32), 'image_item_ids.npy': np.array([1, 1])}))", ["image_item_ids.npy"]),
        "npy_ids_float": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.ones((2, 4), np.float32), 'image_item_ids.npy': np.array([0.0, 1.0])}))", ["image_item_ids.npy"]),
        "npy_ids_garbage": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'image_feat.npy': np.ones((2, 4), np.float32), 'image_item_ids.npy': b'xx'}))", ["image_item_ids.npy"]),
        "id_map_garbage": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'u_id_mapping.csv': bytes(range(256))}))", ["u_id_mapping.csv"]),
        "id_map_out_of_range": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'u_id_mapping.csv': b'orig\\tuserID\\na\\t99999999\\n'}))", ["u_id_mapping.csv"]),
        "id_map_non_integer": ("lgrec.load_mmrec(folder(GOOD_INTER, files={'i_id_mapping.csv': b'orig\\titemID\\na\\tb\\n'}))", ["i_id_mapping.csv"]),
        "name_missing": ("lgrec.load_mmrec(DATA, name='other')", ["other"]),
        "two_inter_files": ("d = folder(GOOD_INTER); open(d + '/y.inter', 'w').write(GOOD_INTER); lgrec.load_mmrec(d)", [".inter"]),
    }
    for key, (code, names) in mm.items():
        add(f"mmrec_{key}", code, names, ok="warn" if key.endswith("_warn") else None)
    add("save_mmrec_not_dataset", "lgrec.save_mmrec(None, FIX + '/out')", ["dataset"])
    add("save_mmrec_folder_is_file", "open(FIX + '/afile', 'w').write('x'); lgrec.save_mmrec(ds, FIX + '/afile')", ["afile"])
    add("save_mmrec_roundtrip_ok", "d = FIX + '/rt'; lgrec.save_mmrec(ds, d); e = lgrec.load_mmrec(d); same(e.train.toarray(), ds.train.toarray()); same(e.image, ds.image)", [], ok="any")

    # ---- model files (tampered corpus)
    mf = {
        "zero_bytes": "load_model(None, raw_file(b''))",
        "text_file": "load_model(None, raw_file(b'not a zip file at all'))",
        "truncated_half": "b = model_bytes('rlmm'); load_model(None, raw_file(b[: len(b) // 2]))",
        "truncated_tail": "b = model_bytes('rlmm'); load_model(None, raw_file(b[:-10]))",
        "flipped_byte_early": "b = bytearray(model_bytes('rlmm')); b[200] ^= 0xFF; load_model(None, raw_file(bytes(b)))",
        "flipped_byte_middle": "b = bytearray(model_bytes('rlmm')); b[len(b) // 2] ^= 0x01; load_model(None, raw_file(bytes(b)))",
        "flipped_byte_late": "b = bytearray(model_bytes('bpr')); b[-300] ^= 0x10; load_model(None, raw_file(bytes(b)))",
        "no_meta": "p = raw_file(b''); np.savez(p, a=np.ones(3)); load_model(None, p)",
        "meta_not_json": "p = raw_file(b''); np.savez(p, __lgrec__=np.array('{not json')); load_model(None, p)",
        "meta_is_list": "p = raw_file(b''); np.savez(p, __lgrec__=np.array('[1, 2]')); load_model(None, p)",
        "meta_numeric_array": "p = raw_file(b''); np.savez(p, __lgrec__=np.ones(3)); load_model(None, p)",
        "unknown_class": "load_model(None, tamper('bpr', meta={'class': 'os'}))",
        "class_is_function": "load_model(None, tamper('bpr', meta={'class': 'load_mmrec'}))",
        "wrong_class_for_load": "LightGCN.load(tamper('bpr'))",
        "format_version_99": "load_model(None, tamper('bpr', meta={'format_version': 99}))",
        "format_version_string": "load_model(None, tamper('bpr', meta={'format_version': 'x'}))",
        "params_not_dict": "load_model(None, tamper('bpr', meta={'params': [1, 2]}))",
        "unknown_param": "load_model(None, tamper('bpr', params={'evil': 1}))",
        "param_n_layers_negative": "load_model(None, tamper('lightgcn', params={'n_layers': -5}))",
        "param_rlmm_n_layers_negative": "load_model(None, tamper('rlmm', params={'n_layers': -5}))",
        "param_embedding_string": "load_model(None, tamper('bpr', params={'embedding_size': 'x'}))",
        "param_memory_weight_nan": "load_model(None, tamper('rlmm', params={'memory_weight': float('nan')}))",
        "param_freedom_dropout": "load_model(None, tamper('freedom', params={'dropout': 3.0}))",
        "extra_array": "load_model(None, tamper('bpr', extra={'evil_': np.ones(3, np.float32)}))",
        "extra_array_no_underscore": "load_model(None, tamper('bpr', extra={'recommend': np.ones(3, np.float32)}))",
        "shadow_property": "load_model(None, tamper('bpr', extra={'n_users_': np.ones(3, np.float32)}))",
        "shadow_method_learned": "load_model(None, tamper('bpr', learned={'score_users': 1}))",
        "shadow_dunder_learned": "load_model(None, tamper('bpr', learned={'__class__': 'x'}))",
        "missing_array": "load_model(None, tamper('bpr', drop=['item_factors_']))",
        "missing_array_in_meta_too": "p = tamper('bpr', drop=['item_factors_']); load_model(None, p).recommend(0, ds.train[0])",
        "fewer_item_rows": "load_model(None, tamper('bpr', arrays={'item_factors_': np.ones((3, 64), np.float32)})).recommend(0, ds.train[0])",
        "fewer_user_rows_rlmm": "m = load_model(None, tamper('rlmm', arrays={'user_factors_': np.ones((3, 64), np.float32)})); m.recommend(2, ds.train[2])",
        "factors_int8": "load_model(None, tamper('bpr', arrays={'user_factors_': np.ones((U, 64), np.int8)}))",
        "factors_complex": "load_model(None, tamper('bpr', arrays={'user_factors_': np.ones((U, 64), np.complex64)}))",
        "factors_float64": "load_model(None, tamper('bpr', arrays={'user_factors_': np.ones((U, 64), np.float64)}))",
        "factors_strings": "load_model(None, tamper('bpr', arrays={'user_factors_': np.full((U, 64), 'a')}))",
        "factors_1d": "load_model(None, tamper('bpr', arrays={'user_factors_': np.ones(U, np.float32)}))",
        "factors_nan": "load_model(None, tamper('bpr', arrays={'user_factors_': np.full((U, 64), np.nan, np.float32)}))",
        "memory_index_out_of_range": "m = load_model(None, tamper('rlmm', arrays={'memory_indices_': np.full_like(model('rlmm').memory_indices_, I + 5)})); m.recommend(np.arange(U), ds.train)",
        "memory_index_2e9": "m = load_model(None, tamper('rlmm', arrays={'memory_indices_': np.full_like(model('rlmm').memory_indices_, 2_000_000_000)})); m.recommend(np.arange(U), ds.train)",
        "memory_index_negative": "m = load_model(None, tamper('rlmm', arrays={'memory_indices_': np.full_like(model('rlmm').memory_indices_, -3)})); m.recommend(np.arange(U), ds.train)",
        "memory_indptr_decreasing": "p = model('rlmm').memory_indptr_.copy(); p[1:-1] = p[1:-1][::-1]; m = load_model(None, tamper('rlmm', arrays={'memory_indptr_': p})); m.recommend(np.arange(U), ds.train)",
        "memory_indptr_short": "m = load_model(None, tamper('rlmm', arrays={'memory_indptr_': model('rlmm').memory_indptr_[:5]})); m.recommend(np.arange(U), ds.train)",
        "memory_indptr_beyond_nnz": "p = model('rlmm').memory_indptr_.copy(); p[-1] += 1000; m = load_model(None, tamper('rlmm', arrays={'memory_indptr_': p})); m.recommend(np.arange(U), ds.train)",
        "memory_data_nan": "d = model('rlmm').memory_data_.copy(); d[::3] = np.nan; load_model(None, tamper('rlmm', arrays={'memory_data_': d}))",
        "memory_indices_float": "load_model(None, tamper('rlmm', arrays={'memory_indices_': model('rlmm').memory_indices_.astype(np.float32)}))",
        "memory_data_shorter": "load_model(None, tamper('rlmm', arrays={'memory_data_': model('rlmm').memory_data_[:10]}))",
        "cold_items_out_of_range": "load_model(None, tamper('rlmm', arrays={'cold_items_': np.array([I + 100])}))",
        "gate_wrong_rows": "load_model(None, tamper('rlmm', arrays={'gate_': np.ones((3, 64), np.float32)}))",
        "image_weights_wrong_shape": "m = load_model(None, tamper('rlmm', arrays={'image_weights_': np.ones((5, 64), np.float32)})); m.add_items(ds.image[:2], ds.text[:2])",
        "image_dim_lie": "load_model(None, tamper('rlmm', learned={'image_dim_': 7}))",
        "history_not_list": "load_model(None, tamper('bpr', learned={'history_': 'x'}))",
        "memory_weight_nan": "load_model(None, tamper('rlmm', learned={'memory_weight_': float('nan')}))",
        "memory_weight_negative": "load_model(None, tamper('rlmm', learned={'memory_weight_': -1.0}))",
        "memory_search_not_dict": "load_model(None, tamper('rlmm', learned={'memory_search_': [1, 2]}))",
        "best_epoch_string": "load_model(None, tamper('bpr', learned={'best_epoch_': 'x'}))",
        "array_pickled_object": "p = tamper('bpr'); z = dict(np.load(p)); z['user_factors_'] = np.array([{'a': 1}] * 3, dtype=object); np.savez(p, **z); load_model(None, p)",
        "zip_bomb": (
            "p = raw_file(b''); z = zipfile.ZipFile(p, 'w', compression=zipfile.ZIP_DEFLATED)\n"
            "z.writestr('__lgrec__.npy', open(tamper('bpr'), 'rb').read()[:0] or b'')\n"
            "z.close()\n"
            "with np.load(tamper('bpr')) as f: content = {k: f[k] for k in f.files}\n"
            "z = zipfile.ZipFile(p, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=9)\n"
            "for k, v in content.items():\n"
            "    b = io.BytesIO(); np.lib.format.write_array(b, v); z.writestr(k + '.npy', b.getvalue())\n"
            "big = np.zeros((2**28 // 64, 64), np.float32); b = io.BytesIO(); np.lib.format.write_array(b, big)\n"
            "z.writestr('evil_.npy', b.getvalue()); z.close(); del big, b\n"
            "load_model(None, p)"
        ),
        "shape_lie_in_header": "p = tamper('bpr'); z = dict(np.load(p)); z['user_factors_'] = np.ones((U - 1, 64), np.float32); np.savez(p, **z); load_model(None, p)",
        "directory": "load_model(None, FIX)",
        "missing_file": "load_model(None, FIX + '/nope.npz')",
    }
    for key, code in mf.items():
        add(f"model_file_{key}", code, ["npz", "t_", "r_", "model file", FIX_WORD] + (["user_items", "items"] if key == "fewer_item_rows" else []))
    add("model_file_roundtrip_ok", "m = model('rlmm'); p = FIX + '/rt.npz'; m.save(p); n = load_model(None, p)\n"
        "for k, v in vars(m).items():\n    if isinstance(v, np.ndarray): same(v, getattr(n, k))", [], ok="any")

    # ---- compare
    from_compare = {
        "dataset_not_dataset": ("compare('data', ['pop'])", ["dataset"]),
        "models_string": ("compare(ds, 'bpr')", ["models"]),
        "models_unknown": ("compare(ds, ['nope'])", ["nope", "model"]),
        "seeds_zero": ("compare(ds, ['pop'], seeds=0)", ["seeds"]),
        "seeds_string": ("compare(ds, ['pop'], seeds='a')", ["seeds"]),
        "seeds_floats": ("compare(ds, ['pop'], seeds=[0.5])", ["seeds"]),
        "params_list": ("compare(ds, ['pop'], params=[1])", ["params"]),
        "params_unknown": ("compare(ds, ['bpr'], params={'bpr': {'evil': 1}})", ["evil"]),
        "grid_string": ("compare(ds, ['pop'], grid='x')", ["grid"]),
        "blas_threads_zero": ("compare(ds, ['pop'], blas_threads=0)", ["blas_threads"]),
    }
    for key, (code, names) in from_compare.items():
        add(f"compare_{key}", "from lgrec.compare import compare\n" + code, names)

    # ---- CLI
    cli = {
        "fit_save_unusable": ("fit {DATA} --model bpr --set max_epochs=1 --save /nonexistent/dir/m.npz --quiet", ["--save", "/nonexistent"]),
        "fit_report_unusable": ("fit {DATA} --model bpr --set max_epochs=1 --report /nonexistent/r.json --quiet", ["--report", "/nonexistent"]),
        "fit_save_is_dir": ("fit {DATA} --model bpr --set max_epochs=1 --save {FIX} --quiet", ["--save"]),
        "fit_k_5_10": ("fit {DATA} --model bpr --set max_epochs=1 --k 5,10 --quiet", ["--k", "20"]),
        "fit_k_0": ("fit {DATA} --model bpr --set max_epochs=1 --k 0 --quiet", ["--k", "k"]),
        "fit_set_negative_layers": ("fit {DATA} --model lightgcn --set n_layers=-5 --quiet", ["n_layers"]),
        "fit_set_unknown": ("fit {DATA} --model bpr --set evil=1 --quiet", ["evil"]),
        "fit_set_no_equals": ("fit {DATA} --model bpr --set oops --quiet", ["--set"]),
        "fit_data_missing": ("fit {FIX}/nope --model bpr --quiet", ["nope"]),
        "fit_lr_10": ("fit {DATA} --model bpr --set learning_rate=10.0 --set max_epochs=30 --quiet", ["learning_rate"]),
        "recommend_zero_byte_model": ("recommend {FIX}/zero.npz --users 0", ["zero.npz"]),
        "recommend_corrupt_model": ("recommend {FIX}/corrupt.npz --users 0", ["corrupt.npz"]),
        "recommend_user_out_of_range": ("recommend {FIX}/bpr.npz --users 99999", ["99999", "user"]),
        "recommend_user_negative": ("recommend {FIX}/bpr.npz --users -1", ["user", "-1"]),
        "recommend_user_out_of_range_with_data": ("recommend {FIX}/bpr.npz {DATA} --users 99999", ["99999", "user"]),
        "recommend_users_empty": ("recommend {FIX}/bpr.npz {DATA} --users ,", ["--users"]),
        "recommend_users_text": ("recommend {FIX}/bpr.npz {DATA} --users alice", ["--users"]),
        "recommend_k_0": ("recommend {FIX}/bpr.npz --users 0 --k 0", ["k"]),
        "recommend_k_1e12": ("recommend {FIX}/bpr.npz --users 0 --k 1000000000000", ["k"]),
        "recommend_k_list": ("recommend {FIX}/bpr.npz --users 0 --k 5,10", ["--k"]),
        "recommend_other_folder": ("recommend {FIX}/bpr.npz {FIX}/other --users 0", ["other", "users", "items"]),
        "recommend_memory_out_of_range": ("recommend {FIX}/rlmm_bad_memory.npz --all", ["rlmm_bad_memory.npz"]),
        "evaluate_other_folder": ("evaluate {FIX}/bpr.npz {FIX}/other", ["other", "users", "items"]),
        "evaluate_report_unusable": ("evaluate {FIX}/bpr.npz {DATA} --report /nonexistent/r.json", ["--report", "/nonexistent"]),
        "evaluate_k_0": ("evaluate {FIX}/bpr.npz {DATA} --k 0", ["k"]),
        "compare_out_is_file": ("compare {DATA} --models pop --seeds 1 --out {FIX}/bpr.npz --quiet", ["--out", "bpr.npz"]),
        "compare_seeds_0": ("compare {DATA} --models pop --seeds 0 --quiet", ["--seeds"]),
        "compare_set_unknown_model": ("compare {DATA} --models pop --set nomodel.x=1 --quiet", ["nomodel"]),
    }
    for key, (args, names) in cli.items():
        add(f"cli_{key}", args, names, cli=True, ok="any" if key in ("fit_save_is_dir", "fit_k_5_10") else None)
    return cases


FIX_WORD = "lgrec-bad-"


def make_fixtures(fix: Path) -> None:
    """Dataset folders and fitted models every case reads (built once, with the code under test)."""
    code = r'''
import sys, numpy as np, json, warnings
warnings.simplefilter("ignore")
import lgrec
from lgrec.datasets import make_multimodal
from lgrec.models import MODELS
fix = sys.argv[1]
ds = make_multimodal(n_users=60, n_items=50, interactions_per_user=8.0, random_state=0)
lgrec.save_mmrec(ds, fix + "/data")
lgrec.save_mmrec(make_multimodal(n_users=30, n_items=20, interactions_per_user=5.0, random_state=1), fix + "/other")
ds = lgrec.load_mmrec(fix + "/data")
for name, cls in MODELS.items():
    m = cls()
    if "max_epochs" in m.get_params():
        m.set_params(max_epochs=2, random_state=0)
    m.fit(ds.train, ds.image, ds.text)
    m.save(f"{fix}/{name}.npz")
open(fix + "/zero.npz", "wb").close()
b = bytearray(open(fix + "/rlmm.npz", "rb").read()); b[len(b) // 2] ^= 0xFF
open(fix + "/corrupt.npz", "wb").write(bytes(b))
with np.load(fix + "/rlmm.npz") as f:
    content = {k: f[k] for k in f.files}
content["memory_indices_"] = np.full_like(content["memory_indices_"], 2_000_000_000)
meta = json.loads(str(content["__lgrec__"]))
if isinstance(meta["arrays"], dict):
    meta["arrays"]["memory_indices_"] = {"shape": list(content["memory_indices_"].shape), "dtype": content["memory_indices_"].dtype.str}
content["__lgrec__"] = np.array(json.dumps(meta))
with open(fix + "/rlmm_bad_memory.npz", "wb") as h:
    np.savez(h, **content)
'''
    subprocess.run([sys.executable, "-c", code, str(fix)], check=True)


def _limit_memory():
    limit = 4 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run_forked(case: dict, fix: Path, timeout: float) -> tuple[int | None, str, str]:
    """Run a Python case in a child forked from this process (lgrec and the prelude already imported).

    Returns ``(status, stdout, stderr)``; status is the negative signal number of a killed
    child, None on a timeout.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        try:
            _limit_memory()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            namespace = dict(_PRELUDE_NAMESPACE)
            line = _execute(case["code"], namespace)
        except BaseException as exc:  # noqa: BLE001 - reported as the case's outcome
            line = json.dumps({"status": "raised", "type": type(exc).__name__, "message": str(exc)[:500],
                               "warnings": [], "assertion": False})
        os.write(write_fd, line.encode())
        os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + timeout
    chunks = []
    os.set_blocking(read_fd, False)
    while True:
        try:
            data = os.read(read_fd, 65536)
            if data:
                chunks.append(data)
        except BlockingIOError:
            pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            try:
                while data := os.read(read_fd, 65536):
                    chunks.append(data)
            except BlockingIOError:
                pass
            os.close(read_fd)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            return code, b"".join(chunks).decode(errors="replace"), ""
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return None, "", ""
        time.sleep(0.01)


def _execute(code: str, namespace: dict) -> str:
    """Run one case's code; the outcome as the JSON line the parent reads."""
    import warnings

    caught = []

    def record(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, ResourceWarning):
            caught.append(f"{category.__name__}: {message}")

    warnings.simplefilter("always")
    warnings.showwarning = record
    try:
        exec(compile(code, "case", "exec"), namespace)
        return json.dumps({"status": "returned", "warnings": caught[-5:]})
    except BaseException as exc:  # noqa: BLE001 - the outcome being measured
        return json.dumps({"status": "raised", "type": type(exc).__name__, "message": str(exc)[:500],
                           "warnings": caught[-5:], "assertion": isinstance(exc, AssertionError)})


_PRELUDE_NAMESPACE: dict = {}


def run_case(case: dict, fix: Path, timeout: float) -> dict:
    env = {**os.environ, "BAD_FIX": str(fix), "PYTHONWARNINGS": "always"}
    started = time.perf_counter()
    if case["cli"]:
        args = case["code"].format(DATA=fix / "data", FIX=fix).split()
        cmd = [sys.executable, "-m", "lgrec.cli", *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                  preexec_fn=_limit_memory, cwd=fix)
        except subprocess.TimeoutExpired:
            return {**case, "outcome": "crash", "detail": f"no answer within {timeout:.0f}s"}
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        returncode, stdout, stderr = _run_forked(case, fix, timeout)
        if returncode is None:
            return {**case, "outcome": "crash", "detail": f"no answer within {timeout:.0f}s"}
        stdout = "@@OUTCOME " + stdout if stdout else ""

    class proc:  # the fields the classification reads
        pass

    proc.returncode, proc.stdout, proc.stderr = returncode, stdout, stderr
    seconds = time.perf_counter() - started
    names = [n.lower() for n in case["names"]]
    if case["cli"]:
        text = (proc.stdout + proc.stderr)[-2000:]
        if proc.returncode < 0:
            return {**case, "outcome": "crash", "detail": f"signal {-proc.returncode}", "seconds": seconds}
        if proc.returncode == 0:
            return {**case, "outcome": "documented" if case["ok"] else "silent", "detail": text[-300:], "seconds": seconds}
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        clean = "Traceback" not in proc.stderr and (last.startswith("lgrec") or "usage:" in proc.stderr)
        named = any(n in last.lower() for n in names)
        return {**case, "outcome": "clear" if clean and named else "obscure", "detail": last[:300], "seconds": seconds}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@OUTCOME ")]
    if proc.returncode != 0 or not lines:
        return {**case, "outcome": "crash", "detail": f"exit {proc.returncode}: {proc.stderr[-300:]}", "seconds": seconds}
    out = json.loads(lines[-1][len("@@OUTCOME "):])
    if out["status"] == "returned":
        if case["ok"] == "any" or (case["ok"] == "warn" and out["warnings"]):
            outcome = "documented"
        else:
            outcome = "silent"
        return {**case, "outcome": outcome, "detail": "; ".join(out["warnings"])[:300], "seconds": seconds}
    if out.get("assertion"):
        return {**case, "outcome": "silent", "detail": "check failed: " + out["message"][:300], "seconds": seconds}
    message = out["message"].lower()
    named = any(n in message for n in names)
    outcome = "clear" if out["type"] in CLEAR_TYPES and named else "obscure"
    return {**case, "outcome": outcome, "detail": f"{out['type']}: {out['message'][:300]}", "seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the per-case results as JSON")
    parser.add_argument("--only", help="run the cases whose id contains this text")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    cases = [c for c in _cases() if not args.only or args.only in c["id"]]
    with tempfile.TemporaryDirectory(prefix=FIX_WORD) as tmp:
        fix = Path(tmp)
        make_fixtures(fix)
        os.environ["BAD_FIX"] = str(fix)
        os.chdir(fix)
        exec(compile(PRELUDE, "prelude", "exec"), _PRELUDE_NAMESPACE)
        results = []
        for case in cases:
            result = run_case(case, fix, args.timeout)
            results.append(result)
            print(f"{result['outcome']:>10}  {case['id']}  {result.get('detail', '')[:160]}", flush=True)
    counts = Counter(r["outcome"] for r in results)
    summary = {k: counts.get(k, 0) for k in ("clear", "documented", "obscure", "silent", "crash")}
    print(json.dumps({"n": len(results), **summary}))
    if args.out:
        Path(args.out).write_text(json.dumps({"n": len(results), "summary": summary, "cases": [
            {k: r[k] for k in ("id", "outcome", "detail") if k in r} for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
