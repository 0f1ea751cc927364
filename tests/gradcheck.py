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


def dense_grad(grad, n_rows: int) -> np.ndarray:
    """A gradient as a dense array (``RowGrad`` rows scattered into zeros)."""
    from lgrec.optim import RowGrad

    return grad.to_dense(n_rows) if isinstance(grad, RowGrad) else grad


def check_objective_gradients(objective, users, pos, neg, state=None):
    """Every parameter's hand-written gradient (``loss_and_grads``) against central differences.

    Parameters with no entry in the returned gradients must not affect the loss.
    """
    _, grads, _ = objective.loss_and_grads(users, pos, neg, state)
    for name, param in objective.params.items():
        numeric = numeric_grad(lambda: objective.loss_and_grads(users, pos, neg, state)[0], param)
        analytic = dense_grad(grads[name], param.shape[0]) if name in grads else np.zeros_like(param)
        assert_grad_close(analytic, numeric, name=name)


def triplets(rng: np.random.Generator, train, batch: int):
    """``batch`` random (user, positive, negative) triplets of a small binary CSR matrix."""
    users = rng.integers(0, train.shape[0], batch)
    dense = train.toarray() > 0
    pos = np.array([rng.choice(np.flatnonzero(dense[u])) for u in users])
    neg = np.array([rng.choice(np.flatnonzero(~dense[u])) for u in users])
    return users, pos, neg
