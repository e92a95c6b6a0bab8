"""What predicts: the fitted scikit-learn Pipeline (skops) or its compiled form (onnxruntime).

Both take the decoded feature columns (one numpy array per feature, as :mod:`codec` makes
them) and give the same answers in the same types: predictions shaped ``[N]`` with the
dtype of the classes (or float64 for regressors), probabilities ``[N, C]`` float64.
``inline`` tells the batcher whether a predict call is cheaper than a thread hand-off.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

Column = np.ndarray[Any, Any]
Array = np.ndarray[Any, Any]

MISSING_STRING = "<mlops:missing>"
"""What a missing categorical value becomes in the ONNX graph: onnxruntime's string imputer
matches a string, not NaN (the compiled graph's imputers are set to this value)."""

_ONNX_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(double)": np.dtype(np.float64),
    "tensor(float)": np.dtype(np.float32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(string)": np.dtype(object),
}


class Runtime(Protocol):
    name: str
    inline: bool
    has_proba: bool

    def predict(self, columns: list[Column], proba: bool) -> tuple[Array, Array | None]: ...


class SklearnRuntime:
    """The Pipeline itself, on a DataFrame with the training columns and dtypes."""

    name = "sklearn"
    inline = False  # milliseconds per call: worth a thread, so the loop keeps parsing

    def __init__(self, estimator: Any, feature_names: list[str]) -> None:
        self.estimator = estimator
        self.feature_names = feature_names
        self.has_proba = hasattr(estimator, "predict_proba")

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.estimator, "classes_", None)
        return np.asarray(classes).tolist() if classes is not None else None

    def predict(self, columns: list[Column], proba: bool) -> tuple[Array, Array | None]:
        frame = pd.DataFrame(dict(zip(self.feature_names, columns, strict=True)), copy=False)
        predictions = np.asarray(self.estimator.predict(frame))
        probabilities = np.asarray(self.estimator.predict_proba(frame)) if proba else None
        return predictions, probabilities


class OnnxRuntime:
    """model.onnx in an onnxruntime InferenceSession; microseconds per call, so inline."""

    name = "onnx"
    inline = True

    def __init__(
        self,
        model: bytes,
        n_features: int,
        classes: list[Any] | None,
        *,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
    ) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self.session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        if len(inputs) not in (1, n_features):
            raise ValueError(
                f"model.onnx has {len(inputs)} inputs, the model {n_features} features"
            )
        unknown = [i.type for i in inputs if i.type not in _ONNX_TYPES]
        if unknown:
            raise ValueError(f"model.onnx has inputs of unsupported types {unknown}")
        self._names = [i.name for i in inputs]
        self._types = [_ONNX_TYPES[i.type] for i in inputs]
        self._matrix = len(inputs) == 1 and n_features != 1
        outputs = [o.name for o in self.session.get_outputs()]
        self._label = outputs[0]
        self.has_proba = classes is not None and len(outputs) > 1
        self._outputs = outputs[:2] if self.has_proba else outputs[:1]
        self._classes_dtype = np.asarray(classes).dtype if classes is not None else None

    def feed(self, columns: list[Column]) -> dict[str, Array]:
        if self._matrix:
            return {self._names[0]: np.column_stack(columns).astype(self._types[0], copy=False)}
        return {
            name: _as(column, dtype).reshape(-1, 1)
            for name, dtype, column in zip(self._names, self._types, columns, strict=True)
        }

    def predict(self, columns: list[Column], proba: bool) -> tuple[Array, Array | None]:
        wanted = self._outputs if proba else self._outputs[:1]
        results = self.session.run(wanted, self.feed(columns))
        predictions = np.asarray(results[0]).reshape(-1)
        if self._classes_dtype is None:
            predictions = predictions.astype(np.float64, copy=False)
        elif predictions.dtype != self._classes_dtype:
            predictions = predictions.astype(self._classes_dtype)
        probabilities = None
        if proba and len(results) > 1:
            probabilities = np.asarray(results[1]).astype(np.float64, copy=False)
        return predictions, probabilities


def _as(column: Column, dtype: np.dtype[Any]) -> Column:
    if dtype.kind != "O":
        return column.astype(dtype, copy=False)
    out = np.empty(len(column), dtype=object)
    for i, value in enumerate(column):
        out[i] = value if isinstance(value, str) else MISSING_STRING
    return out
