"""The estimator allow-list: which import paths a TrainingJob may name, and their params.

By default: every public scikit-learn classifier and regressor, i.e. the classes that
``sklearn.utils.all_estimators(type_filter=["classifier", "regressor"])`` lists, named by their
public import path (``sklearn.<module>.<Class>``). The check resolves only the one path it is
given, so it costs one import instead of importing all of scikit-learn. More import paths can be
allowed with ``MLOPS_EXTRA_ESTIMATORS`` (comma-separated, e.g. ``xgboost.XGBClassifier``).
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from mlops_operator.api.workload import EXTRA_ESTIMATORS_ENV
from trainer.errors import BadParamsError, EstimatorNotAllowedError


def extra_estimators() -> set[str]:
    """The import paths allowed on top of scikit-learn's, from ``$MLOPS_EXTRA_ESTIMATORS``."""
    raw = os.environ.get(EXTRA_ESTIMATORS_ENV, "")
    return {item.strip() for item in raw.split(",") if item.strip()}


def _is_sklearn_path(path: str) -> bool:
    parts = path.split(".")
    return (
        len(parts) >= 3
        and parts[0] == "sklearn"
        and not any(part.startswith("_") for part in parts)
        and "tests" not in parts
    )


def _import(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, attribute, None)


def task_of(cls: type) -> str | None:
    """classification, regression, or None for neither."""
    if issubclass(cls, ClassifierMixin):
        return "classification"
    if issubclass(cls, RegressorMixin):
        return "regression"
    return None


def resolve(path: str) -> type[BaseEstimator]:
    """The estimator class at ``path``, or EstimatorNotAllowedError saying why not."""
    extra = path in extra_estimators()
    if not extra and not _is_sklearn_path(path):
        raise EstimatorNotAllowedError(
            f"estimator {path!r} is not on the allow-list: use a public scikit-learn "
            f"classifier or regressor (sklearn.<module>.<Class>), or ask the operator's "
            f"administrator to add it to {EXTRA_ESTIMATORS_ENV}"
        )
    cls = _import(path)
    if not inspect.isclass(cls) or not issubclass(cls, BaseEstimator):
        raise EstimatorNotAllowedError(f"estimator {path!r}: no such estimator class")
    if inspect.isabstract(cls) or cls.__name__.startswith("_"):
        raise EstimatorNotAllowedError(f"estimator {path!r} is abstract or private")
    if not extra and task_of(cls) is None:
        raise EstimatorNotAllowedError(
            f"estimator {path!r} is not a classifier or regressor, so it is not on the allow-list"
        )
    return cls


def build(cls: type[BaseEstimator], params: dict[str, Any], seed: int) -> BaseEstimator:
    """An instance with ``params``; unknown names fail with BadParamsError listing valid ones.

    ``random_state`` defaults to the split seed, so a run is reproducible.
    """
    try:
        estimator = cls()
    except TypeError as error:
        raise BadParamsError(
            f"estimator {cls.__name__} cannot be built without arguments ({error})"
        ) from None
    valid = estimator.get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise BadParamsError(
            f"unknown parameter(s) {', '.join(unknown)} for {cls.__name__}; "
            f"valid: {', '.join(sorted(valid))}"
        )
    merged = dict(params)
    if "random_state" in valid and "random_state" not in merged:
        merged["random_state"] = seed
    estimator.set_params(**merged)
    return estimator


def check_param_names(cls: type[BaseEstimator], names: list[str], where: str) -> None:
    valid = cls().get_params(deep=False)
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise BadParamsError(
            f"{where}: unknown parameter(s) {', '.join(unknown)} for {cls.__name__}; "
            f"valid: {', '.join(sorted(valid))}"
        )
