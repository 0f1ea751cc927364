"""lgrec prepare: raw files (interactions, photos, descriptions) to a dataset folder."""

import json

import numpy as np
import pandas as pd
import pytest

import lgrec
from lgrec.cli import main

from conftest import SHARED

MODELS = SHARED / "models"
needs_models = pytest.mark.skipif(not (MODELS / "efficientnet-lite0.onnx").exists(),
                                  reason=f"ONNX models not found at {MODELS}")


def _interactions(rng, n=400):
    users = [f"c{v:02d}" for v in rng.integers(0, 30, n)]
    items = [f"{v:06d}" for v in rng.integers(0, 25, n)]  # leading zeros
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    return pd.DataFrame({"who": users, "what": items, "when": days.strftime("%Y-%m-%d")})


def test_split_column_without_valid_rows_is_carved_and_ids_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frame = _interactions(rng)
    frame["fold"] = np.where(rng.random(len(frame)) < 0.8, "train", "test")
    csv = tmp_path / "ratings.csv"
    frame.to_csv(csv, index=False)
    record = lgrec.prepare(csv, user="who", item="what", split="fold", valid_size=0.2, seed=3,
                           out=tmp_path / "shop", verbose=False)
    data = lgrec.load_mmrec(tmp_path / "shop")
    assert data.valid.nnz > 0 and record["summary"]["valid"] == data.valid.nnz
    pairs = frame.drop_duplicates(["who", "what"])
    assert data.train.nnz + data.valid.nnz + data.test.nnz == len(pairs)
    assert sorted(data.item_ids) == sorted(set(frame["what"])) and all(len(i) == 6 for i in data.item_ids)
    test_pairs = {(u, i) for u, i in zip(pairs["who"], pairs["what"])
                  if frame.loc[(frame.who == u) & (frame.what == i), "fold"].iloc[0] == "test"}
    coo = data.test.tocoo()
    assert {(data.user_ids[r], data.item_ids[c]) for r, c in zip(coo.row, coo.col)} == test_pairs
    again = lgrec.prepare(csv, user="who", item="what", split="fold", valid_size=0.2, seed=3,
                          out=tmp_path / "again", verbose=False)
    assert {**again["summary"], "name": "shop"} == record["summary"]
    assert (lgrec.load_mmrec(tmp_path / "again").valid != data.valid).nnz == 0


def test_integer_ids_are_numbered_numerically_and_errors(tmp_path):
    frame = pd.DataFrame({"u": ["10", "2", "2", "10"], "i": ["7", "30", "7", "100"]})
    lgrec.prepare(frame, user="u", item="i", valid_size=0.0, test_size=0.0, out=tmp_path / "n", verbose=False)
    data = lgrec.load_mmrec(tmp_path / "n")
    assert data.user_ids.tolist() == ["2", "10"] and data.item_ids.tolist() == ["7", "30", "100"]
    with pytest.raises(ValueError, match="interactions has no column"):
        lgrec.prepare(frame, user="user", item="i", out=tmp_path / "x", verbose=False)
    frame.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ValueError, match=r"r.csv has no column\(s\) \['user'\]; its columns are \['u', 'i'\]"):
        lgrec.prepare(tmp_path / "r.csv", user="user", item="i", out=tmp_path / "x", verbose=False)
    with pytest.raises(ValueError, match="split column 'u' must hold train/valid/test"):
        lgrec.prepare(frame, user="u", item="i", split="u", out=tmp_path / "x", verbose=False)
    with pytest.raises(ValueError, match=r"format string with the field \{item\}"):
        lgrec.prepare(frame, user="u", item="i", images="p/{id}.jpg", models=MODELS, out=tmp_path / "x",
                      verbose=False)


