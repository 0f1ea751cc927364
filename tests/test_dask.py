"""lgrec.dask on a two-process LocalCluster: every distributed result equals the single-process one."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe", reason="lgrec.dask needs dask[dataframe] (the lgrec[dask] extra)")
distributed = pytest.importorskip("distributed", reason="lgrec.dask's tests run a distributed.LocalCluster (lgrec[dask])")

import lgrec  # noqa: E402
import lgrec.dask as ldask  # noqa: E402
from lgrec import BPRMF, Dataset, LightGCN, RLMultimodalRec, save_mmrec  # noqa: E402
from lgrec.cli import main  # noqa: E402
from lgrec.datasets import make_powerlaw  # noqa: E402

N_USERS, N_ITEMS = 5000, 300


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=":0", memory_limit="2GiB")
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def data():
    return make_powerlaw(N_USERS, N_ITEMS, 60_000, image_dim=8, text_dim=6, random_state=0)


@pytest.fixture(scope="module")
def lightgcn(data):
    return LightGCN(embedding_size=16, max_epochs=2, batch_size=4096, random_state=0).fit(data.train)


@pytest.fixture(scope="module")
def rlmm(data):
    model = RLMultimodalRec(embedding_size=16, max_epochs=2, batch_size=4096, random_state=0)
    return model.fit(data.train, data.image, data.text)


def _as_arrays(frame: pd.DataFrame, n: int, k: int):
    return frame["item"].to_numpy().reshape(n, k), frame["score"].to_numpy().reshape(n, k)


def test_importing_lgrec_dask_imports_no_dask():
    code = "import sys, lgrec.dask; print([m for m in ('dask', 'distributed') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("which", ["lightgcn", "rlmm"])
def test_recommend_all_users_equals_single_process(client, data, which, request):
    model = request.getfixturevalue(which)
    frame = ldask.recommend(model, data.train, k=20, client=client, partition_size=1024)
    assert frame.npartitions == 5
    result = frame.compute(scheduler=client.get)
    assert list(result.columns) == ["user", "rank", "item", "score"]
    assert result.dtypes.to_dict() == {"user": np.int64, "rank": np.int32, "item": np.int64, "score": np.float32}
    ids, scores = model.recommend(np.arange(N_USERS), data.train, k=20)
    got_ids, got_scores = _as_arrays(result, N_USERS, 20)
    assert np.array_equal(got_ids, ids) and np.array_equal(got_scores, scores)
    assert np.array_equal(result["user"].to_numpy(), np.repeat(np.arange(N_USERS), 20))
    assert np.array_equal(result["rank"].to_numpy(), np.tile(np.arange(1, 21), N_USERS))


def test_recommend_some_users_with_filters(client, data, lightgcn):
    rng = np.random.default_rng(1)
    users = rng.permutation(N_USERS)[:2500]
    blocked = [0, 5, 7]
    frame = ldask.recommend(lightgcn, data.train, k=7, client=client, users=users, filter_items=blocked,
                            partition_size=1000)  # rounded up to 1,024
    assert frame.npartitions == 3
    result = frame.compute(scheduler=client.get)
    ids, scores = lightgcn.recommend(users, data.train[users], k=7, filter_items=blocked)
    got_ids, got_scores = _as_arrays(result, users.shape[0], 7)
    assert np.array_equal(result["user"].to_numpy(), np.repeat(users, 7))
    assert np.array_equal(got_ids, ids) and np.array_equal(got_scores, scores)
    unfiltered = ldask.recommend(lightgcn, k=3, client=client, users=users[:10], filter_already_liked_items=False)
    ids, scores = lightgcn.recommend(users[:10], k=3, filter_already_liked_items=False)
    got_ids, got_scores = _as_arrays(unfiltered.compute(scheduler=client.get), 10, 3)
    assert np.array_equal(got_ids, ids) and np.array_equal(got_scores, scores)


def test_recommend_original_ids_padding_and_parquet(client, tmp_path):
    # Three items only: users who have seen two of them get one recommendation at k=2 (no padding rows).
    frame = pd.DataFrame({"user": ["u1", "u1", "u2", "u3", "u3"], "item": ["c", "a", "b", "a", "b"]})
    ds = Dataset.from_frame(frame, valid_size=0.0, test_size=0.0, random_state=0)
    model = BPRMF(embedding_size=4, max_epochs=2, random_state=0).fit(ds.train)
    recs = ldask.recommend(model, k=2, client=client, dataset=ds)
    path = tmp_path / "recs.parquet"
    recs.to_parquet(path, compute_kwargs={"scheduler": client.get})
    back = pd.read_parquet(path).reset_index(drop=True)
    ids, scores = model.recommend(np.arange(3), ds.train, k=2)
    expected = [(ds.user_ids[u], r + 1, ds.item_ids[ids[u, r]], scores[u, r])
                for u in range(3) for r in range(2) if ids[u, r] >= 0]
    assert len(back) == len(expected) == 4
    assert [tuple(row) for row in back[["user", "rank", "item", "score"]].itertuples(index=False)] == expected


def test_recommend_without_a_client_uses_dasks_local_schedulers(data, lightgcn):
    frame = ldask.recommend(lightgcn, data.train, k=5, users=np.arange(2100), partition_size=1024)
    ids, scores = lightgcn.recommend(np.arange(2100), data.train[:2100], k=5)
    got_ids, got_scores = _as_arrays(frame.compute(scheduler="sync"), 2100, 5)
    assert np.array_equal(got_ids, ids) and np.array_equal(got_scores, scores)
    # Threads of one process: OpenBLAS's thread count is not reliably pinned from worker threads and
    # sgemm rounds differently on one and two threads, so scores agree to float32 rounding only.
    got_ids, got_scores = _as_arrays(frame.compute(scheduler="threads"), 2100, 5)
    np.testing.assert_allclose(got_scores, scores, rtol=1e-5, atol=1e-7)
    assert (got_ids == ids).all(axis=1).mean() > 0.99


def test_recommend_errors_name_the_argument(data, lightgcn):
    with pytest.raises(ValueError, match="filter_already_liked_items=True needs interactions"):
        ldask.recommend(lightgcn, k=5)
    with pytest.raises(ValueError, match="'partition_size' parameter of lgrec.dask.recommend"):
        ldask.recommend(lightgcn, data.train, partition_size=0)
    with pytest.raises(ValueError, match=r"interactions must have shape \(5000, 300\)"):
        ldask.recommend(lightgcn, data.train[:10])
    with pytest.raises(ValueError, match="users holds ids outside"):
        ldask.recommend(lightgcn, data.train, users=[N_USERS])
    with pytest.raises(ValueError, match="k must be a positive int"):
        ldask.recommend(lightgcn, data.train, k=0)


@pytest.mark.parametrize("which", ["lightgcn", "rlmm"])
def test_evaluate_equals_single_process(client, data, which, request):
    model = request.getfixturevalue(which)
    expected = lgrec.evaluate(model, data.test, data.train, k=(5, 20))
    got = ldask.evaluate(model, data.test, data.train, k=(5, 20), client=client, partition_size=1024)
    assert got.keys() == expected.keys() and got["n_users"] == expected["n_users"] > 2048
    for key in expected:
        if key not in ("seconds", "n_users"):
            assert abs(got[key] - expected[key]) <= 1e-12, key
            assert got[key] == expected[key], key  # same block sums added in the same order
    small_blocks = lgrec.evaluate(model, data.valid, data.train, k=10, block_size=300)
    got = ldask.evaluate(model, data.valid, data.train, k=10, client=client, block_size=300, partition_size=700)
    assert {k: v for k, v in got.items() if k != "seconds"} == {k: v for k, v in small_blocks.items() if k != "seconds"}


# ----------------------------------------------------------------------------
# Feature extraction: tiny ONNX models built as in test_features.py
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    tf = pytest.importorskip("test_features", reason="the tiny ONNX models of test_features.py need lgrec[onnx,test]")
    root = tmp_path_factory.mktemp("dask_models")
    photos = [tf.write_image(root / f"p{i}.jpg", size=(40 + 3 * (i % 9), 30 + 2 * (i % 7)), seed=i)
              for i in range(37)]
    photos[5] = root / "missing.jpg"
    words = tf.VOCAB[4:]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 9)))) for _ in range(53)]
    texts[3], texts[40] = "", None
    return {"image": tf.make_image_model(root / "image.onnx"), "text": tf.make_text_model(root / "text.onnx"),
            "tokenizer": tf.make_tokenizer(root / "tokenizer.json"), "photos": photos, "texts": texts}


def test_extract_images_equals_single_process(client, onnx_models):
    from lgrec.features import ImageEncoder

    photos = onnx_models["photos"]
    expected, failures = ImageEncoder(onnx_models["image"], batch_size=4, n_threads=1, progress=False).encode(
        photos, return_failures=True)
    client.run(ldask._ENCODERS.clear)
    got, got_failures = ldask.extract_images(photos, onnx_models["image"], client=client, partition_size=6,
                                             batch_size=4, n_threads=1, return_failures=True)  # 8 per task
    assert np.array_equal(got, expected) and got.dtype == np.float32
    assert [(f.index, f.reason) for f in got_failures] == [(f.index, f.reason) for f in failures] == [(5, "does not exist")]
    # One session per worker process, reused by its later partitions (5 partitions, 2 workers).
    assert sorted(client.run(lambda: len(ldask._ENCODERS)).values()) == [1, 1]
    out = np.lib.format.open_memmap(onnx_models["image"].parent / "out.npy", mode="w+", dtype=np.float32,
                                    shape=expected.shape)
    with pytest.warns(Warning, match=r"1 input\(s\) could not be encoded"):
        assert ldask.extract_images(photos, onnx_models["image"], client=client, out=out, batch_size=4,
                                    n_threads=1) is out
    assert np.array_equal(np.asarray(out), expected)


def test_extract_texts_equals_single_process(client, onnx_models):
    from lgrec.features import TextEncoder

    texts = onnx_models["texts"]
    settings = dict(batch_size=3, chunk_size=8, n_threads=1)
    expected = TextEncoder(onnx_models["text"], onnx_models["tokenizer"], progress=False, **settings).encode(
        texts, return_failures=True)
    got = ldask.extract_texts(texts, onnx_models["text"], tokenizer_path=onnx_models["tokenizer"], client=client,
                              partition_size=10, return_failures=True, **settings)  # rounded up to 16
    assert np.array_equal(got[0], expected[0])
    assert [f.index for f in got[1]] == [f.index for f in expected[1]] == [3, 40]
    with pytest.raises(ValueError, match="tokenizer_path is required"):
        ldask.extract_texts(texts, onnx_models["text"], tokenizer_path=None, client=client)
    with pytest.raises(TypeError, match="unexpected keyword argument 'speed'"):
        ldask.extract_texts(texts, onnx_models["text"], tokenizer_path=onnx_models["tokenizer"], speed=2)


# ----------------------------------------------------------------------------
# The command line and a worker killed in the middle of a job
# ----------------------------------------------------------------------------


def test_cli_recommend_all_users_to_parquet(client, data, lightgcn, tmp_path, capsys):
    folder, model_path, out = tmp_path / "data", tmp_path / "m.npz", tmp_path / "recs.parquet"
    save_mmrec(data, folder)
    lightgcn.save(model_path)
    address = client.scheduler.address
    assert main(["recommend", str(model_path), str(folder), "--all", "--k", "4", "--scheduler", address,
                 "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    back = pd.read_parquet(out).reset_index(drop=True)
    ids, scores = lightgcn.recommend(np.arange(N_USERS), data.train, k=4)
    got_ids, got_scores = _as_arrays(back, N_USERS, 4)
    assert np.array_equal(got_ids, ids) and np.array_equal(got_scores, scores)
    assert main(["recommend", str(model_path), "--users", "0,1", "--scheduler", address]) == 2
    assert "--scheduler needs --out" in capsys.readouterr().err
    local = tmp_path / "two.parquet"  # --out alone: Dask's synchronous scheduler in this process
    assert main(["recommend", str(model_path), str(folder), "--users", "7,3", "--k", "4", "--out", str(local)]) == 0
    back = pd.read_parquet(local).reset_index(drop=True)
    assert back["user"].tolist() == [7] * 4 + [3] * 4
    ids, scores = lightgcn.recommend([7, 3], data.train[[7, 3]], k=4)
    assert np.array_equal(back["item"].to_numpy().reshape(2, 4), ids)
    assert np.array_equal(back["score"].to_numpy().reshape(2, 4), scores)


class KillsItsWorkerOnce(BPRMF):
    """Exits its worker process the first time it ranks the user ``trigger`` (a marker file remembers)."""

    def recommend(self, userid, *args, **kwargs):
        if self.trigger in np.atleast_1d(userid) and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().recommend(userid, *args, **kwargs)


def test_killed_worker_is_retried_and_nothing_is_lost(client, data, lightgcn, tmp_path):
    model = KillsItsWorkerOnce()
    model.__dict__.update({k: v for k, v in vars(lightgcn).items() if k.endswith("_")})
    model.trigger, model.marker = 3500, str(tmp_path / "killed")
    workers_before = set(client.scheduler_info()["workers"])
    result = ldask.recommend(model, data.train, k=10, client=client, partition_size=1024).compute(
        scheduler=client.get)
    assert os.path.exists(model.marker)  # the worker did die
    assert set(client.scheduler_info()["workers"]) != workers_before  # and the nanny replaced it
    assert np.array_equal(np.unique(result["user"].to_numpy(), return_counts=True)[1], np.full(N_USERS, 10))
    ids, scores = lightgcn.recommend(np.arange(N_USERS), data.train, k=10)
    got_ids, got_scores = _as_arrays(result, N_USERS, 10)
    assert np.array_equal(got_ids, ids) and np.array_equal(got_scores, scores)
