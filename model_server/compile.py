"""Compiling a fitted Pipeline to ONNX (skl2onnx) and checking it against the Pipeline.

The trainer (and :mod:`model_server.testing`) call :func:`export` with the held-out test set.
It never raises: a Pipeline skl2onnx cannot convert, or whose compiled form does not give the
same answers, comes back without bytes and with the reason. The check runs the compiled model
through :class:`model_server.runtimes.OnnxRuntime`, the very code the server predicts with.

The graph's inputs follow the features the server already knows: one input per feature,
``[N, 1]``, named after it, when the Pipeline starts with a ColumnTransformer (numeric:
double, or float where a converter needs it; categorical: string); otherwise one ``[N, F]``
numeric input. Classifiers output ``label`` and ``probabilities`` (a tensor, no ZipMap).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from model_server.artifact import Feature, OnnxCheck
from model_server.runtimes import MISSING_STRING, OnnxRuntime

PROBABILITY_TOLERANCE = 1e-5
"""Largest |onnx - sklearn| allowed for a class probability (float32 graphs reach ~2e-7)."""
REGRESSION_TOLERANCE = 1e-5
"""Largest |onnx - sklearn| / max(1, |sklearn|) allowed for a regression prediction."""
INPUT_TYPES = ("double", "float")
"""Tried in order: double keeps float64 arithmetic; some converters only take float."""


@dataclass(frozen=True)
class Export:
    model: bytes | None
    """model.onnx, or None when it is not to be published."""
    check: OnnxCheck


def export(
    pipeline: Any,
    features: list[Feature],
    x_test: pd.DataFrame,
    task: str,
    classes: list[Any] | None,
) -> Export:
    """Convert ``pipeline`` and check it on ``x_test``; never raises."""
    tolerance = PROBABILITY_TOLERANCE if task == "classification" else REGRESSION_TOLERANCE
    reasons: list[str] = []
    last: OnnxCheck | None = None
    columns = [x_test[f.name].to_numpy() for f in features]
    for input_type in INPUT_TYPES:
        try:
            model, opset = convert(pipeline, features, input_type)
        except Exception as error:
            reasons.append(f"{input_type}: skl2onnx cannot convert it: {_short(error)}")
            continue
        try:
            check = compare(
                pipeline, model, features=features, columns=columns, task=task, classes=classes
            )
        except Exception as error:
            reasons.append(f"{input_type}: onnxruntime cannot run it: {_short(error)}")
            continue
        check = check.model_copy(update={"input_type": input_type, "opset": opset})
        if check.verified:
            return Export(model, check)
        reasons.append(f"{input_type}: {check.reason}")
        last = check
    if last is not None:
        return Export(None, last.model_copy(update={"reason": "; ".join(reasons)}))
    return Export(
        None,
        OnnxCheck(
            verified=False,
            reason="; ".join(reasons) or "nothing to convert",
            tolerance=tolerance,
        ),
    )


def convert(pipeline: Any, features: list[Feature], input_type: str) -> tuple[bytes, int]:
    """The ONNX graph of ``pipeline`` (and its opset); raises what skl2onnx raises."""
    _register_double_imputer()
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        StringTensorType,
    )
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer

    numeric = DoubleTensorType if input_type == "double" else FloatTensorType
    model = copy.deepcopy(pipeline)
    steps = getattr(model, "steps", [(None, model)])
    final = steps[-1][1]
    kinds = [_kind(f.dtype) for f in features]
    if isinstance(steps[0][1], ColumnTransformer):
        types = {"numeric": numeric, "string": StringTensorType}
        initial = [(f.name, types[k]([None, 1])) for f, k in zip(features, kinds, strict=True)]
    elif all(k != "string" for k in kinds):
        initial = [("input", numeric([None, len(features)]))]
    else:
        raise ValueError("categorical features need a ColumnTransformer first in the Pipeline")
    for _, step in _walk(model):
        # onnxruntime's string imputer matches a string: missing categories arrive as one
        if isinstance(step, SimpleImputer) and _is_nan(step.missing_values):
            statistics = getattr(step, "statistics_", None)
            if statistics is not None and statistics.dtype.kind == "O":
                step.missing_values = MISSING_STRING
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = convert_sklearn(model, initial_types=initial, options=options)
    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), 0)
    return graph.SerializeToString(), int(opset)


_REGISTERED: list[bool] = []


def _register_double_imputer() -> None:
    """SimpleImputer on double inputs, with standard operators (IsNaN, Where).

    skl2onnx converts it to ``ai.onnx.ml.Imputer``, which onnxruntime implements for float only,
    so a Pipeline with numeric imputation (the trainer's always has one) would have to run in
    float32. Other inputs (float, strings) keep skl2onnx's own converter.
    """
    if _REGISTERED:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
        imputer = operator.raw_operator
        if not isinstance(operator.inputs[0].type, DoubleTensorType) or not _is_nan(
            imputer.missing_values
        ):
            convert_sklearn_imputer(scope, operator, container)
            return
        statistics = np.asarray(imputer.statistics_, dtype=np.float64)
        if np.isnan(statistics).any():
            raise NotImplementedError("a feature with no value to impute (all missing in training)")
        joined = concatenate_variables(scope, operator.inputs, container)
        fill = scope.get_unique_variable_name("fill")
        container.add_initializer(
            fill, onnx_proto.TensorProto.DOUBLE, [1, statistics.size], statistics.tolist()
        )
        missing = scope.get_unique_variable_name("missing")
        container.add_node(
            "IsNaN", [joined], [missing], name=scope.get_unique_operator_name("IsNaN")
        )
        container.add_node(
            "Where",
            [missing, fill, joined],
            operator.outputs[0].full_name,
            name=scope.get_unique_operator_name("Where"),
        )

    update_registered_converter(
        SimpleImputer,
        "SklearnSimpleImputer",
        calculate_sklearn_imputer_output_shapes,
        convert_imputer,
    )
    _REGISTERED.append(True)


def compare(
    pipeline: Any,
    model: bytes,
    *,
    features: list[Feature],
    columns: list[np.ndarray[Any, Any]],
    task: str,
    classes: list[Any] | None,
) -> OnnxCheck:
    """Predict ``columns`` with both and measure the differences."""
    runtime = OnnxRuntime(model, len(features), classes)
    frame = pd.DataFrame(dict(zip([f.name for f in features], columns, strict=True)))
    rows = len(frame)
    if task == "classification":
        want_proba = hasattr(pipeline, "predict_proba")
        labels, probabilities = runtime.predict(columns, want_proba)
        expected = np.asarray(pipeline.predict(frame))
        labels_equal = bool(np.array_equal(labels, expected))
        diff = None
        if want_proba:
            if probabilities is None:
                return _failed(rows, PROBABILITY_TOLERANCE, "the graph has no probabilities")
            diff = float(np.max(np.abs(probabilities - pipeline.predict_proba(frame)), initial=0))
        ok = labels_equal and (diff is None or diff <= PROBABILITY_TOLERANCE)
        reason = None
        if not labels_equal:
            unequal = int(np.sum(labels != expected))
            reason = f"{unequal} of {rows} test rows got another label"
        elif not ok:
            reason = f"probabilities differ by {diff:.3g} > {PROBABILITY_TOLERANCE:g}"
        return OnnxCheck(
            verified=ok,
            reason=reason,
            rows=rows,
            labels_equal=labels_equal,
            max_abs_diff=diff,
            tolerance=PROBABILITY_TOLERANCE,
        )
    predictions, _ = runtime.predict(columns, False)
    expected = np.asarray(pipeline.predict(frame), dtype=np.float64).reshape(-1)
    error = np.abs(predictions - expected)
    diff = float(np.max(error, initial=0))
    relative = float(np.max(error / np.maximum(1.0, np.abs(expected)), initial=0))
    ok = relative <= REGRESSION_TOLERANCE
    return OnnxCheck(
        verified=ok,
        reason=None
        if ok
        else f"predictions differ by {relative:.3g} (relative) > {REGRESSION_TOLERANCE:g}",
        rows=rows,
        max_abs_diff=diff,
        max_rel_diff=relative,
        tolerance=REGRESSION_TOLERANCE,
    )


def _failed(rows: int, tolerance: float, reason: str) -> OnnxCheck:
    return OnnxCheck(verified=False, reason=reason, rows=rows, tolerance=tolerance)


def _kind(dtype: str) -> str:
    try:
        parsed = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return "string"
    kind = getattr(parsed, "kind", "O")
    return "numeric" if kind in "fiub" else "string"


def _walk(estimator: Any) -> list[tuple[str, Any]]:
    """Every estimator nested in Pipelines and ColumnTransformers (fitted ones included)."""
    found: list[tuple[str, Any]] = []
    children: list[tuple[str, Any]] = list(getattr(estimator, "steps", []))
    children += [(n, t) for n, t, _ in getattr(estimator, "transformers_", [])]
    for name, child in children:
        if child in ("drop", "passthrough") or child is None:
            continue
        found.append((name, child))
        found.extend(_walk(child))
    return found


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _short(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:240]}"
