"""Decoding v2 infer requests into feature columns and encoding responses; fast and strict.

Every check raises :class:`InvalidInput` with a message that names the input, feature or value
at fault, so no client mistake ever reaches the model as a 500.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from model_server.errors import InvalidInput
from model_server.metric_names import DIRECT
from model_server.model import LoadedModel
from model_server.protocol import DATATYPES

Column = np.ndarray[Any, Any]
Data = list[Any] | np.ndarray[Any, Any]
Tensor = tuple[str, list[int], str, Data]
"""An input tensor: name, shape, datatype, flat or nested data."""
OUTPUTS = ("predict", "predict_proba")
_INT_TYPES = frozenset(("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"))
_FLOAT_TYPES = frozenset(("FP16", "FP32", "FP64"))


@dataclass(slots=True)
class Decoded:
    """One infer request, decoded: a column per feature, all of ``rows`` rows."""

    id: str
    columns: list[Column]
    rows: int
    want_predict: bool
    want_proba: bool
    source: str = DIRECT
    """Where the request came from (model_server.provenance): its agreement's label."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's answer for one request: predictions (and flat probabilities) as lists."""

    predictions: list[Any]
    datatype: str
    probabilities: list[float] | None


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    numeric: bool
    dtype: np.dtype[Any]
    allow_missing: bool


def feature_specs(model: LoadedModel) -> list[FeatureSpec]:
    specs = []
    for name, dtype in zip(model.feature_names, model.feature_dtypes, strict=True):
        stats = model.metadata.feature_stats.get(name)
        numeric = dtype.kind in "iufb"
        specs.append(
            FeatureSpec(
                name=name,
                numeric=numeric,
                dtype=np.dtype(np.float64) if dtype.kind == "f" or not numeric else dtype,
                allow_missing=stats is not None and stats.missing > 0,
            )
        )
    return specs


class Decoder:
    """Turns request bodies into :class:`Decoded` for one model."""

    def __init__(self, model: LoadedModel, max_rows: int, max_id_length: int = 256) -> None:
        self.model = model
        self.max_id_length = max_id_length
        self.specs = feature_specs(model)
        self.index = {spec.name: i for i, spec in enumerate(self.specs)}
        self.max_rows = max_rows
        self.all_float = all(s.numeric and s.dtype.kind == "f" for s in self.specs)

    def decode(self, body: bytes, binary_header_length: int | None = None) -> Decoded:
        """Decode a JSON request, or one using the binary tensor data extension when
        ``binary_header_length`` (the Inference-Header-Content-Length header) is given."""
        binary = b""
        if binary_header_length is not None:
            if not 0 <= binary_header_length <= len(body):
                raise InvalidInput(
                    f"Inference-Header-Content-Length {binary_header_length} is outside the "
                    f"body of {len(body)} bytes",
                    "http",
                )
            body, binary = body[:binary_header_length], body[binary_header_length:]
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"the request body is not valid JSON: {error}", "json") from error
        if not isinstance(request, dict):
            raise InvalidInput("the request body must be a JSON object", "json")
        request_id = request.get("id")
        if request_id is None:
            request_id = uuid.uuid4().hex
        elif not isinstance(request_id, str) or not request_id:
            raise InvalidInput("'id' must be a non-empty string", "schema")
        want_predict, want_proba = self._outputs(request.get("outputs"))
        inputs = request.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise InvalidInput("'inputs' must be a non-empty list of tensors", "schema")
        if binary_header_length is not None:
            _attach_binary(inputs, binary)
        tensors = [_tensor(item, i) for i, item in enumerate(inputs)]
        return self._decoded(request_id, want_predict, want_proba, tensors)

    def decode_tensors(
        self, request_id: str, tensors: list[Tensor], outputs: list[str] | None
    ) -> Decoded:
        """Decode tensors another transport (gRPC) parsed: the same checks and messages."""
        if not tensors:
            raise InvalidInput("'inputs' must be a non-empty list of tensors", "schema")
        for position, (name, shape, datatype, _) in enumerate(tensors):
            if not name:
                raise InvalidInput(f"inputs[{position}] needs a non-empty string 'name'", "schema")
            if not shape or not all(0 <= d < 2**31 for d in shape):
                raise InvalidInput(
                    f"input {name!r}: 'shape' must be a non-empty list of non-negative integers",
                    "shape",
                )
            if datatype not in DATATYPES:
                raise InvalidInput(
                    f"input {name!r}: unknown datatype {datatype!r}; one of {list(DATATYPES)}",
                    "datatype",
                )
        wanted = None if outputs is None else [{"name": name} for name in outputs]
        want_predict, want_proba = self._outputs(wanted)
        return self._decoded(request_id or uuid.uuid4().hex, want_predict, want_proba, tensors)

    def _decoded(
        self, request_id: str, want_predict: bool, want_proba: bool, tensors: list[Tensor]
    ) -> Decoded:
        if len(request_id) > self.max_id_length:
            raise InvalidInput(
                f"'id' has {len(request_id)} characters; at most {self.max_id_length} are "
                "accepted (the server remembers recent ids for feedback)",
                "schema",
            )
        if len(tensors) == 1 and tensors[0][0] not in self.index:
            columns, rows = self._from_matrix(*tensors[0])
        else:
            columns, rows = self._from_features(tensors)
        if rows > self.max_rows:
            raise InvalidInput(
                f"the request has {rows} rows; at most {self.max_rows} are accepted", "too_large"
            )
        return Decoded(request_id, columns, rows, want_predict, want_proba)

    def _outputs(self, outputs: Any) -> tuple[bool, bool]:
        if outputs is None:
            return True, False
        if not isinstance(outputs, list):
            raise InvalidInput("'outputs' must be a list of {\"name\": ...}", "schema")
        names = set()
        for output in outputs:
            name = output.get("name") if isinstance(output, dict) else None
            if name not in OUTPUTS:
                raise InvalidInput(
                    f"unknown output {name!r}; this model has outputs {list(self._output_names())}",
                    "output",
                )
            names.add(name)
        if "predict_proba" in names and not self.model.has_proba:
            raise InvalidInput(
                "this model has no predict_proba output (not a classifier)", "output"
            )
        if not names:
            return True, False
        return "predict" in names, "predict_proba" in names

    def _output_names(self) -> tuple[str, ...]:
        return OUTPUTS if self.model.has_proba else OUTPUTS[:1]

    def _from_matrix(
        self, name: str, shape: list[int], datatype: str, data: Data
    ) -> tuple[list[Column], int]:
        width = len(self.specs)
        if len(shape) == 1 and width > 1:
            shape = [1, shape[0]]
        if len(shape) == 1:
            shape = [shape[0], 1]
        if len(shape) != 2 or shape[1] != width:
            raise InvalidInput(
                f"input {name!r} has shape {shape}; one input holding all features must have "
                f"shape [N, {width}] for the features {self.model.feature_names} (or name one "
                "input after each feature)",
                "shape",
            )
        rows = shape[0]
        if self.all_float and datatype in _FLOAT_TYPES:
            matrix = _numeric_array(name, datatype, data, shape)
            return [
                self._check_float(self.specs[i], name, matrix[:, i]) for i in range(width)
            ], rows
        matrix = _array(name, datatype, data, shape)
        return [
            self._column(self.specs[i], name, datatype, matrix[:, i]) for i in range(width)
        ], rows

    def _from_features(
        self, tensors: list[tuple[str, list[int], str, Data]]
    ) -> tuple[list[Column], int]:
        names = [t[0] for t in tensors]
        unknown = [n for n in names if n not in self.index]
        if unknown:
            raise InvalidInput(
                f"unknown inputs {unknown}: name one input after each feature of "
                f"{self.model.feature_names}, or send one input of shape [N, {len(self.specs)}]",
                "input",
            )
        if len(set(names)) != len(names):
            raise InvalidInput(f"inputs named more than once: {names}", "input")
        missing = [s.name for s in self.specs if s.name not in names]
        if missing:
            raise InvalidInput(f"missing inputs for the features {missing}", "input")
        columns: list[Column | None] = [None] * len(self.specs)
        rows: int | None = None
        for name, given, datatype, data in tensors:
            shape = [given[0]] if len(given) == 2 and given[1] == 1 else given
            if len(shape) != 1:
                raise InvalidInput(
                    f"input {name!r} has shape {shape}; a per-feature input has shape [N] or "
                    "[N, 1]",
                    "shape",
                )
            if rows is not None and shape[0] != rows:
                raise InvalidInput(
                    f"input {name!r} has {shape[0]} rows but the others have {rows}", "shape"
                )
            rows = shape[0]
            index = self.index[name]
            spec = self.specs[index]
            if spec.numeric and spec.dtype.kind == "f" and datatype in _FLOAT_TYPES:
                column = self._check_float(spec, name, _numeric_array(name, datatype, data, shape))
            else:
                column = self._column(spec, name, datatype, _array(name, datatype, data, shape))
            columns[index] = column
        assert rows is not None
        return [c for c in columns if c is not None], rows

    def _check_float(self, spec: FeatureSpec, name: str, column: Column) -> Column:
        if column.dtype != np.float64:
            column = column.astype(np.float64)
        finite = np.isfinite(column)
        if not finite.all():
            nan = np.isnan(column)
            if (~finite & ~nan).any():
                raise InvalidInput(
                    f"input {name!r}: feature {spec.name!r} has an infinite value", "value"
                )
            if not spec.allow_missing:
                raise InvalidInput(
                    f"input {name!r}: feature {spec.name!r} has a missing value (null/NaN) and "
                    "this model was trained without missing values for it",
                    "missing",
                )
        return column

    def _column(self, spec: FeatureSpec, name: str, datatype: str, column: Column) -> Column:
        if spec.numeric:
            return self._numeric_column(spec, name, column)
        return self._string_column(spec, name, datatype, column)

    def _numeric_column(self, spec: FeatureSpec, name: str, column: Column) -> Column:
        if column.dtype.kind == "O":
            try:
                column = np.array([math.nan if v is None else v for v in column], dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise InvalidInput(
                    f"input {name!r}: feature {spec.name!r} is numeric ({spec.dtype}), but "
                    f"the values are not numbers: {error}",
                    "datatype",
                ) from error
        if spec.dtype.kind == "f":
            return self._check_float(spec, name, column)
        if column.dtype.kind == "f":
            column = self._check_float(spec, name, column)
            if np.isnan(column).any():
                return column  # an imputing pipeline takes NaN in float
            if not np.array_equal(column, np.trunc(column)):
                raise InvalidInput(
                    f"input {name!r}: feature {spec.name!r} takes integers ({spec.dtype}); "
                    "got fractional values",
                    "datatype",
                )
        return column.astype(spec.dtype)

    def _string_column(self, spec: FeatureSpec, name: str, datatype: str, column: Column) -> Column:
        if datatype != "BYTES":
            raise InvalidInput(
                f"input {name!r}: feature {spec.name!r} is categorical (strings); send it with "
                f"datatype BYTES, not {datatype}",
                "datatype",
            )
        out = np.empty(len(column), dtype=object)
        for i, value in enumerate(column):
            if value is None:
                if not spec.allow_missing:
                    raise InvalidInput(
                        f"input {name!r}: feature {spec.name!r} has a missing value (null) and "
                        "this model was trained without missing values for it",
                        "missing",
                    )
                out[i] = math.nan
            elif isinstance(value, str):
                out[i] = value
            else:
                raise InvalidInput(
                    f"input {name!r}: feature {spec.name!r} takes strings; got {value!r}",
                    "datatype",
                )
        return out


def _tensor(item: Any, position: int) -> tuple[str, list[int], str, Data]:
    if not isinstance(item, dict):
        raise InvalidInput(f"inputs[{position}] must be an object", "schema")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{position}] needs a non-empty string 'name'", "schema")
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and 0 <= d < 2**31 for d in shape)
    ):
        raise InvalidInput(
            f"input {name!r}: 'shape' must be a non-empty list of non-negative integers", "shape"
        )
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"input {name!r}: unknown datatype {datatype!r}; one of {list(DATATYPES)}", "datatype"
        )
    data = item.get("data")
    if isinstance(data, np.ndarray):
        data = data.tolist() if datatype == "BOOL" else data
    if not isinstance(data, list | np.ndarray):
        raise InvalidInput(f"input {name!r}: 'data' must be a list", "schema")
    return name, shape, datatype, data


_BINARY_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def _attach_binary(inputs: list[Any], binary: bytes) -> None:
    """Move binary tensor data (``parameters.binary_data_size``) into each input's ``data``."""
    offset = 0
    for position, item in enumerate(inputs):
        parameters = item.get("parameters") if isinstance(item, dict) else None
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue
        size = parameters["binary_data_size"]
        name = item.get("name")
        if type(size) is not int or not 0 <= size <= len(binary) - offset:
            raise InvalidInput(
                f"input {name!r}: binary_data_size {size!r} does not fit the "
                f"{len(binary) - offset} binary bytes left",
                "shape",
            )
        if "data" in item:
            raise InvalidInput(f"input {name!r} has both data and binary_data_size", "schema")
        chunk = binary[offset : offset + size]
        offset += size
        datatype = item.get("datatype")
        if not isinstance(datatype, str):
            datatype = repr(datatype)  # not hashable, perhaps: refused below
        if datatype == "BYTES":
            item["data"] = _binary_strings(name, chunk)
        elif datatype in _BINARY_DTYPES:
            dtype = _BINARY_DTYPES[datatype]
            if size % dtype.itemsize:
                raise InvalidInput(
                    f"input {name!r}: {size} binary bytes are not a whole number of {datatype}",
                    "shape",
                )
            item["data"] = np.frombuffer(chunk, dtype=dtype).copy()
        else:
            raise InvalidInput(
                f"inputs[{position}]: unknown datatype {datatype!r}; one of {list(DATATYPES)}",
                "datatype",
            )
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} binary bytes after the last binary input", "shape"
        )


