"""Estimator base class, exceptions and the fitted-state check.

The parameter machinery follows scikit-learn's conventions without importing
scikit-learn: hyperparameters are the keyword arguments of ``__init__``,
stored verbatim under the same name, read back by :meth:`get_params` and set
by :meth:`set_params`, so :func:`sklearn.base.clone` and ``Pipeline`` work.
"""

from __future__ import annotations

import inspect

__all__ = [
    "BaseEstimator",
    "ModelFitError",
    "NotFittedError",
    "check_is_fitted",
]


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``.

    Inherits from both ``ValueError`` and ``AttributeError`` like
    scikit-learn's exception of the same name.
    """


class ModelFitError(RuntimeError):
    """Raised when training diverges (non-finite loss or parameters)."""


class DataWarning(UserWarning):
    """Warning about input data that is usable but probably not what was meant."""


def check_is_fitted(estimator, attributes: str | tuple[str, ...] = "item_factors_") -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has the learned attributes.

    Parameters
    ----------
    estimator : object
        The model to check.
    attributes : str or tuple of str, default="item_factors_"
        Learned attributes that must exist.
    """
    names = (attributes,) if isinstance(attributes, str) else attributes
    if not all(hasattr(estimator, name) for name in names):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


class BaseEstimator:
    """Hyperparameters from ``__init__``, ``get_params``/``set_params`` and a readable repr."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        names = []
        for name, param in signature.parameters.items():
            if name == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must not take *args or **kwargs")
            names.append(name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict:
        """Hyperparameters of this estimator.

        Parameters
        ----------
        deep : bool, default=True
            Accepted for scikit-learn compatibility; lgrec estimators do not nest.

        Returns
        -------
        dict
            Parameter names mapped to their values.
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set hyperparameters; unknown names raise ``ValueError``.

        Returns
        -------
        self
        """
        valid = set(self._get_param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {sorted(valid)!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: param.default
            for name, param in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            same = default is value or (
                type(default) is type(value) and _safe_equal(default, value)
            )
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"


def _safe_equal(a, b) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
