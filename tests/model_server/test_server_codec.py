"""Decoding v2 infer requests: every client mistake is an InvalidInput naming the problem."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from model_server.codec import Decoder
from model_server.errors import InvalidInput
from model_server.model import LoadedModel, load
from model_server.testing import write_artifact

ROW = [5.1, 3.5, 1.4, 0.2]


def body(**request: Any) -> bytes:
    return orjson.dumps(request)


def tensor(name: str, shape: list[int], data: list[Any], datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


@pytest.fixture
def decoder(iris_model: LoadedModel) -> Decoder:
    return Decoder(iris_model, max_rows=100)


def test_one_matrix_input_flat_or_nested(decoder: Decoder) -> None:
    flat = decoder.decode(body(inputs=[tensor("x", [2, 4], ROW + ROW)]))
    nested = decoder.decode(body(inputs=[tensor("x", [2, 4], [ROW, ROW])], id="r1"))
    assert flat.rows == nested.rows == 2
    assert nested.id == "r1"
    assert len(flat.id) == 32  # generated
    for a, b in zip(flat.columns, nested.columns, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(flat.columns[0], [5.1, 5.1])


def test_one_row_vector(decoder: Decoder) -> None:
    assert decoder.decode(body(inputs=[tensor("x", [4], ROW, "FP32")])).rows == 1


def test_one_input_per_feature(decoder: Decoder, iris_model: LoadedModel) -> None:
    inputs = [
        tensor(name, [2] if i % 2 else [2, 1], [value, value])
        for i, (name, value) in enumerate(zip(iris_model.feature_names, ROW, strict=True))
    ]
    decoded = decoder.decode(body(inputs=inputs))
    assert decoded.rows == 2
    np.testing.assert_array_equal(decoded.columns[3], [0.2, 0.2])


def test_integer_datatype_for_float_features(decoder: Decoder) -> None:
    decoded = decoder.decode(body(inputs=[tensor("x", [1, 4], [5, 3, 1, 0], "INT64")]))
    assert decoded.columns[0].dtype == np.float64


def test_outputs(decoder: Decoder) -> None:
    request = body(inputs=[tensor("x", [1, 4], ROW)], outputs=[{"name": "predict_proba"}])
    decoded = decoder.decode(request)
    assert (decoded.want_predict, decoded.want_proba) == (False, True)


@pytest.mark.parametrize(
    ("request_body", "words"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (body(inputs=[]), "'inputs'"),
        (body(inputs=[tensor("x", [1, 3], ROW[:3])]), "shape [N, 4]"),
        (body(inputs=[tensor("x", [2, 4], ROW)]), "needs 8 values"),
        (body(inputs=[tensor("x", [1, 4], ["a", "b", "c", "d"])]), "not FP64 numbers"),
        (body(inputs=[tensor("x", [1, 4], [5.1, None, 1.4, 0.2])]), "missing value"),
        (
            b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[5.1,1e400,1,0]}]}',
            "infinity",
        ),
        (body(inputs=[tensor("x", [1, 4], ROW, "FP128")]), "unknown datatype"),
        (body(inputs=[tensor("x", [1, 4], [1.5, 2, 3, 4], "INT32")]), "needs integers"),
        (body(inputs=[tensor("x", [-1, 4], ROW)]), "non-negative"),
        (body(inputs=[tensor("x", [1, 4], [[1, 2], [3]])]), "FP64"),
        (body(inputs=[{"name": "x", "shape": [1, 4], "datatype": "FP64"}]), "'data'"),
        (body(inputs=[tensor("a", [1], [1.0]), tensor("b", [1], [1.0])]), "unknown inputs"),
        (body(inputs=[tensor("x", [1, 4], ROW)], outputs=[{"name": "nope"}]), "unknown output"),
        (body(inputs=[tensor("x", [1, 4], ROW)], id=7), "'id'"),
        (body(inputs=[tensor("x", [200, 4], ROW * 200)]), "at most 100"),
    ],
)
def test_client_mistakes_name_the_problem(
    decoder: Decoder, request_body: bytes, words: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(words)) as error:
        decoder.decode(request_body)
    assert error.value.status_code == 400


def test_missing_feature_inputs(decoder: Decoder, iris_model: LoadedModel) -> None:
    inputs = [tensor(name, [1], [1.0]) for name in iris_model.feature_names[:3]]
    with pytest.raises(InvalidInput, match="missing inputs for the features"):
        decoder.decode(body(inputs=inputs))


def test_rows_must_agree(decoder: Decoder, iris_model: LoadedModel) -> None:
    inputs = [tensor(name, [1], [1.0]) for name in iris_model.feature_names]
    inputs[2] = tensor(iris_model.feature_names[2], [2], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="rows but the others have 1"):
        decoder.decode(body(inputs=inputs))


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """A categorical column one-hot encoded, and a numeric one with missing values imputed."""
    frame = pd.DataFrame(
        {
            "color": ["red", "green", "blue", "red"] * 10,
            "size": [1.0, np.nan, 3.0, 4.0] * 10,
        }
    )
    target = np.array(["yes", "no", "yes", "no"] * 10)
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["color"]),
            (SimpleImputer(), ["size"]),
        ),
        LogisticRegression(),
    )
    directory = tmp_path_factory.mktemp("mixed") / "artifact"
    digest = write_artifact(directory, model, frame, target, name="mixed")
    return load(str(directory), digest)


def test_categorical_and_missing(mixed_model: LoadedModel) -> None:
    decoder = Decoder(mixed_model, 10)
    decoded = decoder.decode(
        body(
            inputs=[
                tensor("color", [2], ["red", "purple"], "BYTES"),
                tensor("size", [2], [None, 2.0]),
            ]
        )
    )
    predictions, probabilities = mixed_model.predict(decoded.columns, proba=True)
    assert set(predictions.tolist()) <= {"yes", "no"}
    assert probabilities is not None
    assert probabilities.shape == (2, 2)
    matrix = decoder.decode(body(inputs=[tensor("x", [1, 2], ["red", 3], "BYTES")]))
    assert matrix.columns[1].tolist() == [3.0]


def test_categorical_needs_bytes(mixed_model: LoadedModel) -> None:
    decoder = Decoder(mixed_model, 10)
    with pytest.raises(InvalidInput, match="categorical"):
        decoder.decode(body(inputs=[tensor("color", [1], [1.0]), tensor("size", [1], [1.0])]))
    with pytest.raises(InvalidInput, match="takes strings"):
        decoder.decode(
            body(inputs=[tensor("color", [1], [1], "BYTES"), tensor("size", [1], [1.0])])
        )


def binary_request(inputs: list[dict[str, Any]], chunks: list[bytes]) -> tuple[bytes, int]:
    header = orjson.dumps({"inputs": inputs})
    return header + b"".join(chunks), len(header)


def test_binary_tensor_extension(decoder: Decoder) -> None:
    data = np.array([ROW, ROW], dtype="<f4")
    raw = data.tobytes()
    inputs = [
        {
            "name": "x",
            "shape": [2, 4],
            "datatype": "FP32",
            "parameters": {"binary_data_size": len(raw)},
        }
    ]
    body_, length = binary_request(inputs, [raw])
    decoded = decoder.decode(body_, length)
    assert decoded.rows == 2
    np.testing.assert_allclose(decoded.columns[0], [5.1, 5.1], rtol=1e-6)


def test_binary_strings(mixed_model: LoadedModel) -> None:
    def encode(*values: str) -> bytes:
        return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)

    colors = encode("red", "blue")
    sizes = np.array([1.0, 2.0]).tobytes()
    inputs = [
        {
            "name": "color",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(colors)},
        },
        {"name": "size", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
    ]
    decoded = Decoder(mixed_model, 10).decode(*binary_request(inputs, [colors, sizes]))
    assert decoded.columns[0].tolist() == ["red", "blue"]
    inputs[0]["parameters"]["binary_data_size"] = len(colors) - 1
    with pytest.raises(InvalidInput, match="truncated"):
        Decoder(mixed_model, 10).decode(*binary_request(inputs, [colors[:-1], sizes]))


@pytest.mark.parametrize(
    ("size", "chunk", "words"),
    [
        (12, b"x" * 12, "whole number of FP64"),
        (64, b"x" * 16, "does not fit"),
        (8, b"x" * 16, "8 binary bytes after"),
    ],
)
def test_binary_errors(decoder: Decoder, size: int, chunk: bytes, words: str) -> None:
    inputs = [
        {"name": "x", "shape": [1, 4], "datatype": "FP64", "parameters": {"binary_data_size": size}}
    ]
    with pytest.raises(InvalidInput, match=words):
        decoder.decode(*binary_request(inputs, [chunk]))


def test_a_request_id_beyond_the_limit_is_refused(iris_model: LoadedModel) -> None:
    decoder = Decoder(iris_model, max_rows=10, max_id_length=256)
    row = [tensor("x", [1, 4], [5.1, 3.5, 1.4, 0.2])]
    assert decoder.decode(body(id="a" * 256, inputs=row)).id == "a" * 256
    with pytest.raises(InvalidInput, match="'id' has 1000000 characters; at most 256") as error:
        decoder.decode(body(id="a" * 1_000_000, inputs=row))
    assert error.value.status_code == 400
