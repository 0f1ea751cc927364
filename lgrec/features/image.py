"""Image features: preprocessing (resize, centre crop, pixel normalisation) and :class:`ImageEncoder`."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ._common import MissingInput, _check_names, _import_optional, _OnnxEncoder, _present_inputs, sha256_file

__all__ = [
    "ImageEncoder",
    "center_crop_box",
    "load_image_crop",
    "normalize_pixels",
    "preprocess_image",
    "resized_size",
]


def _as_float32_channels(value, argument):
    """A scalar or 3 per-channel values as a float32 array of shape (3, 1, 1)."""
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3:
        raise ValueError(f"{argument} must be a number or 3 per-channel numbers (R, G, B); got {value!r}")
    return arr.reshape(3, 1, 1)





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


class ImageEncoder(_OnnxEncoder):
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
        Draw a progress bar (tqdm) on stderr, only when stderr is a terminal
        and the run lasts over a second.

    Notes
    -----
    The ONNX session is opened on first use and kept for later calls.

    An image that is None, NaN (pandas' missing value) or a blank path is
    missing: its row stays all-zero and it is reported like a file that does
    not exist.

    Examples
    --------
    >>> enc = ImageEncoder("efficientnet-lite0.onnx")          # doctest: +SKIP
    >>> feats, missing = enc.encode(paths, return_failures=True)  # doctest: +SKIP
    >>> feats.shape, feats.dtype                               # doctest: +SKIP
    ((4116, 1280), dtype('float32'))
    """

    _argument = "images"
    _positive_ints = ("resize", "crop", "batch_size")

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

    @property
    def model_path(self):
        """The ONNX file used (``onnx_path``)."""
        return Path(self.onnx_path)

    def _validate(self):
        super()._validate()
        if self.crop > self.resize:
            raise ValueError(f"crop must be <= resize; got crop={self.crop} and resize={self.resize}")
        _as_float32_channels(self.mean, "mean")
        _as_float32_channels(self.scale, "scale")
        _resample_filter(self.resample)

    def _check_session(self, session):
        _check_names(session, "input", [self.input_name], self.model_path)

    def _probe_dim(self):
        return self._run(np.zeros((1, 3, self.crop, self.crop), dtype=np.float32)).shape[1]

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
        """Features of a batch of model inputs: (b, d) float32, normalised when ``normalize``."""
        (features,) = self.session.run([self.output_name], {self.input_name: pixel_values})
        return self._checked_output(features, pixel_values.shape[0])

    def _load_batch(self, images, start, buffer):
        """Decode and preprocess images[start:start+len(buffer)] into ``buffer``.

        Returns the positions that decoded, their count, and the failures.
        """
        stop = min(start + len(buffer), len(images))
        pixels = np.empty((stop - start, self.crop, self.crop, 3), dtype=np.uint8)
        decode_errors = _decode_errors()
        image_module = _import_optional("PIL.Image", "Image preprocessing")
        present, failures = _present_inputs(
            images, start, stop, "images", (str, os.PathLike, image_module.Image), "a path, a PIL.Image.Image"
        )
        ok = []
        for index in present:
            item = images[index]
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

    def _encode_into(self, images, out, bar):
        """Encode every image into its row of ``out``; return the missing ones."""
        failures = []
        if not images:
            return failures
        with ThreadPoolExecutor(max_workers=1) as pool:
            for start, buffer, ok, batch_failures in self._loaded_batches(images, pool):
                stop = min(start + int(self.batch_size), len(images))
                out[start:stop] = 0.0
                if len(ok):
                    out[ok] = self._run(buffer[: len(ok)])
                failures.extend(batch_failures)
                bar.update(stop - start)
        return failures

    def encode(self, images, *, out=None, return_failures=False):
        """Encode images into an (n, d) float32 feature matrix.

        Parameters
        ----------
        images : sequence of (str, os.PathLike, PIL.Image.Image, None or NaN)
            Image files (or opened images), one per output row. None, NaN and
            blank paths are missing images.
        out : ndarray of shape (n, d), float32, optional
            Where to write the features (e.g. a ``np.lib.format.open_memmap``);
            every row is written, missing ones with zeros.
        return_failures : bool, default False
            Also return the list of inputs that are missing or could not be
            decoded. Otherwise a :class:`MissingModalityWarning` reports them.

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
        return self._encode_rows(images, out, return_failures)
