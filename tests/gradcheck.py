"""Central-difference gradient checking in float64."""

import numpy as np


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every entry of ``x`` (perturbed in place)."""
    grad = np.zeros_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for idx in range(flat.size):
        old = flat[idx]
        flat[idx] = old + eps
        up = f()
        flat[idx] = old - eps
        down = f()
        flat[idx] = old
        out[idx] = (up - down) / (2 * eps)
    return grad


def assert_grad_close(analytic: np.ndarray, numeric: np.ndarray, rtol: float = 1e-5, atol: float = 1e-7, name: str = ""):
    """Compare gradients by max absolute error relative to the gradient scale; report max and mean error."""
    err = np.abs(analytic - numeric)
    scale = max(float(np.abs(numeric).max()), 1.0)
    assert err.max() <= atol + rtol * scale, (
        f"{name}: max error {err.max():.3g}, mean error {err.mean():.3g}, gradient scale {scale:.3g}"
    )
