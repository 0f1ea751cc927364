"""The lgrec command line, end to end on a small generated dataset folder."""

import json

import numpy as np
import pytest

from lgrec import save_mmrec
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
    assert [r["user"] for r in rows] == [0, 3] and all(len(r["items"]) == 5 for r in rows)


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
