"""JIT compile time of lgrec's Numba kernels, measured in fresh processes (shared by the bench_*.py scripts)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def compile_times(snippet: str, fields: tuple[str, ...] = ("import_s", "first_calls_s")) -> dict:
    """Run ``snippet`` in a fresh interpreter with an empty Numba cache, then again with that cache filled.

    Parameters
    ----------
    snippet : str
        Python code that prints whitespace-separated seconds, one per name in ``fields``.
    fields : tuple of str
        Names of the printed figures, in order.

    Returns
    -------
    dict
        ``{"cold_cache": {field: seconds, ...}, "warm_cache": {...}}``.
    """
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold_cache", "warm_cache"):
            text = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True,
                                  check=True).stdout.split()
            out[label] = {field: float(value) for field, value in zip(fields, text, strict=True)}
    return out
