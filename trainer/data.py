"""Loading the training data: a built-in scikit-learn dataset, or a CSV/Parquet file by URI.

URIs go through fsspec: ``file://`` (or a plain path), ``pvc://<claim>/<path>`` (a mounted
volume, see :mod:`model_server.store`), ``s3://`` (s3fs; ``$MLOPS_S3_ENDPOINT_URL`` for MinIO
and the like) and ``http(s)://``. The result is a frame with the feature columns in a fixed
dtype contract, which the model server reproduces: numeric features are ``float64``,
categorical ones ``object`` holding strings (NaN when missing).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from sklearn import datasets

from mlops_operator.api.trainingjob import Dataset
from model_server import store
from trainer.errors import (
    DataMalformedError,
    DataUnreadableError,
    EmptyDatasetError,
    InvalidSpecError,
    MissingColumnError,
)

MAX_CLASSES_FOR_INTEGER_TARGET = 20
DATE_SHARE = 0.9
"""A text column is a date or timestamp when this share of its values parse as ISO 8601."""
HIGH_CARDINALITY = 50
"""A categorical column with more distinct values than this (and than half its rows) is
flagged: one-hot encoding would make a column per value."""
BUILTIN_TASKS = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}


@dataclass(frozen=True)
class Data:
    """The loaded data: features, target, and what they are."""

    frame: pd.DataFrame
    """The feature columns, numeric as float64 and categorical as object (strings)."""
    target: pd.Series
    target_name: str
    task: str
    categorical: list[str]
    numeric: list[str]
    digest: str
    """sha256 of the raw file (or, for a built-in dataset, of its content)."""
    dropped_rows: int = 0
    """Rows dropped because their target was missing."""
    dropped_columns: dict[str, str] = field(default_factory=dict)
    """Columns left out of the features, and why (dates and timestamps)."""
    notes: list[str] = field(default_factory=list)
    """What a person should know about the features (high-cardinality categoricals)."""


def read_bytes(uri: str) -> bytes:
    """The content of the file at ``uri``; DataUnreadableError names the URI and the cause."""
    try:
        fs, path = store.filesystem(uri)
        content: bytes = fs.cat_file(path)
    except store.StoreError as error:
        raise DataUnreadableError(f"dataset {uri}: {error}") from None
    except FileNotFoundError:
        raise DataUnreadableError(f"dataset {uri}: no such file{_looked_at(uri)}") from None
    except IsADirectoryError:
        raise DataUnreadableError(f"dataset {uri}: is a directory, not a file") from None
    except Exception as error:  # network, permissions, credentials: all "cannot read"
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        cause = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
        raise DataUnreadableError(f"dataset {uri}: cannot read it ({cause})") from None
    return content


def _looked_at(uri: str) -> str:
    """Where a local URI was looked for: pvc:// is read under $MLOPS_PVC_ROOT."""
    path = store.local_path(uri)
    if path is None or str(path) == uri:
        return ""
    if uri.startswith("pvc://"):
        return f" (looked at {path}; pvc:// URIs are read under ${store.PVC_ROOT_ENV})"
    return f" (looked at {path})"


def file_format(spec: Dataset) -> str:
    if spec.format:
        return spec.format
    suffixes = PurePosixPath(urlsplit(spec.uri or "").path).suffixes
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if ".csv" in suffixes or ".txt" in suffixes:
        return "csv"
    raise InvalidSpecError(
        f"dataset {spec.uri}: cannot tell the format from the file name; set dataset.format "
        "to csv or parquet"
    )


def parse(content: bytes, fmt: str, uri: str) -> pd.DataFrame:
    """The table in ``content``; DataMalformedError (or EmptyDatasetError) otherwise."""
    try:
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(content))
        return pd.read_csv(io.BytesIO(content), compression="infer")
    except pd.errors.EmptyDataError:
        raise EmptyDatasetError(f"dataset {uri}: the file is empty") from None
    except Exception as error:
        detail = " ".join(str(error).split())[:300]
        raise DataMalformedError(f"dataset {uri}: not a valid {fmt} file ({detail})") from None


