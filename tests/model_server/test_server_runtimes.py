"""The two runtimes: the same answers on the same requests; model.onnx verified like the rest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.semi_supervised import LabelPropagation

from model_server import artifact
from model_server.dataplane import DataPlane
from model_server.errors import ModelLoadError
from model_server.model import RuntimeOptions, load
from model_server.settings import ServerSettings
from model_server.testing import write_artifact

pytestmark = pytest.mark.unit


def iris() -> tuple[pd.DataFrame, pd.Series]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return frame, target


def forest() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    x, y = make_classification(400, 20, n_informative=8, random_state=0)
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(20)]), y


def regression() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    x, y = make_regression(300, 6, noise=5.0, random_state=0)
    return pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]), y * 10


def mixed() -> tuple[pd.DataFrame, pd.Series]:
    """Numeric and categorical columns, both with missing values (the trainer's Pipeline)."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50, 20, n),
            "color": rng.choice(["red", "green", "blue"], n).astype(object),
        }
    )
    frame.loc[::7, "age"] = np.nan
    frame.loc[::11, "color"] = np.nan
    target = ((frame["age"].fillna(40) > 40) ^ (frame["color"] == "red")).astype(int)
    return frame, target


def mixed_pipeline(estimator: Any) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer(
        [("numeric", numeric, ["age", "income"]), ("categorical", categorical, ["color"])]
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


CASES = {
    "iris-logistic": (iris, lambda: make_pipeline(StandardScaler(), LogisticRegression()), "c"),
    "forest": (forest, lambda: RandomForestClassifier(30, random_state=0), "c"),
    "regressor": (regression, lambda: RandomForestRegressor(20, random_state=0), "r"),
    "onehot-imputation": (mixed, lambda: mixed_pipeline(LogisticRegression()), "c"),
    "onehot-imputation-forest": (
        mixed,
        lambda: mixed_pipeline(RandomForestClassifier(20, random_state=0)),
        "c",
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def compiled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, str, pd.DataFrame]:
    data, build, kind = CASES[request.param]
    frame, target = data()
    directory = tmp_path_factory.mktemp(request.param) / "artifact"
    task = "classification" if kind == "c" else "regression"
    digest = write_artifact(directory, build(), frame, target, task=task, onnx=True)
    return request.param, directory, digest, frame


def plane(directory: Path, digest: str, runtime: str) -> DataPlane:
    settings = ServerSettings(model_uri=str(directory), model_digest=digest, runtime=runtime)
    data_plane = DataPlane(settings)
    data_plane.load()
    return data_plane


def requests_for(frame: pd.DataFrame, proba: bool) -> list[bytes]:
    """Per-feature inputs (strings as BYTES, missing as null), 1 row and all rows."""
    bodies = []
    for rows in (frame.iloc[:1], frame.iloc[1:2], frame):
        inputs = []
        for name in frame.columns:
            column = rows[name]
            numeric = pd.api.types.is_numeric_dtype(column)
            values = [None if pd.isna(v) else v for v in column.tolist()]
            if not numeric:
                values = ["purple" if i % 9 == 4 else v for i, v in enumerate(values)]
            inputs.append(
                {
                    "name": name,
                    "shape": [len(rows)],
                    "datatype": "FP64" if numeric else "BYTES",
                    "data": values,
                }
            )
        outputs = [{"name": "predict"}] + ([{"name": "predict_proba"}] if proba else [])
        bodies.append(orjson.dumps({"id": "same", "inputs": inputs, "outputs": outputs}))
    return bodies


def assert_same_answer(batched: dict[str, Any], single: dict[str, Any]) -> None:
    """Equal, but for the last bits of floats: BLAS kernels round a row of a matrix product
    differently depending on how many rows are in it (and on the CPU)."""
    assert {k: v for k, v in batched.items() if k != "outputs"} == {
        k: v for k, v in single.items() if k != "outputs"
    }
    for mine, other in zip(batched["outputs"], single["outputs"], strict=True):
        assert {k: v for k, v in mine.items() if k != "data"} == {
            k: v for k, v in other.items() if k != "data"
        }
        if mine["datatype"] in ("FP64", "FP32"):
            np.testing.assert_allclose(mine["data"], other["data"], rtol=1e-12, atol=1e-15)
        else:
            assert mine["data"] == other["data"]


async def answers(data_plane: DataPlane, bodies: list[bytes]) -> list[dict[str, Any]]:
    """Each body on its own, then all of them at once (batched together)."""
    assert data_plane.model is not None
    name = data_plane.model.name
    alone = [json.loads(await data_plane.infer(name, None, body)) for body in bodies]
    together = await asyncio.gather(*(data_plane.infer(name, None, body) for body in bodies))
    for batched, single in zip((json.loads(answer) for answer in together), alone, strict=True):
        assert_same_answer(batched, single)
    await data_plane.shutdown()
    return alone


def test_the_compiled_model_is_verified_and_digested(
    compiled: tuple[str, Path, str, pd.DataFrame],
) -> None:
    _, directory, digest, frame = compiled
    assert (directory / artifact.ONNX_FILE).is_file()
    check = artifact.read_metadata(directory).onnx
    assert check is not None
    assert check.verified, check.reason
    assert check.rows == len(frame)
    measured = check.max_abs_diff if check.max_rel_diff is None else check.max_rel_diff
    assert measured is not None
    assert measured <= check.tolerance
    assert artifact.compute_digest(directory) == digest


def test_both_runtimes_give_the_same_answers(
    compiled: tuple[str, Path, str, pd.DataFrame],
) -> None:
    name, directory, digest, frame = compiled
    onnx, sklearn = plane(directory, digest, "onnx"), plane(directory, digest, "sklearn")
    assert onnx.model is not None
    assert sklearn.model is not None
    assert (onnx.model.runtime_name, sklearn.model.runtime_name) == ("onnx", "sklearn")
    assert plane(directory, digest, "auto").model.runtime_name == "onnx"  # type: ignore[union-attr]
    assert onnx.model.classes == sklearn.model.classes
    assert onnx.model.has_proba == sklearn.model.has_proba
    metadata = [p.model_metadata(p.model.name, None) for p in (onnx, sklearn)]  # type: ignore[union-attr]
    assert metadata[0]["parameters"].pop("runtime") == "onnx"
    assert metadata[1]["parameters"].pop("runtime") == "sklearn"
    assert metadata[0] == metadata[1]
    bodies = requests_for(frame, onnx.model.has_proba)
    by_runtime = [asyncio.run(answers(p, bodies)) for p in (onnx, sklearn)]
    for ours, theirs in zip(*by_runtime, strict=True):
        assert [(o["name"], o["datatype"], o["shape"]) for o in ours["outputs"]] == [
            (o["name"], o["datatype"], o["shape"]) for o in theirs["outputs"]
        ], name
        assert {k: v for k, v in ours.items() if k != "outputs"} == {
            k: v for k, v in theirs.items() if k != "outputs"
        }
        for mine, other in zip(ours["outputs"], theirs["outputs"], strict=True):
            assert mine.get("parameters") == other.get("parameters")
            if mine["datatype"] == "FP64":
                np.testing.assert_allclose(mine["data"], other["data"], rtol=1e-5, atol=1e-5)
            else:
                assert mine["data"] == other["data"], name


def test_a_tampered_model_onnx_is_refused(
    compiled: tuple[str, Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    _, directory, digest, _ = compiled
    copy = tmp_path / "artifact"
    copy.mkdir()
    for path in directory.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    onnx = bytearray((copy / artifact.ONNX_FILE).read_bytes())
    onnx[-1] ^= 1
    (copy / artifact.ONNX_FILE).write_bytes(bytes(onnx))
    for runtime in ("auto", "onnx", "sklearn"):
        with pytest.raises(ModelLoadError, match="refusing to load it"):
            load(str(copy), digest, options=RuntimeOptions(runtime))
    (copy / artifact.ONNX_FILE).unlink()  # removing it changes the digest too
    with pytest.raises(ModelLoadError, match="refusing to load it"):
        load(str(copy), digest)


def test_an_added_model_onnx_is_refused(tmp_path: Path) -> None:
    frame, target = iris()
    plain = tmp_path / "plain"
    digest = write_artifact(plain, LogisticRegression(max_iter=1000), frame, target)
    compiled = tmp_path / "compiled"
    write_artifact(compiled, LogisticRegression(max_iter=1000), frame, target, onnx=True)
    (plain / artifact.ONNX_FILE).write_bytes((compiled / artifact.ONNX_FILE).read_bytes())
    with pytest.raises(ModelLoadError, match="refusing to load it"):
        load(str(plain), digest)


def test_an_unconvertible_model_is_published_without_onnx(tmp_path: Path) -> None:
    frame, target = iris()
    estimator = make_pipeline(StandardScaler(), LabelPropagation())  # skl2onnx has no converter
    digest = write_artifact(tmp_path, estimator, frame, target, onnx=True)
    assert not (tmp_path / artifact.ONNX_FILE).exists()
    check = artifact.read_metadata(tmp_path).onnx
    assert check is not None
    assert not check.verified
    assert check.reason is not None
    assert "cannot convert" in check.reason
    assert load(str(tmp_path), digest).runtime_name == "sklearn"
    with pytest.raises(ModelLoadError, match=r"--runtime onnx.*cannot convert"):
        load(str(tmp_path), digest, options=RuntimeOptions("onnx"))


def test_runtime_onnx_refuses_an_artifact_from_before_compiled_models(
    iris: tuple[Path, str],
) -> None:
    with pytest.raises(ModelLoadError, match="predates compiled models"):
        load(str(iris[0]), iris[1], options=RuntimeOptions("onnx"))
    assert load(str(iris[0]), iris[1]).runtime_name == "sklearn"


def test_metrics_say_which_runtime_serves(compiled: tuple[str, Path, str, pd.DataFrame]) -> None:
    _, directory, digest, frame = compiled
    for runtime in ("onnx", "sklearn"):
        data_plane = plane(directory, digest, runtime)
        asyncio.run(answers(data_plane, requests_for(frame, False)[:1]))
        text = data_plane.metrics_exposition().decode()
        assert f'mlops_model_runtime{{model="model",runtime="{runtime}",variant="stable"}} 1.0' in (
            text
        )
        assert f'mlops_predict_duration_seconds_count{{model="model",runtime="{runtime}"' in text
