"""Fuzz suite (issue 14): malformed inputs get lgrec's own error naming the argument or file.

Hypothesis draws malformed interactions, features, ids, MMRec folders and tampered model
files; every draw must either be refused with a ValueError / TypeError (or an lgrec error)
whose message names the argument or the file, or (where the input is valid after all, e.g. a
flipped byte in an unchecked zip field) behave exactly like the untampered input. The default
profile keeps the whole file under a minute; ``pytest tests/test_fuzz.py --hypothesis-profile=fuzz``
runs many more examples.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lgrec
import lgrec.datasets
from lgrec import DataWarning, ModelFitError
from lgrec._validation import check_features, check_interactions
from lgrec.persistence import load_model

CLEAR = (ValueError, TypeError, ModelFitError)
N_USERS, N_ITEMS = 30, 20


def _refused_naming(call, *names):
    """Run ``call``; it must raise a clear error whose message contains one of ``names``."""
    with pytest.raises(CLEAR) as info:
        call()
    message = str(info.value)
    assert any(name in message for name in names), message
    return message


@pytest.fixture(scope="module")
def data():
    return lgrec.datasets.make_multimodal(n_users=N_USERS, n_items=N_ITEMS, interactions_per_user=5.0, random_state=0)


@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    """A small fitted model of each estimator, saved once."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in lgrec.models.MODELS.items():
            model = cls()
            if "max_epochs" in model.get_params():
                model.set_params(max_epochs=2, random_state=0)
            model.fit(data.train, data.image, data.text)
            out[name] = (model, model.save(folder / f"{name}.npz"))
    return out


# ---------------------------------------------------------------- interactions

def _corrupt_csr(draw) -> sp.csr_matrix:
    """A CSR matrix whose internals break one invariant (as a corrupt file or a buggy caller would)."""
    n_rows, n_cols = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    matrix = sp.random(n_rows, n_cols, density=0.5, format="csr", dtype=np.float32, random_state=draw(st.integers(0, 99)))
    matrix.data[:] = 1.0
    indptr, indices = matrix.indptr.copy(), matrix.indices.copy()
    kind = draw(st.sampled_from(["index_high", "index_negative", "indptr_decreasing", "indptr_start", "indptr_end",
                                 "indptr_length", "data_length"]))
    if kind in ("index_high", "index_negative", "indptr_decreasing", "data_length"):
        assume(indices.size >= 1)
    if kind == "index_high":
        indices[draw(st.integers(0, indices.size - 1))] = draw(st.integers(n_cols, 2**31 - 1))
    elif kind == "index_negative":
        indices[draw(st.integers(0, indices.size - 1))] = draw(st.integers(-(2**31), -1))
    elif kind == "indptr_decreasing":
        assume(n_rows >= 2)
        indptr[1] = indptr[-1] + 1 if indptr[1] <= indptr[-1] else indptr[1]
        indptr[2] = 0 if n_rows >= 2 else indptr[2]
    elif kind == "indptr_start":
        indptr = indptr + draw(st.integers(1, 5))
    elif kind == "indptr_end":
        indptr[-1] += draw(st.integers(1, 5))
    elif kind == "indptr_length":
        indptr = np.concatenate([indptr, indptr[-1:]])
    bad = sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    bad.indptr, bad.indices = indptr.astype(np.int32), indices.astype(np.int32)
    bad.data = np.ones(indices.size + (draw(st.integers(1, 3)) if kind == "data_length" else 0), np.float32)
    return bad


@st.composite
def bad_interactions(draw):
    kind = draw(st.sampled_from(["type", "object", "strings", "ragged", "nonfinite", "negative", "complex", "corrupt",
                                 "ndim", "empty_shape"]))
    if kind == "type":
        return draw(st.sampled_from([None, "train.inter", 3, {"a": 1}, [(0, 1)], b"x"]))
    if kind == "object":
        return np.array([[1, "a"], [None, 2.0]], dtype=object)
    if kind == "strings":
        return np.array([["1", "0"], ["0", "1"]])
    if kind == "ragged":
        return [[1, 0, 1], [1]]
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    if kind in ("nonfinite", "negative", "complex"):
        dense = np.ones(shape)
        value = {"nonfinite": draw(st.sampled_from([np.nan, np.inf, -np.inf])),
                 "negative": -draw(st.floats(1e-3, 1e30)), "complex": 1 + 1j}[kind]
        dense = dense.astype(complex) if kind == "complex" else dense
        dense[draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1))] = value
        return sp.csr_matrix(dense) if draw(st.booleans()) else dense
    if kind == "ndim":
        return np.ones(draw(st.sampled_from([(3,), (2, 2, 2)])))
    if kind == "empty_shape":
        return sp.csr_matrix((0, 3)) if draw(st.booleans()) else sp.csr_matrix((3, 0))
    return _corrupt_csr(draw)


