"""Issue 14: divergence, persistence format 3, CLI checks before work, memory of recommend, learned-state coverage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import lgrec
import lgrec.datasets
from lgrec import DataWarning, ModelFitError
from lgrec._validation import check_csr_arrays
from lgrec.cli import main
from lgrec.models import MODELS
from lgrec.persistence import FORMAT_VERSION, load_model

TRAINABLE = ["bpr", "lightgcn", "vbpr", "freedom", "rlmm"]


@pytest.mark.parametrize("name, extra", [(name, {}) for name in TRAINABLE] + [("bpr", {"optimizer": "sgd"})])
def test_learning_rate_10_is_caught_for_every_trainable_estimator(synthetic, name, extra):
    model = MODELS[name](learning_rate=10.0, max_epochs=30, random_state=0, **extra)
    with pytest.raises(ModelFitError, match="diverged at epoch .*Lower learning_rate \\(now 10\\)"):
        model.fit(synthetic.train, synthetic.image, synthetic.text)


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_dataset_without_any_negative_item_says_so(name):
    features = np.ones((1, 3), np.float32)
    with pytest.raises(ModelFitError, match="no negative item exists"):
        MODELS[name](max_epochs=2).fit(sp.csr_matrix(np.ones((4, 1), np.float32)), features, features)


def test_badly_scaled_features_raise_with_advice(synthetic):
    with pytest.raises(ModelFitError, match="Standardise the item features"):
        lgrec.FREEDOM(max_epochs=3, random_state=0).fit(synthetic.train, synthetic.image * 1e20, synthetic.text * 1e20)


def test_normal_fits_do_not_trip_the_divergence_rule(synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for name in TRAINABLE:
            MODELS[name](learning_rate=1e-2, max_epochs=5, random_state=0).fit(
                synthetic.train, synthetic.image, synthetic.text, valid=synthetic.valid)


def test_csr_arrays_check_every_invariant():
    good = sp.random(4, 5, density=0.5, format="csr", random_state=0)
    check_csr_arrays(good.indptr, good.indices, good.shape, "m", good.data)
    cases = {
        "indptr has 4 entries for 4 rows": (good.indptr[:-1], good.indices),
        "column index 5 is outside": (good.indptr, np.where(np.arange(good.nnz) == 0, 5, good.indices)),
        "column index -1 is outside": (good.indptr, np.where(np.arange(good.nnz) == 0, -1, good.indices)),
        "indptr must run from 0": (good.indptr + 1, good.indices),
        "its indices must be a 1-D integer array": (good.indptr, good.indices.astype(float)),
    }
    for message, (indptr, indices) in cases.items():
        with pytest.raises(ValueError, match=message):
            check_csr_arrays(indptr, indices, good.shape, "m")
    indptr = good.indptr.copy()
    indptr[1], indptr[2] = indptr[2], indptr[1] - 1 if indptr[1] > 0 else 0
    if (np.diff(indptr) < 0).any():
        with pytest.raises(ValueError, match="indptr decreases"):
            check_csr_arrays(indptr, good.indices, good.shape, "m")


def test_corrupt_csr_never_reaches_scipy_as_truth_exclusion_or_user_items(synthetic):
    model = lgrec.Popularity().fit(synthetic.train)
    bad = sp.csr_matrix(synthetic.test.shape, dtype=np.float32)
    bad.indptr = np.r_[0, np.ones(synthetic.n_users, np.int32)].astype(np.int32)
    bad.indices, bad.data = np.array([10**6], np.int32), np.ones(1, np.float32)
    for call, name in ((lambda: lgrec.evaluate(model, bad, synthetic.train), "truth"),
                       (lambda: lgrec.evaluate(model, synthetic.test, bad), "exclude"),
                       (lambda: model.recommend(np.arange(synthetic.n_users), bad), "user_items")):
        with pytest.raises(ValueError, match=f"{name} is a corrupt sparse matrix"):
            call()


def test_evaluate_refuses_a_bad_block_size_and_ranks_the_whole_catalogue_for_a_huge_k(synthetic):
    model = lgrec.Popularity().fit(synthetic.train)
    for block_size in (-1, 0, 2.5):
        with pytest.raises(ValueError, match="block_size"):
            lgrec.evaluate(model, synthetic.test, synthetic.train, block_size=block_size)
    n = synthetic.n_items
    deep = lgrec.evaluate(model, synthetic.test, synthetic.train, k=(n, 10**12))
    assert deep[f"recall@{10**12}"] == deep[f"recall@{n}"] and deep[f"ndcg@{10**12}"] == deep[f"ndcg@{n}"]
    assert deep[f"recall@{n}"] == pytest.approx(1.0)  # every held-out item is somewhere in a full ranking


def test_save_records_shapes_and_dtypes_and_older_formats_still_load(synthetic, tmp_path):
    model = lgrec.RLMultimodalRec(max_epochs=1, random_state=0).fit(synthetic.train, synthetic.image, synthetic.text)
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as archive:
        meta = json.loads(str(archive["__lgrec__"]))
        content = {key: archive[key] for key in archive.files}
    assert meta["format_version"] == FORMAT_VERSION == 3
    assert meta["arrays"]["memory_indices_"] == {"shape": list(model.memory_indices_.shape),
                                                 "dtype": model.memory_indices_.dtype.str}
    meta.update(format_version=2, arrays=sorted(meta["arrays"]))
    content["__lgrec__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "v2.npz", **content)
    loaded = lgrec.RLMultimodalRec.load(tmp_path / "v2.npz")
    np.testing.assert_array_equal(loaded.score_users(np.arange(9)), model.score_users(np.arange(9)))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_learned_attribute_is_declared_for_load(synthetic, tmp_path, name):
    """A new learned attribute must be declared in the class's ``_saved_state`` or load refuses the file."""
    model = MODELS[name]()
    if "max_epochs" in model.get_params():
        model.set_params(max_epochs=1, random_state=0)
    model.fit(synthetic.train, synthetic.image, synthetic.text)
    learned = {k for k in vars(model) if k.endswith("_") and not k.startswith("_")}
    assert learned <= set(type(model)._saved_state), learned - set(type(model)._saved_state)
    loaded = load_model(None, model.save(tmp_path / "m.npz"))
    for key in learned:
        value = getattr(model, key)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(loaded, key), value)
            assert getattr(loaded, key).dtype == value.dtype
        else:
            assert json.dumps(getattr(loaded, key)) == json.dumps(value)


