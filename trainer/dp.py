"""Differentially private training with diffprivlib, and the plain model it publishes.

Only the estimators in :data:`ESTIMATORS` are allowed. The run fits once (no cross-validation
and no search: each extra fit would spend budget again), with a BudgetAccountant bounded by
the spec's epsilon and delta; the budget it spent goes to metadata.json and the status.
The fitted parameters are then copied into the equivalent scikit-learn estimator, so the
artifact holds only scikit-learn types (what the model server trusts; post-processing keeps
the guarantee). The guarantee covers the estimator: the preprocessing's statistics (imputer
medians, scaler means) and the drift statistics in metadata.json are not privatized.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline

from mlops_operator.api.trainingjob import DifferentialPrivacy
from trainer.errors import BadParamsError, EstimatorNotAllowedError, TrainingFailedError

ESTIMATORS: dict[str, tuple[type[BaseEstimator], tuple[str, ...]]] = {
    "diffprivlib.models.GaussianNB": (
        GaussianNB,
        ("classes_", "class_count_", "class_prior_", "theta_", "var_", "epsilon_"),
    ),
    "diffprivlib.models.LinearRegression": (LinearRegression, ("coef_", "intercept_")),
}
"""diffprivlib estimator -> the scikit-learn estimator it publishes as, and what to copy."""


def _diffprivlib() -> Any:
    # diffprivlib 0.6.6 imports two names scikit-learn 1.9 no longer has (its forest module,
    # which we do not allow): restore them before the import.
    tree = importlib.import_module("sklearn.tree._tree")
    for name, value in (("DOUBLE", np.float64), ("DTYPE", np.float32)):
        if not hasattr(tree, name):
            setattr(tree, name, value)
    return importlib.import_module("diffprivlib")


def resolve(path: str) -> type[BaseEstimator]:
    if path not in ESTIMATORS:
        raise EstimatorNotAllowedError(
            f"privacy.differentialPrivacy: estimator {path!r} is not allowed; use one of "
            + ", ".join(ESTIMATORS)
        )
    models = _diffprivlib().models
    cls: type[BaseEstimator] = getattr(models, path.rsplit(".", 1)[1])
    return cls


@dataclass(frozen=True)
class PrivateFit:
    pipeline: Pipeline
    """The Pipeline with the plain scikit-learn estimator (what is published)."""
    spent: dict[str, float]
    warnings: list[str]


def fit(pipeline: Pipeline, x: Any, y: Any, spec: DifferentialPrivacy, path: str) -> PrivateFit:
    library = _diffprivlib()
    accountant = library.BudgetAccountant(epsilon=spec.epsilon, delta=spec.delta)
    estimator = pipeline.steps[-1][1]
    bounds = {  # JSON has lists; diffprivlib wants (min, max) tuples
        key: tuple(value)
        for key, value in estimator.get_params(deep=False).items()
        if key in ("bounds", "bounds_X", "bounds_y") and isinstance(value, list)
    }
    estimator.set_params(epsilon=spec.epsilon, accountant=accountant, **bounds)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit(x, y)
        except library.utils.BudgetError as error:
            raise BadParamsError(f"privacy.differentialPrivacy: {error}") from None
        except (ValueError, TypeError) as error:
            raise TrainingFailedError(f"differentially private fit failed: {error}") from None
    for warning in caught:
        if issubclass(warning.category, library.utils.PrivacyLeakWarning):
            notes.append(
                "diffprivlib took the feature bounds from the data, which leaks privacy: give "
                "them in model.params (bounds, or bounds_X and bounds_y)"
            )
    spent_epsilon, spent_delta = accountant.total()
    plain_cls, attributes = ESTIMATORS[path]
    plain = plain_cls()
    for name in (*attributes, "n_features_in_"):
        if hasattr(estimator, name):
            setattr(plain, name, getattr(estimator, name))
    published = Pipeline([*pipeline.steps[:-1], (pipeline.steps[-1][0], plain)])
    return PrivateFit(
        pipeline=published,
        spent={"epsilon": float(spent_epsilon), "delta": float(spent_delta)},
        warnings=sorted(set(notes)),
    )