def binary_tensor(name: str, datatype: str, chunk: bytes) -> Data:
    """Raw little-endian tensor bytes (binary extension, gRPC raw contents) as data."""
    if datatype == "BYTES":
        return _binary_strings(name, chunk)
    dtype = _BINARY_DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(
            f"input {name!r}: unknown datatype {datatype!r}; one of {list(DATATYPES)}", "datatype"
        )
    if len(chunk) % dtype.itemsize:
        raise InvalidInput(
            f"input {name!r}: {len(chunk)} raw bytes are not a whole number of {datatype}",
            "shape",
        )
    array = np.frombuffer(chunk, dtype=dtype)
    return array.tolist() if datatype == "BOOL" else array


def _binary_strings(name: Any, chunk: bytes) -> list[Any]:
    """BYTES tensors in binary: each element is a 4-byte little-endian length, then the bytes."""
    values: list[Any] = []
    offset = 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise InvalidInput(f"input {name!r}: truncated BYTES element length", "shape")
        length = int.from_bytes(chunk[offset : offset + 4], "little")
        offset += 4
        if offset + length > len(chunk):
            raise InvalidInput(f"input {name!r}: truncated BYTES element", "shape")
        try:
            values.append(chunk[offset : offset + length].decode())
        except UnicodeDecodeError as error:
            raise InvalidInput(
                f"input {name!r}: a BYTES element is not UTF-8", "datatype"
            ) from error
        offset += length
    return values


