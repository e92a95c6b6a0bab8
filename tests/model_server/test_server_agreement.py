"""Agreement with a reference model: rows compared off the request path, counted by outcome."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlops_operator.metrics_sources import parse_exposition
from model_server.agreement import Comparer, agreeing
from model_server.dataplane import DataPlane
from model_server.model import LoadedModel
from model_server.settings import ServerSettings
from model_server.testing import write_artifact


def test_classes_agree_when_equal_even_as_text() -> None:
    assert agreeing([0, 1, 2, "1"], [0, 2, 2, 1], classification=True) == 3


def test_numbers_agree_within_the_tolerance() -> None:
    mine, theirs = [1.0, 2.0, 3.0, math.nan], [1.0, 2.4, 3.6, math.nan]
    assert agreeing(mine, theirs, classification=False) == 1
    assert agreeing(mine, theirs, classification=False, tolerance=0.5) == 2
    assert agreeing(mine, theirs, classification=False, tolerance=1.0) == 3  # NaN never


def test_rows_must_pair_up() -> None:
    with pytest.raises(ValueError, match="3 predictions against 2"):
        agreeing([1, 2, 3], [1, 2], classification=True)


def test_the_reference_is_pinned_like_the_model(iris: tuple[Path, str]) -> None:
    with pytest.raises(ValidationError, match="reference_model_uri and reference_model_digest"):
        ServerSettings(
            model_uri=str(iris[0]), model_digest=iris[1], reference_model_uri=str(iris[0])
        )
    with pytest.raises(ValidationError, match="is not a digest"):
        ServerSettings(
            model_uri=str(iris[0]),
            model_digest=iris[1],
            reference_model_uri=str(iris[0]),
            reference_model_digest="sha256:x",
        )


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    directory = tmp_path_factory.mktemp("shuffled") / "artifact"
    labels = target.sample(frac=1.0, random_state=3).to_numpy()
    return directory, write_artifact(
        directory, LogisticRegression(max_iter=500), frame, labels, name="iris"
    )


def _rows() -> list[list[float]]:
    frame, _ = load_iris(return_X_y=True)
    return [[float(v) for v in row] for row in frame]


def test_a_shadow_counts_each_row_against_the_reference(
    iris: tuple[Path, str], iris_model: LoadedModel, shuffled: tuple[Path, str]
) -> None:
    settings = ServerSettings(
        model_uri=str(shuffled[0]),
        model_digest=shuffled[1],
        variant="canary",
        reference_model_uri=str(iris[0]),
        reference_model_digest=iris[1],
    )
    plane = DataPlane(settings)
    plane.load()
    assert plane.comparer is not None
    rows = _rows()
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    )
    answer = orjson.loads(asyncio.run(plane.infer("iris", None, body)))
    plane.comparer.drain()
    mine = answer["outputs"][0]["data"]
    columns = [[row[i] for row in rows] for i in range(4)]
    theirs, _ = iris_model.predict([np.asarray(c) for c in columns], False)
    expected = sum(1 for a, b in zip(mine, theirs.tolist(), strict=True) if a == b)
    counters = parse_exposition(plane.metrics_exposition().decode())
    assert (counters.agree, counters.disagree, counters.skipped) == (
        expected,
        len(rows) - expected,
        0,
    )
    assert 0 < expected < len(rows)


def test_the_agreement_of_a_batch_is_counted_by_the_source_of_each_request(
    iris: tuple[Path, str], shuffled: tuple[Path, str]
) -> None:
    """Requests of both sources batched into one predict call: each row's agreement under
    its own request's source, so direct rows cannot move what the analysis reads."""
    from mlops_operator.metrics_sources import sources_for

    settings = ServerSettings(
        model_uri=str(shuffled[0]),
        model_digest=shuffled[1],
        variant="canary",
        reference_model_uri=str(iris[0]),
        reference_model_digest=iris[1],
        router_token="r" * 32,
        max_batch_wait=0.05,
        max_batch_size=256,
    )
    plane = DataPlane(settings)
    plane.load()
    assert plane.comparer is not None
    rows = _rows()

    def body(part: list[list[float]]) -> bytes:
        shape = [len(part), 4]
        return orjson.dumps(
            {"inputs": [{"name": "x", "shape": shape, "datatype": "FP64", "data": part}]}
        )

    async def both() -> None:
        await asyncio.gather(
            plane.infer("iris", None, body(rows[:40]), source="router"),
            plane.infer("iris", None, body(rows[40:]), source="direct"),
        )

    asyncio.run(both())
    plane.comparer.drain()
    text = plane.metrics_exposition().decode()
    routed = parse_exposition(text, sources_for(proves_source=True))
    every = parse_exposition(text)
    assert routed.agree + routed.disagree + routed.skipped == 40
    assert every.agree + every.disagree + every.skipped == len(rows)
    assert routed.requests == 1
    assert every.requests == 2
    assert 'mlops_batch_size_count{model="iris",variant="canary"} 1.0' in text  # one batch


