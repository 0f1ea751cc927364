"""The lgrec command line, end to end on a small generated dataset folder."""

import json

import numpy as np
import pandas as pd
import pytest

from lgrec import BPRMF, Dataset, load_mmrec, save_mmrec
from lgrec.cli import main
from lgrec.datasets import make_multimodal


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    save_mmrec(make_multimodal(n_users=120, n_items=90, interactions_per_user=8.0, random_state=1), folder)
    return folder


def test_fit_evaluate_recommend(data_dir, tmp_path, capsys):
    model_path, report_path = tmp_path / "m.npz", tmp_path / "r.json"
    code = main(["fit", str(data_dir), "--model", "lightgcn", "--set", "max_epochs=4", "--set", "batch_size=128",
                 "--save", str(model_path), "--report", str(report_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test  recall@10" in out and "cold  recall@20" in out
    report = json.loads(report_path.read_text())
    assert report["model"] == "LightGCN" and len(report["history"]) == 4
    assert report["params"]["max_epochs"] == 4 and "recall@20" in report["test"]

    assert main(["evaluate", str(model_path), str(data_dir), "--k", "10,20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["K", "recall", "ndcg", "precision", "map"] and lines[2].startswith("  20")
    assert abs(float(lines[2].split()[1]) - report["test"]["recall@20"]) < 1e-4

    assert main(["recommend", str(model_path), str(data_dir), "--users", "0,3", "--k", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["user"] for r in rows] == ["0", "3"] and all(len(r["items"]) == 5 for r in rows)


def test_errors_are_reported_with_exit_code_2(data_dir, tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["fit", str(data_dir), "--set", "learning_rate=-1", "--quiet"]) == 2
    assert "The 'learning_rate' parameter of LightGCN must be" in capsys.readouterr().err
    assert main(["fit", str(data_dir), "--set", "speed=3", "--quiet"]) == 2
    assert "Invalid parameter 'speed'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--models", "bpr,nonsense"])
    assert "unknown model(s) ['nonsense']" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("fit", "evaluate", "recommend", "demo", "extract-images", "extract-text"):
        assert command in text


def test_fit_rlmm_reports_the_gate(data_dir, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    assert main(["fit", str(data_dir), "--model", "rlmm", "--set", "max_epochs=2", "--set", "batch_size=128",
                 "--report", str(report_path), "--quiet"]) == 0
    assert "gate  image share of the content" in capsys.readouterr().out
    gate = json.loads(report_path.read_text())["gate"]
    assert gate["items_with_features"] > 0 and 0 <= gate["mean"] <= 1


@pytest.fixture(scope="module")
def string_id_folder(tmp_path_factory):
    """A folder with original string ids (leading zeros) and an item title column, and a model fitted on it."""
    rng = np.random.default_rng(0)
    users = [f"u{n:03d}" for n in rng.integers(0, 40, 600)]
    items = [f"{n:05d}" for n in rng.integers(0, 50, 600)]
    frame = pd.DataFrame({"customer": users, "article": items})
    data = Dataset.from_frame(frame, "customer", "article", random_state=0, name="shop")
    info = pd.DataFrame({"itemID": np.arange(data.n_items), "title": [f"thing {i}" for i in data.item_ids]})
    folder = tmp_path_factory.mktemp("strings")
    save_mmrec(Dataset(data.train, data.valid, data.test, name="shop", user_ids=data.user_ids,
                       item_ids=data.item_ids, item_info=info), folder)
    model_path = folder / "m.npz"
    assert main(["fit", str(folder), "--model", "bpr", "--set", "max_epochs=2", "--save", str(model_path),
                 "--quiet"]) == 0
    return folder, model_path


def test_recommend_takes_and_prints_original_ids(string_id_folder, capsys):
    folder, model_path = string_id_folder
    capsys.readouterr()
    assert main(["recommend", str(model_path), str(folder), "--users", "u003,u017", "--k", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["user"] for r in rows] == ["u003", "u017"]
    data = load_mmrec(folder)
    model = BPRMF.load(model_path)
    users = data.user_index(["u003", "u017"])
    ids, _ = model.recommend(users, data.train[users], k=4)
    assert rows[0]["items"] == [str(v) for v in data.original_item_ids(ids[0])]
    assert all(len(item) == 5 and item.isdigit() for r in rows for item in r["items"])  # leading zeros kept
    assert rows[0]["titles"] == [f"thing {v}" for v in rows[0]["items"]]

    assert main(["recommend", str(model_path), str(folder), "--users", "u003", "--k", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("user u003:") and f"  1. {rows[0]['items'][0]}" in text and "thing" in text


def test_recommend_a_new_user_from_original_item_ids(string_id_folder, capsys):
    folder, model_path = string_id_folder
    capsys.readouterr()
    data = load_mmrec(folder)
    history = [str(v) for v in data.item_ids[[1, 4, 7]]]
    assert main(["recommend", str(model_path), str(folder), "--items", ",".join(history), "--k", "5", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    expected, _ = BPRMF.load(model_path).recommend_new([1, 4, 7], k=5)
    assert row["items"] == [str(v) for v in data.original_item_ids(expected)]
    assert not set(history) & set(row["items"])


def test_recommend_all_to_csv_and_unknown_ids(string_id_folder, tmp_path, capsys):
    folder, model_path = string_id_folder
    out = tmp_path / "recs.csv"
    assert main(["recommend", str(model_path), str(folder), "--all", "--k", "3", "--out", str(out)]) == 0
    frame = pd.read_csv(out, dtype={"user": str, "item": str})
    data = load_mmrec(folder)
    assert list(frame.columns) == ["user", "rank", "item", "score", "title"]
    assert set(frame["user"]) == set(data.user_ids) and frame["item"].str.len().eq(5).all()
    assert main(["recommend", str(model_path), str(folder), "--users", "u003,nobody"]) == 2
    err = capsys.readouterr().err
    assert "1 unknown user id(s)" in err and "'nobody'" in err
    assert main(["recommend", str(model_path), str(folder), "--items", "99999"]) == 2
    assert "unknown item id(s)" in capsys.readouterr().err
