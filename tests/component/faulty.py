"""A classifier that fails on purpose: a row with a negative first feature makes predict raise
(a 500 from the model server), so a test controls the error rate exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class FaultyClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    def fit(self, x: Any, y: Any) -> FaultyClassifier:
        self.inner_ = LogisticRegression(max_iter=1000).fit(x, y)
        self.classes_ = self.inner_.classes_
        return self

    def _check(self, x: Any) -> None:
        if (np.asarray(x, dtype=float)[:, 0] < 0).any():
            raise RuntimeError("injected failure")

    def predict(self, x: Any) -> Any:
        self._check(x)
        return self.inner_.predict(x)

    def predict_proba(self, x: Any) -> Any:
        self._check(x)
        return self.inner_.predict_proba(x)
