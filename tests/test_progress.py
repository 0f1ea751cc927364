"""Progress bars are tqdm's: drawn for verbose runs only when stderr is a terminal."""

import io

import pytest
from conftest import FakeTerminal

import lgrec.training
from lgrec import LightGCN
from lgrec.datasets import make_multimodal


@pytest.mark.parametrize("terminal, verbose, drawn", [(True, True, True), (True, False, False), (False, True, False)])
def test_training_bar_follows_verbose_and_the_terminal(spy_tqdm, monkeypatch, terminal, verbose, drawn):
    data = make_multimodal(n_users=60, n_items=40, interactions_per_user=6.0, random_state=0)
    bars = spy_tqdm(lgrec.training)
    stderr = FakeTerminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    LightGCN(max_epochs=2, batch_size=64, verbose=verbose, random_state=0).fit(data.train, valid=data.valid)
    assert [kwargs["desc"] for kwargs, _ in bars] == ["epoch 1", "epoch 2"]
    assert all(kwargs["disable"] is (None if verbose else True) for kwargs, _ in bars)
    n_batches = -(-data.train.nnz // 64)
    # An enabled bar counts every batch; a disabled one (not verbose, or stderr not a terminal) counts nothing.
    assert all(bar.total == n_batches and bar.n == (n_batches if drawn else 0) for _, bar in bars)
    # A run shorter than a second draws nothing (delay), so the log holds only the epoch lines.
    assert "\r" not in stderr.getvalue()
    assert ("epoch    2  loss" in stderr.getvalue()) == verbose