@needs_models
def test_photos_and_texts_missing_cases_are_counted_not_fatal(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(1)
    frame = _interactions(rng)
    source = tmp_path / ("ratings.parquet" if _has_parquet() else "ratings.csv")
    if _has_parquet():
        frame.to_parquet(source)
    else:
        frame.to_csv(source, index=False)
    items = sorted(set(frame["what"]))
    photos = tmp_path / "photos"
    for n, item in enumerate(items):
        folder = photos / item[:3]
        folder.mkdir(parents=True, exist_ok=True)
        if n % 5 == 0:
            continue  # no photo
        if n == 1:
            (folder / f"{item}.jpg").write_bytes(b"not a jpeg")  # undecodable
            continue
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"{item}.jpg")
    texts = pd.DataFrame({"what": items[:-3], "name": [f"Thing {i}" for i in items[:-3]],
                          "desc": ["" if n == 2 else f"a thing number {n}" for n in range(len(items) - 3)]})
    texts.loc[2, "name"] = ""  # item 2: empty text in every column
    texts.to_csv(tmp_path / "items.csv", index=False)
    code = main(["prepare", str(source), "--user", "who", "--item", "what", "--time", "when", "--split", "temporal",
                 "--images", str(photos) + "/{item:.3}/{item}.jpg", "--texts", str(tmp_path / "items.csv"),
                 "--text-col", "name", "--text-col", "desc", "--title-col", "name", "--models", str(MODELS),
                 "--threads", "1", "--quiet", "--out", str(tmp_path / "shop")])
    assert code == 0
    err = capsys.readouterr().err
    record = json.loads((tmp_path / "shop" / "prepare_record.json").read_text())
    data = lgrec.load_mmrec(tmp_path / "shop")
    n_missing = sum(1 for n, item in enumerate(items) if n % 5 == 0 and item in set(data.item_ids))
    assert record["images"]["missing"] == n_missing and record["images"]["undecodable"] == 1
    assert record["images"]["undecodable_list"][0]["item"] == items[1]
    assert record["texts"]["no_row"] == 3 and record["texts"]["empty"] == 1
    assert f"{n_missing} missing (no file), 1 undecodable" in err
    summary = data.summary()
    assert summary["items_without_image"] == n_missing + 1
    assert summary["items_without_text"] == 4
    info = data.item_info
    assert info["item_id"].tolist() == list(data.item_ids)
    photo_rows = info["has_image"] == 1
    assert info.loc[photo_rows, "image_path"].map(lambda p: p.endswith(".jpg")).all()
    assert (np.any(data.image != 0, axis=1) == photo_rows.to_numpy()).all()
    assert info.loc[info["item_id"] == items[0], "title"].iloc[0] == f"Thing {items[0]}"


def _has_parquet() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def test_carved_valid_split_is_tools_prepare_ml1m_rule():
    """The carve-out of lgrec.prepare equals tools/prepare_ml1m.valid_labels (same keys, same ranks)."""
    import importlib.util
    from pathlib import Path

    from lgrec.prepare import _carve_valid

    path = Path(__file__).resolve().parents[1] / "tools" / "prepare_ml1m.py"
    spec = importlib.util.spec_from_file_location("prepare_ml1m_for_carve", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rng = np.random.default_rng(5)
    pairs = np.unique(np.column_stack([rng.integers(0, 40, 900), rng.integers(0, 60, 900)]), axis=0)
    shuffled = rng.permutation(pairs.shape[0])  # lgrec's input order does not matter
    users, items = pairs[shuffled, 0], pairs[shuffled, 1]
    labels = np.where(rng.random(users.size) < 0.2, 2, 0).astype(np.int8)
    ours = _carve_valid(users, items, labels, 0.1, seed=7)
    order = np.lexsort((items, users))
    train = order[labels[order] == 0]
    expected = labels.copy()
    expected[train[tool.valid_labels(users[train], items[train], fraction=0.1, seed=7)]] = 1
    assert (ours == 1).sum() > 10
    np.testing.assert_array_equal(ours, expected)
