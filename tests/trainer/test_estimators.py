"""The estimator allow-list."""

from __future__ import annotations

import pytest
from sklearn.utils import all_estimators

from trainer import estimators
from trainer.errors import BadParamsError, EstimatorNotAllowedError


def public_path(cls: type) -> str:
    return f"sklearn.{cls.__module__.split('.')[1]}.{cls.__name__}"


def test_every_sklearn_classifier_and_regressor_is_allowed() -> None:
    listed = all_estimators(type_filter=["classifier", "regressor"])
    assert len(listed) > 50
    for _, cls in listed:
        assert estimators.resolve(public_path(cls)) is cls


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.preprocessing.StandardScaler",  # a transformer
        "sklearn.cluster.KMeans",  # a clusterer
        "sklearn.base.BaseEstimator",
        "sklearn.ensemble._forest.RandomForestClassifier",  # a private path
        "builtins.eval",
        "numpy.load",
    ],
)
def test_everything_else_is_refused(path: str) -> None:
    with pytest.raises(EstimatorNotAllowedError):
        estimators.resolve(path)


def test_extra_estimators_extend_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    path = "sklearn.cluster.KMeans"
    monkeypatch.setenv(estimators.EXTRA_ESTIMATORS_ENV, f" numpy.nothing , {path}")
    assert estimators.resolve(path).__name__ == "KMeans"


def test_params_are_checked_by_name_and_seeded() -> None:
    cls = estimators.resolve("sklearn.ensemble.RandomForestClassifier")
    built = estimators.build(cls, {"n_estimators": 3}, seed=9)
    assert built.get_params()["random_state"] == 9
    assert estimators.build(cls, {"random_state": 1}, seed=9).get_params()["random_state"] == 1
    with pytest.raises(BadParamsError, match="n_trees"):
        estimators.build(cls, {"n_trees": 3}, seed=9)