def _size(shape: list[int]) -> int:
    return math.prod(shape)


def _numeric_array(name: str, datatype: str, data: Data, shape: list[int]) -> Column:
    """Float data (null becomes NaN), reshaped; the fast path."""
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"input {name!r}: data is not {datatype} numbers of shape {shape}: {error}", "datatype"
        ) from error
    return _reshape(name, array, shape)


def _array(name: str, datatype: str, data: Data, shape: list[int]) -> Column:
    if datatype in _FLOAT_TYPES:
        return _numeric_array(name, datatype, data, shape)
    try:
        if datatype == "BYTES":
            array = np.array(data, dtype=object)
            # a nested list of strings becomes an n-d object array; strings stay whole
            if any(isinstance(v, list) for v in array.ravel()):
                raise ValueError("the nesting does not match a rectangular shape")
        else:
            array = np.asarray(data)
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"input {name!r}: data is not {datatype} values of shape {shape}: {error}", "datatype"
        ) from error
    if datatype in _INT_TYPES and array.size and array.dtype.kind not in "iu":
        raise InvalidInput(f"input {name!r}: datatype {datatype} needs integers", "datatype")
    if datatype == "BOOL" and array.size and array.dtype.kind != "b":
        raise InvalidInput(f"input {name!r}: datatype BOOL needs true/false values", "datatype")
    return _reshape(name, array, shape)


def _reshape(name: str, array: Column, shape: list[int]) -> Column:
    if array.size != _size(shape):
        raise InvalidInput(
            f"input {name!r}: shape {shape} needs {_size(shape)} values, data has {array.size}",
            "shape",
        )
    return array.reshape(shape)


def datatype_of(array: Column) -> str:
    kind = array.dtype.kind
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def encode_response(model: LoadedModel, request: Decoded, prediction: Prediction) -> bytes:
    outputs: list[dict[str, Any]] = []
    if request.want_predict:
        outputs.append(
            {
                "name": "predict",
                "shape": [request.rows],
                "datatype": prediction.datatype,
                "data": prediction.predictions,
            }
        )
    if request.want_proba and prediction.probabilities is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "shape": [request.rows, len(model.classes or ())],
                "datatype": "FP64",
                "parameters": {"classes": model.classes},
                "data": prediction.probabilities,
            }
        )
    return orjson.dumps(
        {
            "model_name": model.name,
            "model_version": model.version,
            "id": request.id,
            "outputs": outputs,
        }
    )