def test_every_outcome_is_exported_from_zero(iris: tuple[Path, str]) -> None:
    settings = ServerSettings(
        model_uri=str(iris[0]),
        model_digest=iris[1],
        reference_model_uri=str(iris[0]),
        reference_model_digest=iris[1],
    )
    plane = DataPlane(settings)
    plane.load()
    text = plane.metrics_exposition().decode()
    for outcome in ("agree", "disagree", "skipped"):
        assert f'outcome="{outcome}"' in text


def test_without_a_reference_nothing_is_compared(iris_plane: DataPlane) -> None:
    assert iris_plane.comparer is None
    assert "mlops_reference_agreement_total{" not in iris_plane.metrics_exposition().decode()


def test_a_full_queue_skips_rather_than_waits(iris_model: LoadedModel) -> None:
    counted: dict[str, int] = {}

    def count(outcome: str, rows: int, source: str) -> None:
        assert source == "direct"
        counted[outcome] = counted.get(outcome, 0) + rows

    comparer = Comparer(
        iris_model, iris_model.feature_names, count, classification=True, capacity=1
    )
    columns = [np.asarray([5.1]), np.asarray([3.5]), np.asarray([1.4]), np.asarray([0.2])]
    for _ in range(200):
        comparer.submit(columns, [0])
    comparer.drain()
    comparer.close()
    assert sum(counted.values()) == 200
    assert counted.get("agree", 0) >= 1
    assert counted.get("disagree", 0) == 0


def test_a_reference_missing_a_feature_compares_nothing(iris_model: LoadedModel) -> None:
    counted: dict[str, int] = {}
    comparer = Comparer(
        iris_model,
        ["a", "b", "c", "d"],
        lambda outcome, rows, _source: counted.update({outcome: counted.get(outcome, 0) + rows}),
        classification=True,
    )
    assert comparer.compare([], [0, 1]) == (0, 0)
    comparer.close()
    assert counted == {"skipped": 2}


def test_a_reference_that_cannot_load_stops_the_server(iris: tuple[Path, str]) -> None:
    settings = ServerSettings(
        model_uri=str(iris[0]),
        model_digest=iris[1],
        reference_model_uri=str(iris[0]),
        reference_model_digest="sha256:" + "0" * 64,
    )
    plane = DataPlane(settings)
    assert not asyncio.run(plane.load_async())
    assert plane.load_error is not None
    assert plane.load_error.startswith("reference_model_uri: ")


def test_waiting_batches_are_compared_in_one_call_and_a_refused_one_alone(
    iris_model: LoadedModel,
) -> None:
    counted: dict[str, int] = {}
    comparer = Comparer(
        iris_model,
        iris_model.feature_names,
        lambda outcome, rows, source: counted.update(
            {f"{outcome}/{source}": counted.get(f"{outcome}/{source}", 0) + rows}
        ),
        classification=True,
    )
    setosa = [np.asarray([5.1]), np.asarray([3.5]), np.asarray([1.4]), np.asarray([0.2])]
    pair = [np.asarray([5.1, 6.7]), np.asarray([3.5, 3.0]), np.asarray([1.4, 5.2])]
    pair.append(np.asarray([0.2, 2.3]))
    expected, _ = iris_model.predict(pair, False)
    comparer.compare_all(
        [(setosa, [expected[0]], "router"), (pair, [expected[0], expected[0]], "router")]
    )
    assert counted == {"agree/router": 2, "disagree/router": 1}
    text = [np.asarray(["wide"]), *setosa[1:]]  # the reference refuses this batch only
    comparer.compare_all([(setosa, [expected[0]], "router"), (text, [expected[0]], "router")])
    assert counted == {"agree/router": 3, "disagree/router": 1, "skipped/router": 1}
    # Batches of both sources waiting together: merged per source, counted under each.
    comparer.compare_all([(pair, [expected[0]] * 2, "direct"), (setosa, [expected[0]], "router")])
    comparer.close()
    assert counted == {
        "agree/router": 4,
        "disagree/router": 1,
        "skipped/router": 1,
        "agree/direct": 1,
        "disagree/direct": 1,
    }
