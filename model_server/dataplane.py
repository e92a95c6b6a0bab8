"""The data plane: what the server does, independent of HTTP (which :mod:`app` handles)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd
from prometheus_client.core import CounterMetricFamily, Metric
from pydantic import ValidationError

from model_server import __version__, model
from model_server.agreement import Comparer
from model_server.batching import AdaptiveBatcher
from model_server.codec import Decoded, Decoder, Prediction, datatype_of, encode_response
from model_server.drift import DriftMonitor
from model_server.errors import (
    ExplainDisabled,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    ServerError,
)
from model_server.events import ServerEvents
from model_server.feedback import FeedbackStore
from model_server.metric_names import DIRECT
from model_server.metrics import Metrics
from model_server.protocol import FeedbackRequest
from model_server.provenance import Provenance
from model_server.settings import ServerSettings

log = logging.getLogger(__name__)

Encoded = TypeVar("Encoded")
SERVER_NAME = "mlops-model-server"
EXTENSIONS = ["model_feedback", "metrics", "model_explain"]


class DataPlane:
    """Loads one model and answers the v2 protocol's questions about it."""

    def __init__(
        self,
        settings: ServerSettings,
        loaded: model.LoadedModel | None = None,
        reference: model.LoadedModel | None = None,
    ) -> None:
        self.settings = settings
        token = settings.router_token
        self.provenance = Provenance(token.get_secret_value() if token is not None else None)
        """Tells router-proved requests from direct ones (the metrics' source label)."""
        self.model: model.LoadedModel | None = None
        self.comparer: Comparer | None = None
        """Compares each prediction with the reference model's (strategy shadow: stable's)."""
        self.load_error: str | None = None
        self.metrics: Metrics | None = None
        self._batcher: AdaptiveBatcher[Decoded, Prediction] | None = None
        self._draining = False
        self._explaining = asyncio.Semaphore(1)  # explanations are CPU-bound: one at a time
        self.events = ServerEvents()
        """Counted, not logged per request: timeouts, evictions, clients gone, internal errors."""
        self._logged_errors: set[str] = set()
        if loaded is not None:
            self._install(loaded, reference)

    # lifecycle -------------------------------------------------------------------------------

    def load(self) -> model.LoadedModel:
        """Fetch, verify and load the model (blocking); ModelLoadError when it must not serve."""
        settings = self.settings
        loaded = model.load(
            settings.model_uri,
            settings.model_digest,
            name=settings.model_name,
            allow_pickle=settings.allow_pickle,
            options=model.RuntimeOptions(
                settings.runtime,
                settings.onnx_intra_op_threads,
                settings.onnx_inter_op_threads,
                explain=settings.explain,
                explain_samples=settings.explain_samples,
            ),
        )
        reference = None
        if settings.reference_model_uri and settings.reference_model_digest:
            try:
                reference = model.load(
                    settings.reference_model_uri,
                    settings.reference_model_digest,
                    allow_pickle=settings.allow_pickle,
                    options=model.RuntimeOptions(
                        "auto", settings.onnx_intra_op_threads, settings.onnx_inter_op_threads
                    ),
                )
            except ModelLoadError as error:
                raise ModelLoadError(f"reference_model_uri: {error}") from error
        self._install(loaded, reference)
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

    def _install(
        self, loaded: model.LoadedModel, reference: model.LoadedModel | None = None
    ) -> None:
        metrics = Metrics(loaded.name, self.settings.variant)
        metrics.model_info.labels(
            loaded.name, self.settings.variant, loaded.version, loaded.digest
        ).set(1)
        metrics.serving_with(loaded.runtime_name)
        self.decoder = Decoder(loaded, self.settings.max_rows, self.settings.max_request_id_length)
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
        if reference is not None:
            metrics.comparing()
            self.comparer = Comparer(
                reference,
                loaded.feature_names,
                metrics.compared,
                classification=loaded.is_classifier,
                tolerance=self.settings.agreement_tolerance,
            )
        self.metrics = metrics
        self.model = loaded
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it
        # out of the garbage collector's full collections, which otherwise cost tail latency.
        gc.collect()
        gc.freeze()
        metrics.ready.labels(loaded.name, self.settings.variant).set(1)

    def draining(self) -> None:
        self._draining = True

    async def shutdown(self) -> None:
        self._draining = True
        if self._batcher is not None:
            await self._batcher.close()
        if self.comparer is not None:
            await asyncio.to_thread(self.comparer.close)

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
        source: str = DIRECT,
    ) -> bytes:
        """A REST infer request: its JSON (or binary extension) body -> the JSON response."""
        return await self.infer_with(
            name,
            version,
            lambda decoder: decoder.decode(body, binary_header_length),
            encode_response,
            source,
        )

    async def infer_with(
        self,
        name: str,
        version: str | None,
        decode: Callable[[Decoder], Decoded],
        encode: Callable[[model.LoadedModel, Decoded, Prediction], Encoded],
        source: str = DIRECT,
    ) -> Encoded:
        """Decode, predict (batched), encode, account: what every transport's infer does.
        ``source``: where the request came from (model_server.provenance), a metrics label."""
        start = time.perf_counter()
        try:
            loaded = self._model(name, version)
            assert self._batcher is not None
            request = decode(self.decoder)
            if source != request.source:
                request = replace(request, source=source)
            if request.rows:
                prediction = await self._batcher.submit(request)
            else:  # nothing to predict: no model call
                prediction = Prediction([], self._predict_type, [] if request.want_proba else None)
        except ServerError as error:
            self.rejected(error, start, source)
            raise
        response = encode(loaded, request, prediction)
        self.record(200, start, source)
        return response

    async def explain(self, name: str, version: str | None, body: bytes) -> bytes:
        """POST .../explain: an infer request's body -> per-feature attributions (shap)."""
        start = time.perf_counter()
        loaded = self._model(name, version)
        explainer = loaded.explainer
        if explainer is None:
            raise ExplainDisabled(loaded.name)
        request = self.decoder.decode(body)
        limit = self.settings.explain_max_rows
        if request.rows > limit:
            raise InvalidInput(
                f"{request.rows} rows to explain; at most {limit} per request (--explain-max-rows)",
                "explain_rows",
            )
        frame = pd.DataFrame(
            dict(zip(loaded.feature_names, request.columns, strict=True)), copy=False
        )
        async with self._explaining:
            try:
                explanation = await asyncio.to_thread(explainer.explain, frame)
            except (ValueError, TypeError, KeyError) as error:
                raise InvalidInput(f"the model rejected the input: {error}", "model") from error
        metrics = self.metrics
        assert metrics is not None
        metrics.explained(
            explanation.method,
            request.rows,
            explanation.evaluations,
            time.perf_counter() - start,
        )
        return orjson.dumps(
            {
                "model_name": loaded.name,
                "model_version": loaded.version,
                "id": request.id,
                **explanation.to_json(),
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    def record(self, code: int, start: float, source: str = DIRECT) -> None:
        if self.metrics is not None:
            self.metrics.request(code, time.perf_counter() - start, source)

    def rejected(self, error: ServerError, start: float, source: str = DIRECT) -> None:
        """Account for an inference request that failed (also before it reached infer)."""
        if self.metrics is None:
            return
        self.metrics.request(error.status_code, time.perf_counter() - start, source)
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
            # Overflow in the model's arithmetic on extreme (finite) inputs: counted, not
            # printed once per request; the model still refuses what it cannot handle.
            with np.errstate(over="call", divide="call", invalid="call", call=self._numeric):
                predictions, probabilities = loaded.predict(columns, want_proba)
        except Exception as error:
            if len(items) > 1:
                return [r for item in items for r in self._predict_batch([item])]
            return [self._model_error(error)]
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
            with np.errstate(all="ignore"):
                self.drift.observe(columns)
        datatype = datatype_of(predictions)
        values = predictions.tolist()
        if self.comparer is not None:
            self._compare(self.comparer, items, columns, values)
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

    @staticmethod
    def _compare(
        comparer: Comparer, items: Sequence[Decoded], columns: list[Any], values: list[Any]
    ) -> None:
        """A predicted batch to the comparison, in one part per source of its requests."""
        sources = {item.source for item in items}
        if len(sources) == 1:
            comparer.submit(columns, values, items[0].source)
            return
        rows: dict[str, list[int]] = {source: [] for source in sources}
        offset = 0
        for item in items:
            rows[item.source] += range(offset, offset + item.rows)
            offset += item.rows
        for source, index in rows.items():
            picked = np.asarray(index, dtype=np.intp)
            comparer.submit(
                [column[picked] for column in columns], [values[i] for i in index], source
            )

    def _numeric(self, kind: str, flag: int) -> None:
        self.events.count("numeric_warning")

    def _model_error(self, error: Exception) -> ServerError:
        if isinstance(error, ValueError | TypeError | KeyError):
            return InvalidInput(f"the model rejected the input: {error}", "model")
        self.internal_error(error, "predict")
        return ServerError(f"predict failed: {type(error).__name__}: {error}")

    def internal_error(self, error: BaseException, where: str) -> None:
        """A server bug: counted; its traceback logged once per kind, not once per request."""
        self.events.count("internal_error")
        kind = f"{where}: {type(error).__name__}"
        if kind not in self._logged_errors:
            self._logged_errors.add(kind)
            log.error(
                "internal error on %s (logged once; mlops_server_events_total counts them)",
                where,
                exc_info=error,
            )

    # feedback --------------------------------------------------------------------------------

    def feedback(self, name: str, version: str | None, body: bytes, source: str = DIRECT) -> bytes:
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
            metrics.feedback.labels(*labels, "correct", source).inc(outcome.correct)
            metrics.feedback.labels(*labels, "incorrect", source).inc(outcome.incorrect)
        else:
            metrics.feedback.labels(*labels, "observed", source).inc(len(request.truth))
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
        events = CounterMetricFamily(
            "mlops_server_events",
            "Connection and request events counted instead of logged: header_timeout, "
            "body_timeout, connection_evicted, connection_refused, client_gone, internal_error, "
            "numeric_warning.",
            labels=["model", "variant", "event"],
        )
        for event, count in sorted(self.events.counts.items()):
            events.add_metric([*labels, event], count)
        return [drift, rows, accuracy, events]


def _datatype_of_dtype(dtype: np.dtype[Any]) -> str:
    return datatype_of(np.empty(0, dtype=dtype)) if dtype.kind in "iufb" else "BYTES"
