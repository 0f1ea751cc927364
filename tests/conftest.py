"""Shared fixtures and hypothesis profiles.

Profiles: ``default`` (used locally and in CI) keeps each property test to a
few dozen examples; ``thorough`` (``--hypothesis-profile=thorough``) runs more;
``fuzz`` (``pytest tests/test_fuzz.py --hypothesis-profile=fuzz``) is the long
run of the fuzz suite.
``deadline=None`` everywhere because the first example of a test may include
Numba's compile time.
"""

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile("default")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BABY = SHARED / "data" / "amazon-baby"

needs_baby = pytest.mark.skipif(not (BABY / "baby.inter").exists(), reason=f"real Amazon Baby data not found at {BABY}")


def random_interactions(rng: np.random.Generator, n_users: int, n_items: int, density: float) -> sp.csr_matrix:
    """A binary CSR matrix where every user has at least one item and fewer than all."""
    dense = rng.random((n_users, n_items)) < density
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    full = dense.all(axis=1)
    dense[full, rng.integers(0, n_items, int(full.sum()))] = False
    matrix = sp.csr_matrix(dense.astype(np.float32))
    matrix.sort_indices()
    return matrix


@pytest.fixture(scope="session")
def synthetic():
    from lgrec.datasets import make_multimodal

    return make_multimodal(n_users=200, n_items=150, interactions_per_user=10.0, random_state=0)


class FakeTerminal(io.StringIO):
    """A stderr stand-in that says it is a terminal (tqdm draws only on those when ``disable=None``)."""

    def isatty(self):
        return True


@pytest.fixture
def spy_tqdm(monkeypatch):
    """``spy_tqdm(module)``: the list of ``(keywords, bar)`` of every tqdm bar ``module`` opens from now on."""

    def install(module):
        opened = []
        real = module.tqdm

        def spy(*args, **kwargs):
            opened.append((kwargs, real(*args, **kwargs)))
            return opened[-1][1]

        monkeypatch.setattr(module, "tqdm", spy)
        return opened

    return install
