"""The BPR training loop shared by every trainable model.

One epoch visits every training interaction once in a random order (as MMRec):
each (user, positive) pair gets a negative drawn uniformly from the items the
user has not interacted with (:func:`lgrec.kernels.sample_negatives`), the
triplets are cut into mini-batches, and each batch takes one Adam step on the
objective's hand-written gradients. After each epoch the loop checks that loss
and parameters are finite, evaluates the validation split (Recall@20 decides)
and stops after ``patience`` epochs without improvement, restoring the
parameters of the best epoch.

Divergence rule: the fit raises :class:`~lgrec.ModelFitError` as soon as the
loss or a parameter is NaN or inf, or an epoch's mean loss exceeds
:data:`DIVERGENCE_FACTOR` times the loss of the first batch at the initial
parameters (a BPR model starts near ``log 2``; a loss ten times higher means the
steps overshoot and do not come back; with per-triplet SGD that loss is evaluated
before the first step, since the first recorded loss already spans many steps). A last epoch whose loss is
above :data:`RISE_WARNING_FACTOR` times that initial loss without crossing the
bound may still recover, so it only warns (:class:`RuntimeWarning`) at the end
of the fit (the loss of the multimodal models may rise a few per cent in the first
epochs while the content terms grow; that is not reported). A first-batch loss
above :data:`INITIAL_LOSS_MAX` (features scaled by 1e20 in a model that projects
raw features) raises at once, advising to standardise the features. Both messages advise a lower
``learning_rate``. A training matrix where no user has a possible negative item
(every user interacted with every item, e.g. a one-item catalogue) cannot be
trained with BPR and raises :class:`~lgrec.ModelFitError` saying so.

The loop calls only the :class:`lgrec.objective.Objective` protocol and owns
the state that the objective passes from batch to batch.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ._base import DataWarning, ModelFitError
from .evaluation import evaluate
from .kernels import sample_negatives
from .optim import SGD, Adam

__all__ = ["AUTO_MIN_BATCH", "AUTO_STEPS_PER_EPOCH", "DIVERGENCE_FACTOR", "INITIAL_LOSS_MAX", "RISE_WARNING_FACTOR",
           "TrainResult", "TripletSampler", "resolve_batch_size", "train"]

VALID_METRIC = "recall@20"
_SEED_BLOCK = 4096
#: An epoch whose mean loss exceeds this many times the loss at the initial parameters has diverged.
DIVERGENCE_FACTOR = 10.0
#: A last epoch whose mean loss exceeds this many times the initial loss warns that the fit may not have converged.
RISE_WARNING_FACTOR = 2.0
#: A loss above this at the initial parameters (where BPR gives about log 2) means badly scaled inputs.
INITIAL_LOSS_MAX = 1e4

#: ``batch_size="auto"``: batches grow with the data so that an epoch takes this many optimiser steps
#: (each step propagates the whole graph, so an epoch then costs time linear in the interactions) ...
AUTO_STEPS_PER_EPOCH = 64
#: ... but never fewer triplets per step than this (MMRec's batch size).
AUTO_MIN_BATCH = 2048


def resolve_batch_size(batch_size, n_triplets: int) -> int:
    """The batch size of a training run: ``batch_size`` itself, or for ``"auto"``
    ``max(AUTO_MIN_BATCH, ceil(n_triplets / AUTO_STEPS_PER_EPOCH))``.

    Parameters
    ----------
    batch_size : int or "auto"
    n_triplets : int
        Training interactions per epoch.

    Returns
    -------
    int
    """
    if batch_size == "auto":
        return max(AUTO_MIN_BATCH, -(-n_triplets // AUTO_STEPS_PER_EPOCH))
    return min(batch_size, max(n_triplets, 1))  # a batch larger than the epoch is the whole epoch


class TripletSampler:
    """Epochs of BPR triplets (user, positive, negative) over a training matrix.

    Parameters
    ----------
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Canonical binary training matrix.
    """

    def __init__(self, train: sp.csr_matrix):
        self.train = train
        self.candidates = np.arange(train.shape[1], dtype=np.int32)
        degree = np.diff(train.indptr)
        users = np.repeat(np.arange(train.shape[0], dtype=np.int32), degree)
        full = degree >= train.shape[1]
        if full.any():
            warnings.warn(
                f"{int(full.sum())} user(s) interacted with every item (first: "
                f"{np.flatnonzero(full)[:5].tolist()}); BPR has no negative for them, so their "
                "interactions are left out of training.",
                DataWarning,
                stacklevel=3,
            )
        keep = ~full[users]
        self.users = users[keep]
        self.items = train.indices[keep]

    @property
    def n_triplets(self) -> int:
        return self.users.shape[0]

    def epoch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One shuffled pass: arrays ``users``, ``pos``, ``neg`` of shape (n_triplets,), int32."""
        order = rng.permutation(self.n_triplets)
        users = self.users[order]
        pos = self.items[order]
        neg = np.empty_like(pos)
        n_blocks = -(-users.shape[0] // _SEED_BLOCK)
        seeds = rng.integers(0, np.iinfo(np.uint64).max, size=n_blocks, dtype=np.uint64, endpoint=True)
        sample_negatives(self.train.indptr, self.train.indices, users, self.candidates, seeds, _SEED_BLOCK, neg)
        return users, pos, neg


@dataclass
class TrainResult:
    """What :func:`train` learned about the run (the parameters are updated in place)."""

    history: list[dict] = field(default_factory=list)
    batch_size: int = 0
    best_epoch: int = 0
    best_score: float = float("nan")
    stopped_early: bool = False


def _check_finite(epoch: int, loss: float, params: dict[str, np.ndarray], owner: str, learning_rate: float,
                  initial_loss: float) -> None:
    advice = (f"Lower learning_rate (now {learning_rate:g}), raise regularization, or standardise the item "
              "features.")
    bad = [name for name, p in params.items() if not np.isfinite(p).all()]
    if not np.isfinite(loss) or bad:
        what = f"parameters {bad}" if bad else "the loss"
        raise ModelFitError(f"{owner} diverged at epoch {epoch}: {what} became NaN or inf (mean loss {loss}). {advice}")
    if np.isfinite(initial_loss) and initial_loss > 0 and loss > DIVERGENCE_FACTOR * initial_loss:
        raise ModelFitError(
            f"{owner} diverged at epoch {epoch}: the mean loss {loss:.4g} is more than {DIVERGENCE_FACTOR:g} times "
            f"the loss at the initial parameters ({initial_loss:.4g}). {advice}"
        )


def _check_negatives(sampler: TripletSampler, owner: str) -> None:
    if sampler.n_triplets == 0:
        n_items = sampler.train.shape[1]
        raise ModelFitError(
            f"{owner} cannot be trained with BPR: no negative item exists, because every user with interactions "
            f"interacted with every one of the {n_items} item(s). BPR needs items a user has not interacted with; "
            "add items (or users with fewer interactions)."
        )


def train(
    objective,
    sampler: TripletSampler,
    *,
    rng: np.random.Generator,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    valid: sp.csr_matrix | None = None,
    exclude: sp.csr_matrix | None = None,
    verbose: bool = False,
    owner: str = "model",
    optimizer: str = "adam",
) -> TrainResult:
    """Train ``objective`` with BPR mini-batches and Adam (or SGD); early-stop on validation Recall@20.

    Parameters
    ----------
    objective : lgrec.objective.Objective
    sampler : TripletSampler
    rng : numpy.random.Generator
        Source of all randomness (shuffling and negative sampling).
    learning_rate : float
        Adam step size.
    batch_size : int or "auto"
        Triplets per Adam step (:func:`resolve_batch_size`).
    max_epochs : int
        Upper bound on epochs.
    patience : int
        Stop after this many epochs without a better validation Recall@20.
    valid : scipy.sparse.csr_matrix of shape (n_users, n_items), optional
        Validation interactions; without them all ``max_epochs`` run and the
        last parameters are kept.
    exclude : scipy.sparse.csr_matrix, optional
        Items not ranked in validation (the training interactions).
    verbose : bool, default=False
        Print one line per epoch (and a progress bar within long epochs) to stderr.
    owner : str
        Model name used in messages.
    optimizer : {"adam", "sgd"}, default="adam"
        :class:`lgrec.optim.Adam` (one step per batch), or :class:`lgrec.optim.SGD` (one step per
        triplet; ``batch_size`` then only groups the recorded losses) for objectives that list it
        in their ``optimizers``.

    Returns
    -------
    TrainResult
    """
    params = objective.params
    if optimizer not in objective.optimizers:
        raise ValueError(f"The 'optimizer' of {owner} must be one of {list(objective.optimizers)!r}. "
                         f"Got {optimizer!r} instead.")
    _check_negatives(sampler, owner)
    batch_size = resolve_batch_size(batch_size, sampler.n_triplets)
    initial_loss = float("nan")
    if optimizer == "sgd":
        optimizer = SGD(learning_rate, dict(objective.learning_rates))
    else:
        optimizer = Adam(params, learning_rate=learning_rate, learning_rates=objective.learning_rates)
    result = TrainResult(batch_size=batch_size)
    best_params = None
    since_best = 0
    state = objective.initial_state()
    for epoch in range(1, max_epochs + 1):
        started = time.perf_counter()
        state = objective.start_epoch(rng, state)
        users, pos, neg = sampler.epoch(rng)
        bar = tqdm(total=-(-users.shape[0] // batch_size), desc=f"epoch {epoch}", leave=False, delay=1.0,
                   disable=None if verbose else True)
        if epoch == 1 and isinstance(optimizer, SGD):
            # SGD steps after every triplet, so its first recorded loss is not at the initial parameters
            initial_loss = float(objective.loss_and_grads(users[:batch_size], pos[:batch_size], neg[:batch_size],
                                                          state)[0])
        losses, state = objective.run_epoch(users, pos, neg, optimizer, batch_size, state, on_batch=bar.update)
        bar.close()
        loss = float(losses.mean())
        if epoch == 1 and losses.size:
            if not isinstance(optimizer, SGD):
                initial_loss = float(losses[0])
            if initial_loss > INITIAL_LOSS_MAX:
                raise ModelFitError(
                    f"{owner}: the loss at the initial parameters is {initial_loss:.4g}, where a BPR model starts "
                    f"near 0.69 (log 2); the inputs are badly scaled. Standardise the item features (e.g. "
                    "divide each row by its norm) or lower their magnitude."
                )
        train_seconds = time.perf_counter() - started
        _check_finite(epoch, loss, params, owner, learning_rate, initial_loss)
        record = {"epoch": epoch, "loss": loss, "train_seconds": train_seconds, "eval_seconds": 0.0}
        if valid is not None:
            metrics = evaluate(objective.scorer(), valid, exclude, k=(10, 20))
            record["eval_seconds"] = metrics.pop("seconds")
            metrics.pop("n_users")
            record.update({f"valid_{key}": value for key, value in metrics.items()})
            score = metrics[VALID_METRIC]
            if best_params is None or score > result.best_score:
                result.best_score, result.best_epoch, since_best = score, epoch, 0
                best_params = {name: p.copy() for name, p in params.items()}
            else:
                since_best += 1
        result.history.append(record)
        if verbose:
            _print_epoch(record)
        if valid is not None and since_best >= patience:
            result.stopped_early = True
            break
    last_loss = result.history[-1]["loss"]
    if last_loss > RISE_WARNING_FACTOR * initial_loss:
        warnings.warn(
            f"{owner}: the training loss rose from {initial_loss:.4g} at the initial parameters to {last_loss:.4g} "
            f"in the last epoch; the fit may not have converged. Lower learning_rate (now {learning_rate:g}).",
            RuntimeWarning,
            stacklevel=3,
        )
    if best_params is not None:
        for name, p in params.items():
            p[...] = best_params[name]
    else:
        result.best_epoch = len(result.history)
    if verbose and valid is not None:
        print(
            f"best epoch {result.best_epoch}: valid {VALID_METRIC} {result.best_score:.4f}"
            + (" (early stop)" if result.stopped_early else ""),
            file=sys.stderr,
        )
    return result


def _print_epoch(record: dict) -> None:
    text = f"epoch {record['epoch']:4d}  loss {record['loss']:.4f}"
    if f"valid_{VALID_METRIC}" in record:
        text += f"  valid {VALID_METRIC} {record[f'valid_{VALID_METRIC}']:.4f}"
    text += f"  train {record['train_seconds']:.2f}s  eval {record['eval_seconds']:.2f}s"
    print(text, file=sys.stderr, flush=True)
