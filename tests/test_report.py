"""lgrec report: one static HTML file with the items' photos, checked in a real (headless) browser."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

import lgrec
from lgrec.cli import main
from lgrec.datasets import make_multimodal

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A dataset folder whose items have photos (one unreadable, some missing), titles and original ids."""
    from PIL import Image

    root = tmp_path_factory.mktemp("report")
    data = make_multimodal(n_users=60, n_items=40, interactions_per_user=6.0, random_state=2)
    rng = np.random.default_rng(0)
    paths = []
    for item in range(data.n_items):
        path = root / "photos" / f"{item:04d}.jpg"
        path.parent.mkdir(exist_ok=True)
        if item % 4 == 3:
            paths.append("")  # no photo
            continue
        if item == 1:
            path.write_bytes(b"broken")
        else:
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    info = pd.DataFrame({"itemID": np.arange(data.n_items), "title": [f"Item <{i}> & co" for i in range(data.n_items)],
                         "image_path": paths})
    dataset = lgrec.Dataset(data.train, data.valid, data.test, data.image, data.text, name="shop",
                            user_ids=np.array([f"user-{u:03d}" for u in range(data.n_users)], dtype=object),
                            item_ids=np.array([f"{i:04d}" for i in range(data.n_items)], dtype=object),
                            item_info=info)
    lgrec.save_mmrec(dataset, root / "data")
    model = lgrec.RLMultimodalRec(max_epochs=3, batch_size=128, random_state=0)
    model.fit(dataset.train, dataset.image, dataset.text, valid=dataset.valid)
    model.save(root / "m.npz")
    return root


def _images(text):
    return re.findall(r'<img src="([^"]*)"', text)


def test_report_is_self_contained_with_escaped_titles(folder, capsys):
    out = folder / "report.html"
    assert main(["report", str(folder / "m.npz"), str(folder / "data"), "--out", str(out), "--users", "3"]) == 0
    assert "photo files unreadable" in capsys.readouterr().err  # item 1's file is not a JPEG
    text = out.read_text()
    sources = _images(text)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    for source in sources:
        assert base64.b64decode(source.split(",", 1)[1])[:2] == b"\xff\xd8"  # JPEG bytes
    assert "<script" not in text.lower() and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Item &lt;5&gt; &amp; co" in text and "<svg" in text and "validation curve" in text
    assert text.count("<h2>User user-") == 3 and "no photo" in text
    again = folder / "again.html"
    main(["report", str(folder / "m.npz"), str(folder / "data"), "--out", str(again), "--users", "3"])
    assert again.read_text() == text  # seeded


def test_explanations_are_shown_when_the_model_has_explain(folder):
    from lgrec.report import write_report

    model = lgrec.RLMultimodalRec.load(folder / "m.npz")
    data = lgrec.load_mmrec(folder / "data")
    calls = []

    def explain(user, item):
        calls.append((user, item))
        return {"graph": 0.25, "content": -0.125, "top_history": ["0001", "0002"]}

    model.explain = explain
    write_report(model, data, folder / "explained.html", n_users=2, k=4)
    text = (folder / "explained.html").read_text()
    assert len(calls) == 8 and "graph +0.250 · content -0.125 · top_history [0001, 0002]" in text
    assert "no <code>explain</code>" not in text


@needs_chromium
def test_every_photo_loads_in_headless_chromium(folder, tmp_path):
    out = folder / "browser.html"
    main(["report", str(folder / "m.npz"), str(folder / "data"), "--out", str(out), "--users", "4"])
    text = out.read_text()
    n_images = len(_images(text))
    # A test-only copy with a tiny script that reports, after load, how many <img> decoded.
    probe = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
             "document.body.setAttribute('data-loaded',i.filter(x=>x.complete&&x.naturalWidth>0).length);"
             "document.body.setAttribute('data-total',i.length);});</script>")
    copy = tmp_path / "probe.html"
    copy.write_text(text.replace("</body>", probe + "</body>"))
    dom = subprocess.run([CHROMIUM, *BROWSER_FLAGS, "--virtual-time-budget=5000", "--dump-dom", copy.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-loaded="(\d+)"', dom)
    total = re.search(r'data-total="(\d+)"', dom)
    assert loaded and total, dom[:500]
    assert int(total.group(1)) == n_images > 0
    assert int(loaded.group(1)) == n_images  # no broken image
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *BROWSER_FLAGS, f"--screenshot={shot}", "--window-size=1200,1600", out.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_the_probe_detects_a_broken_image(tmp_path):
    """The browser check can fail: a page with one undecodable image reports one image fewer loaded."""
    page = tmp_path / "broken.html"
    good = base64.b64encode(_tiny_png()).decode()
    page.write_text(f'<html><body><img src="data:image/png;base64,{good}"><img src="data:image/jpeg;base64,AAAA">'
                    "<script>window.addEventListener('load',()=>{const i=[...document.images];"
                    "document.body.setAttribute('data-loaded',i.filter(x=>x.complete&&x.naturalWidth>0).length);"
                    "});</script></body></html>")
    dom = subprocess.run([CHROMIUM, *BROWSER_FLAGS, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'data-loaded="1"' in dom


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_compare_html(tmp_path, capsys):
    data = make_multimodal(n_users=50, n_items=30, interactions_per_user=6.0, random_state=0)
    lgrec.save_mmrec(data, tmp_path / "d")
    assert main(["compare", str(tmp_path / "d"), "--models", "pop,rlmm", "--seeds", "1", "--set",
                 "max_epochs=2", "--quiet", "--out", str(tmp_path / "c"), "--html"]) == 0
    text = (tmp_path / "c" / "results.html").read_text()
    assert "<table>" in text and "rlmm" in text and "<svg" in text and "<script" not in text


def test_rlmm_explanations_name_history_items_by_original_id(folder):
    from lgrec.report import write_report

    model = lgrec.RLMultimodalRec.load(folder / "m.npz")
    data = lgrec.load_mmrec(folder / "data")
    write_report(model, data, folder / "rlmm.html", n_users=1, k=3)
    text = (folder / "rlmm.html").read_text()
    explanations = re.findall(r'<div class="explain">([^<]*)</div>', text)
    assert len(explanations) == 3
    assert all("score" in e and "graph" in e and "content" in e and "contributors [" in e for e in explanations)
    assert re.search(r"contributors \[\d{4} [+-]", explanations[0])  # original 4-digit item ids
