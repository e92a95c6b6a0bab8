"""The data plane: what the server does, independent of HTTP (which :mod:`app` handles)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import orjson
from prometheus_client.core import Metric
from pydantic import ValidationError

from model_server import __version__, model
from model_server.batching import AdaptiveBatcher
from model_server.codec import Decoded, Decoder, Prediction, datatype_of, encode_response
from model_server.drift import DriftMonitor
from model_server.errors import (
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    ServerError,
)
from model_server.feedback import FeedbackStore
from model_server.metrics import Metrics
from model_server.protocol import FeedbackRequest
from model_server.settings import ServerSettings

log = logging.getLogger(__name__)

Encoded = TypeVar("Encoded")
SERVER_NAME = "mlops-model-server"
EXTENSIONS = ["model_feedback", "metrics"]


class DataPlane:
    """Loads one model and answers the v2 protocol's questions about it."""

    def __init__(self, settings: ServerSettings, loaded: model.LoadedModel | None = None) -> None:
        self.settings = settings
        self.model: model.LoadedModel | None = None
        self.load_error: str | None = None
        self.metrics: Metrics | None = None
        self._batcher: AdaptiveBatcher[Decoded, Prediction] | None = None
        self._draining = False
        if loaded is not None:
            self._install(loaded)

    # lifecycle -------------------------------------------------------------------------------

    def load(self) -> model.LoadedModel:
        """Fetch, verify and load the model (blocking); ModelLoadError when it must not serve."""
        loaded = model.load(
            self.settings.model_uri,
            self.settings.model_digest,
            name=self.settings.model_name,
            allow_pickle=self.settings.allow_pickle,
            options=model.RuntimeOptions(
                self.settings.runtime,
                self.settings.onnx_intra_op_threads,
                self.settings.onnx_inter_op_threads,
            ),
        )
        self._install(loaded)
        return loaded

    async def load_async(self) -> bool:
        """Load off the event loop; False (and load_error set) when the model must not serve."""
        try:
            await asyncio.to_thread(self.load)
        except ModelLoadError as error:
            self.load_error = str(error)
            log.error("refusing to serve: %s", error)
            return False
        return True

    def _install(self, loaded: model.LoadedModel) -> None:
        metrics = Metrics(loaded.name, self.settings.variant)
        metrics.model_info.labels(
            loaded.name, self.settings.variant, loaded.version, loaded.digest
        ).set(1)
        metrics.serving_with(loaded.runtime_name)
        self.decoder = Decoder(loaded, self.settings.max_rows)
        self.drift = DriftMonitor(
            loaded.metadata,
            loaded.feature_names,
            self.settings.drift_window,
            min_rows=self.settings.drift_min_rows,
        )
        self.feedback_store = FeedbackStore(
            self.settings.feedback_capacity, loaded.is_classifier, loaded.classes
        )
        metrics.add_collector(self._collect_gauges)
        self._batcher = AdaptiveBatcher(
            self._predict_batch,
            max_batch_size=self.settings.max_batch_size,
            max_wait=self.settings.max_batch_wait,
            size=lambda item: item.rows,
            inline=loaded.runtime.inline,
        )
        self._predict_type = (
            datatype_of(np.asarray(loaded.classes)) if loaded.classes is not None else "FP64"
        )
        self.metrics = metrics
        self.model = loaded
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it
        # out of the garbage collector's full collections, which otherwise cost tail latency.
        gc.collect()
        gc.freeze()
        metrics.ready.labels(loaded.name, self.settings.variant).set(1)

    async def shutdown(self) -> None:
        self._draining = True
        if self._batcher is not None:
            await self._batcher.close()

    # health and metadata ---------------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.model is not None and not self._draining

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def _model(self, name: str, version: str | None) -> model.LoadedModel:
        loaded = self.model
        if loaded is None:
            if self.settings.model_name in (None, name):
                raise ModelNotReady(f"model {name!r} is not loaded yet")
            raise ModelNotFound(name, version)
        if name != loaded.name or (version is not None and version != loaded.version):
            raise ModelNotFound(name, version)
        return loaded

    def model_ready(self, name: str, version: str | None) -> bool:
        try:
            self._model(name, version)
        except ModelNotReady:
            return False
        return not self._draining

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        loaded = self._model(name, version)
        inputs = [
            {
                "name": feature,
                "datatype": _datatype_of_dtype(dtype),
                "shape": [-1],
                "parameters": {"dtype": str(dtype)},
            }
            for feature, dtype in zip(loaded.feature_names, loaded.feature_dtypes, strict=True)
        ]
        outputs: list[dict[str, Any]] = [
            {"name": "predict", "datatype": self._predict_type, "shape": [-1]}
        ]
        if loaded.has_proba:
            outputs.append(
                {
                    "name": "predict_proba",
                    "datatype": "FP64",
                    "shape": [-1, len(loaded.classes or ())],
                    "parameters": {"classes": loaded.classes},
                }
            )
        return {
            "name": loaded.name,
            "versions": [loaded.version],
            "platform": "sklearn",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "task": loaded.metadata.task,
                "estimator": loaded.metadata.estimator,
                "digest": loaded.digest,
                "variant": self.settings.variant,
                "runtime": loaded.runtime_name,
            },
        }

    # inference -------------------------------------------------------------------------------

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        binary_header_length: int | None = None,
    ) -> bytes:
        """A REST infer request: its JSON (or binary extension) body -> the JSON response."""
        return await self.infer_with(
            name,
            version,
            lambda decoder: decoder.decode(body, binary_header_length),
            encode_response,
        )

    async def infer_with(
        self,
        name: str,
        version: str | None,
        decode: Callable[[Decoder], Decoded],
        encode: Callable[[model.LoadedModel, Decoded, Prediction], Encoded],
    ) -> Encoded:
        """Decode, predict (batched), encode, account: what every transport's infer does."""
        start = time.perf_counter()
        try:
            loaded = self._model(name, version)
            assert self._batcher is not None
            request = decode(self.decoder)
            if request.rows:
                prediction = await self._batcher.submit(request)
            else:  # nothing to predict: no model call
                prediction = Prediction([], self._predict_type, [] if request.want_proba else None)
        except ServerError as error:
            self.rejected(error, start)
            raise
        response = encode(loaded, request, prediction)
        self.record(200, start)
        return response

    def record(self, code: int, start: float) -> None:
        if self.metrics is not None:
            self.metrics.request(code, time.perf_counter() - start)

    def rejected(self, error: ServerError, start: float) -> None:
        """Account for an inference request that failed (also before it reached infer)."""
        if self.metrics is None:
            return
        self.metrics.request(error.status_code, time.perf_counter() - start)
        if 400 <= error.status_code < 500:
            self.metrics.input_error(error.reason)

    def _predict_batch(self, items: Sequence[Decoded]) -> list[Prediction | BaseException]:
        """Predict a batch (in the predict thread); isolate a request the model rejects."""
        loaded = self.model
        assert loaded is not None
        if len(items) == 1:
            columns = items[0].columns
        else:
            columns = [
                np.concatenate([item.columns[i] for item in items])
                for i in range(len(loaded.feature_names))
            ]
        want_proba = any(item.want_proba for item in items)
        started = time.perf_counter()
        try:
            predictions, probabilities = loaded.predict(columns, want_proba)
        except Exception as error:
            if len(items) > 1:
                return [r for item in items for r in self._predict_batch([item])]
            return [_model_error(error)]
        metrics = self.metrics
        assert metrics is not None
        metrics.predict_took(time.perf_counter() - started)
        rows = len(predictions)
        metrics.batch(rows)
        if loaded.is_classifier:
            labels, counts = np.unique(predictions, return_counts=True)
            for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                metrics.predicted(str(label), count)
        else:
            metrics.predicted("", rows)
        if self.drift.enabled:
            self.drift.observe(columns)
        datatype = datatype_of(predictions)
        values = predictions.tolist()
        results: list[Prediction | BaseException] = []
        offset = 0
        for item in items:
            end = offset + item.rows
            mine = values[offset:end]
            proba = (
                probabilities[offset:end].ravel().tolist()
                if item.want_proba and probabilities is not None
                else None
            )
            self.feedback_store.remember(item.id, mine)
            results.append(Prediction(mine, datatype, proba))
            offset = end
        return results

    # feedback --------------------------------------------------------------------------------

    def feedback(self, name: str, version: str | None, body: bytes) -> bytes:
        self._model(name, version)
        try:
            request = FeedbackRequest.model_validate_json(body)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            raise InvalidInput(f"invalid feedback: {problems}", "feedback") from error
        outcome = self.feedback_store.record(request.id, request.truth)
        metrics = self.metrics
        assert metrics is not None
        labels = (metrics.model, metrics.variant)
        if outcome.absolute_error is None:
            metrics.feedback.labels(*labels, "correct").inc(outcome.correct)
            metrics.feedback.labels(*labels, "incorrect").inc(outcome.incorrect)
        else:
            metrics.feedback.labels(*labels, "observed").inc(len(request.truth))
            metrics.feedback_abs_error.labels(*labels).inc(outcome.absolute_error)
        return orjson.dumps(
            {
                "id": request.id,
                "correct": outcome.correct,
                "incorrect": outcome.incorrect,
                "absolute_error": outcome.absolute_error,
            }
        )

    # metrics ---------------------------------------------------------------------------------

    def metrics_exposition(self) -> bytes:
        return self.metrics.exposition() if self.metrics is not None else b""

    def _collect_gauges(self) -> Iterable[Metric]:
        metrics = self.metrics
        if metrics is None:
            return []
        labels = [metrics.model, metrics.variant]
        drift = metrics.gauge_family(
            "mlops_feature_drift_psi",
            "Population Stability Index of each feature's served inputs against training.",
            ["feature"],
        )
        for feature, value in self.drift.psi().items():
            drift.add_metric([*labels, feature], value)
        rows = metrics.gauge_family(
            "mlops_feature_drift_rows",
            "The recent served rows mlops_feature_drift_psi is based on (at most the window); "
            "no PSI is reported below the server's drift_min_rows.",
            [],
        )
        if self.drift.enabled:
            rows.add_metric(labels, self.drift.effective_rows)
        accuracy = metrics.gauge_family(
            "mlops_online_accuracy",
            "Fraction of rows with feedback whose prediction was correct (classifiers).",
            [],
        )
        share = self.feedback_store.accuracy()
        if share is not None:
            accuracy.add_metric(labels, share)
        return [drift, rows, accuracy]


def _datatype_of_dtype(dtype: np.dtype[Any]) -> str:
    return datatype_of(np.empty(0, dtype=dtype)) if dtype.kind in "iufb" else "BYTES"


def _model_error(error: Exception) -> ServerError:
    if isinstance(error, ValueError | TypeError | KeyError):
        return InvalidInput(f"the model rejected the input: {error}", "model")
    log.exception("predict failed", exc_info=error)
    return ServerError(f"predict failed: {type(error).__name__}: {error}")