def load_builtin(name: str) -> tuple[pd.DataFrame, str]:
    loader = getattr(datasets, f"load_{name}")
    bunch = loader(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    return frame, "target"


def _content_digest(frame: pd.DataFrame) -> str:
    hasher = hashlib.sha256()
    hasher.update("\x00".join(map(str, frame.columns)).encode())
    hasher.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return f"sha256:{hasher.hexdigest()}"


def infer_task(target: pd.Series) -> str:
    """classification for labels (strings, booleans, few integers), regression otherwise."""
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.to_numpy(dtype=float)
    integral = bool(np.all(np.mod(values, 1) == 0))
    if integral and target.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "classification"
    return "regression"


def _as_strings(column: pd.Series) -> pd.Series:
    values = column.astype(object)
    return values.where(values.isna(), values.map(str)).where(values.notna(), np.nan)


def _read(spec: Dataset) -> tuple[pd.DataFrame, str, str, str, str]:
    """The raw table, its target column, digest, a name for messages, and the known task."""
    if spec.builtin:
        frame, target = load_builtin(spec.builtin)
        task = spec.task or BUILTIN_TASKS[spec.builtin]
        return frame, spec.target or target, _content_digest(frame), spec.builtin, task
    if spec.uri is None or spec.target is None:  # the spec's rules forbid it
        raise InvalidSpecError("dataset: set builtin, or uri with target")
    fmt = file_format(spec)
    content = read_bytes(spec.uri)
    if not content.strip():
        raise EmptyDatasetError(f"dataset {spec.uri}: the file is empty")
    frame = parse(content, fmt, spec.uri)
    digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
    return frame, spec.target, digest, spec.uri, spec.task or ""


def _check_columns(
    frame: pd.DataFrame, source: str, target: str, features: list[str], extra: list[str]
) -> None:
    wanted = [target, *features, *extra]
    missing = [column for column in dict.fromkeys(wanted) if column not in frame.columns]
    if missing:
        available = ", ".join(frame.columns[:30]) + (", ..." if len(frame.columns) > 30 else "")
        raise MissingColumnError(
            f"dataset {source}: no column(s) {', '.join(missing)}; it has: {available}"
        )
    if target in features:
        raise InvalidSpecError(f"dataset.features: the target {target!r} cannot be a feature")
    if not features:
        raise EmptyDatasetError(f"dataset {source}: no feature columns besides the target")
    if frame.empty:
        raise EmptyDatasetError(f"dataset {source}: no rows")


def _is_numeric(column: pd.Series) -> bool:
    """Numbers and booleans are numeric features; anything else is categorical."""
    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _typed_target(y: pd.Series, task: str, source: str) -> pd.Series:
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if task == "classification":
        if not numeric:
            return _as_strings(y).astype(object)
        if np.all(np.mod(y.to_numpy(dtype=float), 1) == 0):
            return y.astype("int64")
        return y
    if not numeric:
        raise InvalidSpecError(
            f"dataset {source}: a regression target must be numeric; {y.name!r} is {y.dtype}"
        )
    return y.astype("float64")


def load(
    spec: Dataset,
    categorical_columns: list[str] | None = None,
    protect: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> Data:
    """Read, select and type the data the spec names (``protect``: drop and hash first)."""
    frame, target, digest, source, task = _read(spec)
    frame.columns = [str(column) for column in frame.columns]
    if protect is not None:
        frame = protect(frame)
    features = spec.features or [column for column in frame.columns if column != target]
    _check_columns(frame, source, target, features, categorical_columns or [])
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise EmptyDatasetError(f"dataset {source}: no rows with a value in {target!r}")
    y = labelled[target].reset_index(drop=True)
    x = labelled[features].reset_index(drop=True)
    dropped = {
        column: "a date or timestamp: as categories it would only memorise the training days"
        for column in features
        if column not in (categorical_columns or []) and _is_date(x[column])
    }
    features = [column for column in features if column not in dropped]
    if not features:
        raise EmptyDatasetError(f"dataset {source}: no feature columns besides dates")
    x = x[features]
    categorical = [
        column
        for column in features
        if column in (categorical_columns or []) or not _is_numeric(x[column])
    ]
    numeric = [column for column in features if column not in categorical]
    columns: dict[str, Any] = {
        column: _as_strings(x[column]) if column in categorical else x[column].astype("float64")
        for column in features
    }
    task = task or infer_task(y)
    return Data(
        frame=pd.DataFrame(columns, columns=features),
        target=_typed_target(y, task, source).rename(target),
        target_name=target,
        task=task,
        categorical=categorical,
        numeric=numeric,
        digest=digest,
        dropped_rows=len(frame) - len(labelled),
        dropped_columns=dropped,
        notes=_high_cardinality(x, categorical),
    )


def _is_date(column: pd.Series) -> bool:
    """Datetimes, or text of which most values parse as ISO 8601 dates or timestamps."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if _is_numeric(column):
        return False
    values = column.dropna().astype(str)
    if (
        values.empty
        or not values.str.contains(r"^\d{4}-\d{2}-\d{2}", regex=True).mean() >= DATE_SHARE
    ):
        return False
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
    return bool(parsed.notna().mean() >= DATE_SHARE)


def _high_cardinality(x: pd.DataFrame, categorical: list[str]) -> list[str]:
    notes = []
    for column in categorical:
        levels = int(x[column].nunique(dropna=True))
        if levels > HIGH_CARDINALITY and levels > len(x) / 2:
            notes.append(
                f"categorical column {column!r} has {levels} distinct values in {len(x)} rows: "
                "one-hot encoding makes a column of each; drop it from dataset.features if it "
                "is an identifier, or set preprocessing.categorical: ordinal"
            )
    return notes
