"""The one scikit-learn Pipeline that is trained, stored and served.

``preprocess`` (a ColumnTransformer: imputation and scaling of numeric columns, imputation and
encoding of categorical ones) followed by ``model`` (the estimator). Serving loads the whole
Pipeline, so it applies exactly the preprocessing that training did.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from mlops_operator.api.trainingjob import Preprocessing

MODEL_STEP = "model"
MISSING_CATEGORY = "missing"
SCALERS: dict[str, type[BaseEstimator]] = {
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "robust": RobustScaler,
}


def numeric_steps(spec: Preprocessing) -> Pipeline:
    steps: list[tuple[str, BaseEstimator]] = [
        ("impute", SimpleImputer(strategy=spec.imputation.numeric, fill_value=0.0))
    ]
    if spec.scaling != "none":
        steps.append(("scale", SCALERS[spec.scaling]()))
    return Pipeline(steps)


def categorical_steps(spec: Preprocessing) -> Pipeline:
    impute = SimpleImputer(
        strategy=spec.imputation.categorical,
        fill_value=MISSING_CATEGORY,
        missing_values=float("nan"),
    )
    encode: BaseEstimator
    if spec.categorical == "onehot":
        encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    return Pipeline([("impute", impute), ("encode", encode)])


def build(
    spec: Preprocessing, numeric: list[str], categorical: list[str], estimator: BaseEstimator
) -> Pipeline:
    transformers: list[tuple[str, Pipeline, list[str]]] = []
    if numeric:
        transformers.append(("numeric", numeric_steps(spec), numeric))
    if categorical:
        transformers.append(("categorical", categorical_steps(spec), categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("preprocess", preprocess), (MODEL_STEP, estimator)])