@given(matrix=bad_interactions())
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
def test_malformed_interactions_are_refused_naming_the_argument(matrix):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        _refused_naming(lambda: check_interactions(matrix, "interactions"), "interactions")
        _refused_naming(lambda: lgrec.Popularity().fit(matrix), "interactions")


@given(cols=st.integers(10**9, 2**31 - 1))
def test_huge_shapes_are_refused_before_allocating(cols):
    huge = sp.csr_matrix((np.ones(1, np.float32), np.array([cols - 1], np.int32), np.array([0, 1], np.int32)),
                         shape=(1, cols))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        message = _refused_naming(lambda: lgrec.BPRMF(embedding_size=64).fit(huge), "interactions")
    assert "GiB" in message


# ---------------------------------------------------------------- features

@st.composite
def bad_features(draw):
    kind = draw(st.sampled_from(["rows", "nonfinite", "complex", "strings", "ragged", "one_d", "sparse", "zero_cols",
                                 "object", "beyond_float32"]))
    d = draw(st.integers(1, 4))
    if kind == "rows":
        return np.ones((N_ITEMS + draw(st.sampled_from([-3, -1, 1, 7])), d), np.float32)
    if kind == "nonfinite":
        x = np.ones((N_ITEMS, d))
        x[draw(st.integers(0, N_ITEMS - 1)), draw(st.integers(0, d - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return x.astype(draw(st.sampled_from([np.float16, np.float32, np.float64])))
    if kind == "complex":
        return np.ones((N_ITEMS, d), np.complex64)
    if kind == "strings":
        return np.full((N_ITEMS, d), "x")
    if kind == "ragged":
        return [[1.0] * d] * (N_ITEMS - 1) + [[1.0] * (d + 1)]
    if kind == "one_d":
        return np.ones(N_ITEMS, np.float32)
    if kind == "sparse":
        return sp.csr_matrix(np.ones((N_ITEMS, d)))
    if kind == "zero_cols":
        return np.ones((N_ITEMS, 0), np.float32)
    if kind == "object":
        return np.ones((N_ITEMS, d)).astype(object)
    return np.full((N_ITEMS, d), draw(st.sampled_from([1e39, -1e300, 3.5e38])))


@given(feats=bad_features(), name=st.sampled_from(["img_feats", "txt_feats"]))
def test_malformed_features_are_refused_naming_the_argument(data, feats, name):
    _refused_naming(lambda: check_features(feats, name, N_ITEMS), name)
    other = data.text if name == "img_feats" else data.image
    args = (feats, other) if name == "img_feats" else (other, feats)
    _refused_naming(lambda: lgrec.ContentKNN().fit(data.train, *args), name)


@given(scale=st.sampled_from([1e-30, 1e-8, 1e8, 1e20, 1e30]), dtype=st.sampled_from([np.float32, np.float64]))
def test_feature_scale_does_not_change_content_models(data, scale, dtype):
    base = lgrec.ContentKNN().fit(data.train, data.image, data.text)
    scaled = lgrec.ContentKNN().fit(data.train, (data.image * scale).astype(dtype), (data.text * scale).astype(dtype))
    np.testing.assert_allclose(scaled.item_factors_, base.item_factors_, atol=1e-5)


def test_all_zero_and_int8_features(data):
    with pytest.warns(DataWarning, match="img_feats is all zeros"):
        lgrec.ContentKNN().fit(data.train, np.zeros_like(data.image), data.text)
    model = lgrec.ContentKNN().fit(data.train, (data.image * 10).astype(np.int8), None)
    assert model.item_factors_.dtype == np.float32


# ---------------------------------------------------------------- ids

bad_scalar_ids = st.one_of(
    st.integers(N_USERS, 2**62), st.integers(-(2**62), -1), st.floats(allow_nan=True), st.text(max_size=3),
    st.none(), st.just([[0, 1], [1, 0]]),
)


@given(userid=bad_scalar_ids)
def test_bad_user_ids_are_refused_naming_the_argument(models, data, userid):
    model = models["bpr"][0]
    _refused_naming(lambda: model.recommend(userid, data.train[:1], filter_already_liked_items=False), "userid")
    _refused_naming(lambda: model.score_users(userid), "user_ids")


bad_item_ids = st.one_of(
    st.lists(st.integers(N_ITEMS, 2**62), min_size=1, max_size=3), st.lists(st.integers(-(2**62), -1), min_size=1, max_size=3),
    st.lists(st.floats(allow_nan=True), min_size=1, max_size=3), st.text(min_size=1, max_size=3), st.just([[0, 1], [2]]),
)


@given(ids=bad_item_ids, argument=st.sampled_from(["filter_items", "items"]))
def test_bad_item_ids_are_refused_naming_the_argument(models, data, ids, argument):
    model = models["rlmm"][0]
    _refused_naming(lambda: model.recommend(0, data.train[0], **{argument: ids}), argument)


@given(k=st.one_of(st.integers(-(2**40), 0), st.integers(N_ITEMS + 1, 2**62), st.floats(), st.text(max_size=2),
                   st.booleans()))
def test_bad_k_is_refused_before_allocating(models, data, k):
    _refused_naming(lambda: models["bpr"][0].recommend(np.arange(N_USERS), data.train, k=k), "k")


@given(block_size=st.one_of(st.integers(-(2**40), 0), st.floats(), st.text(max_size=2)))
def test_bad_block_size_is_refused(models, data, block_size):
    _refused_naming(lambda: lgrec.evaluate(models["bpr"][0], data.test, data.train, block_size=block_size), "block_size")


# ---------------------------------------------------------------- MMRec folders

GOOD_HEADER = "userID\titemID\tx_label\n"


@st.composite
def bad_inter_files(draw, good: str):
    kind = draw(st.sampled_from(["empty", "header_only", "binary", "truncated", "non_dense", "bad_label", "negative",
                                 "float_ids", "missing_column"]))
    if kind == "empty":
        return b""
    if kind == "header_only":
        return GOOD_HEADER.encode()
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "truncated":
        cut = draw(st.integers(1, len(good) - 1))
        return good.encode()[:cut]
    if kind == "non_dense":
        return (good + f"{draw(st.integers(10**6, 2**62))}\t1\t0\n").encode()
    if kind == "bad_label":
        return (good + f"0\t1\t{draw(st.integers(3, 99))}\n").encode()
    if kind == "negative":
        return (good + f"{-draw(st.integers(1, 99))}\t1\t0\n").encode()
    if kind == "float_ids":
        return (good + "0.5\t1\t0\n").encode()
    return b"userID\titemID\n0\t1\n"


@pytest.fixture(scope="module")
def good_inter(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    lgrec.save_mmrec(data, folder)
    return (folder / f"{data.name}.inter").read_text()


@given(st.data())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_malformed_inter_files_are_refused_naming_the_file(tmp_path, good_inter, data):
    content = data.draw(bad_inter_files(good_inter))
    folder = tmp_path / f"case{abs(hash(content)) % 10**8}"
    folder.mkdir(exist_ok=True)
    (folder / "x.inter").write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            loaded = lgrec.load_mmrec(folder)
        except CLEAR as exc:
            assert "x.inter" in str(exc), str(exc)
            return
    # only a truncation at a line boundary (or a lucky binary draw) is still a valid file
    assert loaded.n_users <= 2 * N_USERS + 1000 and loaded.train.nnz > 0


@given(content=st.one_of(st.binary(max_size=200), st.just(b"")), name=st.sampled_from(["image_feat.npy",
                                                                                         "image_item_ids.npy"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_garbage_npy_files_are_refused_naming_the_file(tmp_path, good_inter, content, name):
    folder = tmp_path / "npy"
    folder.mkdir(exist_ok=True)
    (folder / "x.inter").write_text(good_inter)
    (folder / name).write_bytes(content)
    if name == "image_item_ids.npy":
        np.save(folder / "image_feat.npy", np.ones((2, 3), np.float32))
    _refused_naming(lambda: lgrec.load_mmrec(folder), name)


def test_pairs_in_two_splits_warn(tmp_path, good_inter):
    first = next(line.split("\t") for line in good_inter.splitlines()[1:] if line.endswith("\t0"))
    (tmp_path / "x.inter").write_text(good_inter + f"{first[0]}\t{first[1]}\t2\n")
    with pytest.warns(DataWarning, match="in both train and test"):
        lgrec.load_mmrec(tmp_path)


# ---------------------------------------------------------------- model files

def _rewrite(path, out, arrays=None, drop=(), meta_edit=None, keep_records=True):
    """Copy a model file with arrays / metadata changed; by default the recorded shapes follow the change."""
    with np.load(path, allow_pickle=False) as archive:
        content = {key: archive[key] for key in archive.files}
    meta = json.loads(str(content.pop("__lgrec__")))
    content.update(arrays or {})
    for key in drop:
        content.pop(key)
        meta["arrays"].pop(key, None)
    if keep_records:
        for key, value in (arrays or {}).items():
            meta["arrays"][key] = {"shape": list(value.shape), "dtype": value.dtype.str}
    if meta_edit is not None:
        meta_edit(meta)
    with open(out, "wb") as handle:
        np.savez(handle, **content, __lgrec__=np.array(json.dumps(meta)))
    return out


def _assert_refused_or_identical(path, model):
    """A tampered file is refused naming it, or loads to exactly the original model (an unchecked zip field)."""
    try:
        loaded = load_model(None, path)
    except (ValueError, FileNotFoundError) as exc:
        assert str(path) in str(exc), str(exc)
        return
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    for key, value in vars(model).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(loaded, key), value)


@given(position=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255), name=st.sampled_from(["bpr", "rlmm"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_flipped_bytes_are_refused_or_harmless(models, tmp_path, position, mask, name):
    model, path = models[name]
    raw = bytearray(open(path, "rb").read())
    raw[int(position * len(raw))] ^= mask
    out = tmp_path / "flipped.npz"
    out.write_bytes(bytes(raw))
    _assert_refused_or_identical(out, model)


@given(fraction=st.floats(0, 1, exclude_max=True), name=st.sampled_from(["bpr", "rlmm", "freedom"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_truncated_files_are_refused(models, tmp_path, fraction, name):
    model, path = models[name]
    raw = open(path, "rb").read()
    out = tmp_path / "truncated.npz"
    out.write_bytes(raw[: int(fraction * len(raw))])
    _refused_naming(lambda: load_model(None, out), str(out))


def _tampered_corpus(models):
    """(label, model name, rewrite kwargs): every entry must be refused."""
    rlmm = models["rlmm"][0]
    n_users = rlmm.user_factors_.shape[0]
    n_items = rlmm.item_factors_.shape[0]
    nnz = rlmm.memory_indices_.shape[0]
    return [
        ("memory index out of range", "rlmm", {"arrays": {"memory_indices_": np.full(nnz, n_items, np.int32)}}),
        ("memory index 2e9", "rlmm", {"arrays": {"memory_indices_": np.full(nnz, 2 * 10**9, np.int32)}}),
        ("memory index negative", "rlmm", {"arrays": {"memory_indices_": np.full(nnz, -1, np.int32)}}),
        ("memory indptr decreasing", "rlmm", {"arrays": {"memory_indptr_": rlmm.memory_indptr_[::-1].copy()}}),
        ("memory indptr beyond nnz", "rlmm", {"arrays": {"memory_indptr_": rlmm.memory_indptr_ + 1}}),
        ("memory NaN weights", "rlmm", {"arrays": {"memory_data_": np.full(nnz, np.nan, np.float32)}}),
        ("memory data int", "rlmm", {"arrays": {"memory_indices_": rlmm.memory_indices_.astype(np.float32)}}),
        ("fewer user rows", "rlmm", {"arrays": {"user_factors_": rlmm.user_factors_[:-1].copy()}}),
        ("int8 factors", "bpr", {"arrays": {"item_factors_": np.ones((n_items, 64), np.int8)}}),
        ("complex factors", "bpr", {"arrays": {"item_factors_": np.ones((n_items, 64), np.complex64)}}),
        ("float64 factors", "bpr", {"arrays": {"item_factors_": np.ones((n_items, 64))}}),
        ("NaN factors", "lightgcn", {"arrays": {"user_factors_": np.full((n_users, 64), np.nan, np.float32)}}),
        ("embedding size lie", "lightgcn", {"arrays": {"user_embeddings_": np.ones((n_users, 8), np.float32),
                                                       "item_embeddings_": np.ones((n_items, 8), np.float32)}}),
        ("cold items out of range", "rlmm", {"arrays": {"cold_items_": np.array([n_items])}}),
        ("gate rows", "rlmm", {"arrays": {"gate_": np.ones((2, 64), np.float32)}}),
        ("projection rows", "rlmm", {"arrays": {"image_weights_": np.ones((3, 64), np.float32)}}),
        ("extra key", "bpr", {"arrays": {"evil_": np.ones(3, np.float32)}}),
        ("shadowing a property", "bpr", {"arrays": {"n_users_": np.ones(3, np.float32)}}),
        ("shadowing a method", "bpr", {"meta_edit": lambda m: m["learned"].update(recommend=1)}),
        ("dunder attribute", "bpr", {"meta_edit": lambda m: m["learned"].update(__class__="x")}),
        ("missing key", "bpr", {"drop": ["item_factors_"]}),
        ("invalid n_layers", "lightgcn", {"meta_edit": lambda m: m["params"].update(n_layers=-5)}),
        ("invalid rlmm n_layers", "rlmm", {"meta_edit": lambda m: m["params"].update(n_layers=-5)}),
        ("unknown hyperparameter", "bpr", {"meta_edit": lambda m: m["params"].update(evil=1)}),
        ("unknown class", "bpr", {"meta_edit": lambda m: m.update({"class": "Dataset"})}),
        ("abstract base class", "bpr", {"meta_edit": lambda m: m.update({"class": "Recommender"})}),
        ("future format", "bpr", {"meta_edit": lambda m: m.update(format_version=4)}),
        ("history not a list", "bpr", {"meta_edit": lambda m: m["learned"].update(history_="x")}),
        ("image_dim lie", "rlmm", {"meta_edit": lambda m: m["learned"].update(image_dim_=5)}),
        ("recorded shape lie", "bpr", {"arrays": {"user_factors_": np.ones((n_users - 1, 64), np.float32)},
                                       "keep_records": False}),
    ]


def test_tampered_model_corpus_is_refused_with_a_clear_error(models, tmp_path):
    for label, name, kwargs in _tampered_corpus(models):
        out = _rewrite(models[name][1], tmp_path / f"{label.replace(' ', '_')}.npz", **kwargs)
        with pytest.raises(ValueError, match="model file") as info:
            load_model(None, out)
        assert str(out) in str(info.value), (label, str(info.value))


def test_zip_bomb_is_refused_before_decompressing(models, tmp_path):
    path = models["bpr"][1]
    out = tmp_path / "bomb.npz"
    with np.load(path) as archive, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for key in archive.files:
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, archive[key])
            bomb.writestr(key + ".npy", buffer.getvalue())
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.zeros((2**27 // 4,), np.float32))  # 128 MiB of zeros, ~130 KB deflated
        bomb.writestr("evil_.npy", buffer.getvalue())
    with pytest.raises(ValueError, match="zip bomb"):
        load_model(None, out)


def test_pickled_entries_are_refused_and_never_unpickled(models, tmp_path):
    path = models["bpr"][1]
    out = tmp_path / "pickle.npz"
    with np.load(path) as archive:
        content = {key: archive[key] for key in archive.files}
    content["user_factors_"] = np.array([{"os.system": "echo pwned"}], dtype=object)
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in content.items():
            payload = io.BytesIO()
            np.lib.format.write_array(payload, value, allow_pickle=True)
            archive.writestr(key + ".npy", payload.getvalue())
    with pytest.raises(ValueError, match="dtype object"):
        load_model(None, out)
