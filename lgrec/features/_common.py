"""What the image and the text encoder share: optional imports, the ONNX session,
missing inputs, the output buffer, progress and the encode loop around a model."""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

__all__ = ["MissingInput", "MissingModalityWarning", "default_n_threads", "sha256_file"]

_INSTALL_HINT = 'install the optional dependencies with: pip install "lgrec[onnx]"'
_MISSING_REASON = "is empty, None or NaN"


def _import_optional(module, purpose):
    """Import an optional dependency, or raise an ImportError that says how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the '{module}' package, which could not be imported ({exc}); "
            f"{_INSTALL_HINT}"
        ) from exc


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


def _present_inputs(items, start, stop, argument, types, expected):
    """Split ``items[start:stop]`` into the ones to encode and the missing ones.

    None, NaN (pandas' missing value) and strings that are empty after
    ``strip()`` are missing.

    Returns
    -------
    present : list of int
        Indices of the inputs to encode.
    missing : list of MissingInput

    Raises
    ------
    TypeError
        Naming the first input that is neither missing nor an instance of ``types``.
    """
    present = []
    missing = []
    for index in range(start, stop):
        item = items[index]
        if item is None or (isinstance(item, float) and np.isnan(item)):
            missing.append(MissingInput(index, "", _MISSING_REASON))
        elif isinstance(item, str) and not item.strip():
            missing.append(MissingInput(index, item, _MISSING_REASON))
        elif isinstance(item, types):
            present.append(index)
        else:
            raise TypeError(f"{argument}[{index}] must be {expected}, None or NaN; got {type(item).__name__}")
    return present, missing


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


def _report_missing(missing, argument, return_failures, stacklevel):
    """Warn about missing inputs unless the caller asked to receive them."""
    if missing and not return_failures:
        shown = "; ".join(m.message(argument) for m in missing[:5])
        more = f"; and {len(missing) - 5} more" if len(missing) > 5 else ""
        warnings.warn(
            f"{len(missing)} input(s) could not be encoded and were left as all-zero (missing) rows: {shown}{more}",
            MissingModalityWarning,
            stacklevel=stacklevel + 1,
        )


class _OnnxEncoder:
    """Base of :class:`~lgrec.features.ImageEncoder` and :class:`~lgrec.features.TextEncoder`.

    It owns what both do around the model: the lazily opened session, the
    feature dimension, the output rows, the progress bar, the L2
    normalisation of the model's output and the report of missing inputs. A
    subclass sets ``_argument`` (the name of ``encode``'s sequence, in
    messages) and ``_positive_ints`` (the parameters that must be ints >= 1)
    and implements ``model_path``, ``_check_session(session)``,
    ``_probe_dim()`` and ``_encode_into(items, out, bar)``.
    """

    _argument = "inputs"
    _positive_ints = ("batch_size",)

    def _validate(self):
        for name in self._positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")

    def _check_session(self, session):
        """Check a newly opened session's inputs beyond ``output_name`` (and remember how to feed it)."""

    @property
    def session(self):
        """The onnxruntime ``InferenceSession`` (opened on first access)."""
        if self._session is None:
            self._validate()
            n_threads = default_n_threads() if self.n_threads is None else self.n_threads
            session = _make_session(self.model_path, n_threads)
            self._check_session(session)
            _check_names(session, "output", [self.output_name], self.model_path)
            self._session = session
        return self._session

    @property
    def dim(self):
        """Feature dimension d (read from the model, or from one run on a blank input)."""
        dim = _static_last_dim(self.session, self.output_name)
        if dim is None:
            dim = self._probe_dim()
        return int(dim)

    def _checked_output(self, features, n):
        """The model's (n, d) output as float32, L2-normalised per row when ``normalize``.

        Raises a ValueError naming the output when its shape is not (n, d) or
        when it holds NaN or inf (a broken model or input, never a missing one).
        """
        features = np.asarray(features, dtype=np.float32)
        where = f"output {self.output_name!r} of {str(self.model_path)!r}"
        if features.ndim != 2 or features.shape[0] != n:
            raise ValueError(f"{where} must have shape ({n}, d); got {features.shape}")
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        if bad.size:
            raise ValueError(f"{where} must be finite; got NaN or inf in {bad.size} of the {n} rows of a batch")
        if self.normalize:
            # lazily: importing scikit-learn sets KMP_* variables (and takes ~0.8 s)
            from sklearn.preprocessing import normalize

            features = normalize(features, copy=False)
        return features

    def _encode_rows(self, items, out, return_failures):
        """Encode every item into ``out`` (new when None); report or return the missing ones."""
        items = list(items)
        out = _prepare_out(out, len(items), self.dim)
        with tqdm(total=len(items), desc=self._argument, unit="item", leave=False, delay=1.0,
                  disable=None if self.progress else True) as bar:
            failures = sorted(self._encode_into(items, out, bar), key=lambda missing: missing.index)
        _report_missing(failures, self._argument, return_failures, stacklevel=3)
        return (out, failures) if return_failures else out