def test_recommend_with_filter_items_does_not_build_a_users_by_filtered_items_matrix():
    rng = np.random.default_rng(0)
    n_users, n_items, blocked = 40_000, 1_200, np.arange(0, 1_200, 2)
    model = lgrec.Popularity().fit(sp.random(n_users, n_items, density=0.002, format="csr", random_state=1,
                                             dtype=np.float32))
    users = rng.permutation(n_users)
    model.recommend(users[:10], filter_already_liked_items=False, filter_items=blocked)  # warm up
    tracemalloc.start()
    ids, _ = model.recommend(users, filter_already_liked_items=False, filter_items=blocked, k=5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert not np.isin(ids, blocked).any()
    # the old (n_users, 600) exclusion CSR alone took 40,000 * 600 * 8 bytes = 192 MB
    assert peak < 64 * 2**20, peak


def test_filter_items_and_items_together_match_a_brute_force_ranking(synthetic):
    model = lgrec.Popularity().fit(synthetic.train)
    items, blocked = np.arange(5, 60), [7, 9, 11, 200 % synthetic.n_items]
    ids, scores = model.recommend(np.arange(6), synthetic.train[:6], k=8, items=items, filter_items=blocked)
    for u in range(6):
        full = model.score_users(np.array([u]))[0]
        allowed = [i for i in items if i not in blocked and not synthetic.train[u, i]]
        expected = sorted(allowed, key=lambda i: (-full[i], i))[:8]
        assert ids[u].tolist() == expected


def test_cli_checks_output_paths_and_k_before_any_work(tmp_path, capsys):
    missing = tmp_path / "nope" / "m.npz"
    (tmp_path / "dir.npz").mkdir()
    for argv, message in (
        (["fit", str(tmp_path / "no-data"), "--save", str(missing)], "--save"),
        (["fit", str(tmp_path / "no-data"), "--report", str(missing)], "--report"),
        (["fit", str(tmp_path / "no-data"), "--save", str(tmp_path / "dir.npz")], "--save"),
        (["compare", str(tmp_path / "no-data"), "--out", str(tmp_path / "f.txt")], "--out"),
    ):
        if argv[0] == "compare":
            (tmp_path / "f.txt").write_text("x")
        assert main(argv) == 2
        err = capsys.readouterr().err
        # the data folder does not exist: had the data been read first, that would be the error
        assert message in err and "no-data" not in err, err
    with pytest.raises(SystemExit):
        main(["fit", str(tmp_path), "--k", "0"])
    assert "--k" in capsys.readouterr().err


def test_cli_refuses_a_model_from_another_folder(tmp_path, capsys):
    small = lgrec.datasets.make_multimodal(n_users=30, n_items=20, interactions_per_user=4.0, random_state=0)
    other = lgrec.datasets.make_multimodal(n_users=40, n_items=25, interactions_per_user=4.0, random_state=1)
    lgrec.save_mmrec(small, tmp_path / "small")
    lgrec.save_mmrec(other, tmp_path / "other")
    path = lgrec.Popularity().fit(small.train).save(tmp_path / "m.npz")
    for command in (["recommend", path, str(tmp_path / "other"), "--users", "0"], ["evaluate", path, str(tmp_path / "other")]):
        assert main(command) == 2
        assert "use the folder it was fitted on" in capsys.readouterr().err


def test_load_mmrec_refuses_non_dense_ids_before_allocating(tmp_path):
    rows = "userID\titemID\tx_label\n" + "".join(f"{u}\t{u % 7}\t0\n" for u in range(100)) + "100000000\t1\t0\n"
    (tmp_path / "x.inter").write_text(rows)
    with pytest.raises(ValueError, match="x.inter: userID values are not dense ids"):
        lgrec.load_mmrec(tmp_path)


@pytest.mark.parametrize("content", [b"", b"userID\titemID\tx_label\n", bytes(range(256)) * 4])
def test_load_mmrec_names_the_file_of_empty_header_only_or_binary_inter_files(tmp_path, content):
    (tmp_path / "x.inter").write_bytes(content)
    with pytest.raises(ValueError, match="x.inter"):
        lgrec.load_mmrec(tmp_path)


def test_dataset_from_frame_names_the_column_of_mixed_ids_and_string_times():
    import pandas as pd

    with pytest.raises(TypeError, match="frame column 'user' mixes id types"):
        lgrec.Dataset.from_frame(pd.DataFrame({"user": [0, "a"] * 5, "item": range(10)}))
    with pytest.raises(TypeError, match="frame column 't' \\(time_col\\)"):
        lgrec.Dataset.from_frame(pd.DataFrame({"user": [0, 1] * 5, "item": range(10), "t": ["x"] * 10}),
                                 time_col="t", split="temporal")


_FIT_SCRIPT = """
import sys, numpy as np, lgrec
from lgrec.datasets import make_multimodal
from lgrec.models import MODELS
ds = make_multimodal(n_users=150, n_items=120, interactions_per_user=8.0, random_state=0)
for name in ("bpr", "lightgcn", "vbpr", "freedom", "rlmm"):
    m = MODELS[name](max_epochs=3, random_state=0, batch_size=256).fit(ds.train, ds.image, ds.text, valid=ds.valid)
    np.save(f"{sys.argv[1]}/{name}.npy", np.concatenate([m.user_factors_.ravel(), m.item_factors_.ravel()]))
m = MODELS["bpr"](optimizer="sgd", max_epochs=3, random_state=0).fit(ds.train, valid=ds.valid)
np.save(f"{sys.argv[1]}/bpr_sgd.npy", np.concatenate([m.user_factors_.ravel(), m.item_factors_.ravel()]))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to vary the thread counts meaningfully")
def test_fits_are_bit_identical_for_any_numba_and_blas_thread_count(tmp_path):
    """Fresh processes: 1 vs 2 Numba threads and 1 vs 2 BLAS threads give the same bits for every trainable model,
    and for BPRMF with optimizer="sgd" (``fit`` pins BLAS to one thread: :func:`lgrec.models._base.single_blas_thread`)."""
    results = {}
    for numba_threads, blas_threads in ((1, 1), (2, 1), (1, 2)):
        out = tmp_path / f"{numba_threads}-{blas_threads}"
        out.mkdir()
        env = {**os.environ, "NUMBA_NUM_THREADS": str(numba_threads), "OMP_NUM_THREADS": str(blas_threads),
               "OPENBLAS_NUM_THREADS": str(blas_threads), "MKL_NUM_THREADS": str(blas_threads)}
        subprocess.run([sys.executable, "-c", _FIT_SCRIPT, str(out)], check=True, env=env, timeout=600)
        results[out.name] = {name: np.load(out / f"{name}.npy") for name in TRAINABLE + ["bpr_sgd"]}
    for name in TRAINABLE + ["bpr_sgd"]:
        np.testing.assert_array_equal(results["1-1"][name], results["2-1"][name], err_msg=f"{name}: Numba threads")
        np.testing.assert_array_equal(results["1-1"][name], results["1-2"][name], err_msg=f"{name}: BLAS threads")
