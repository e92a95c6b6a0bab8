"""Agreement with a reference model: each prediction compared, row by row, with the reference
model's prediction of the same input.

Under strategy shadow the operator gives the shadow's servers the stable variant's model as the
reference (``MLOPS_REFERENCE_MODEL_URI`` and ``_DIGEST``): the mirrored request then meets both
models in one process, so the agreement is per request and exact whatever the replicas and the
traffic provider (docs/rollout-control.md says why not a join by request id at the router).

The answer never waits for the comparison: a predicted batch (its inputs and predictions) goes
to a bounded queue, and one thread predicts it with the reference and counts each row as
agree or disagree (``mlops_reference_agreement_total``), by the ``source`` of the requests
they came in (model_server.provenance). Rows the queue has no room for, or that the reference
refuses, count as skipped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from model_server.feedback import same_label
from model_server.metric_names import DIRECT
from model_server.model import LoadedModel

log = logging.getLogger(__name__)
PENDING_BATCHES = 256
"""Batches waiting for the reference at most; more are skipped, never waited for."""
MERGED_BATCHES = 64
"""Waiting batches the reference predicts in one call at most."""

Count = Callable[[str, int, str], None]
"""Adds rows to an outcome (agree, disagree, skipped) of a source (router, direct)."""
Columns = list[np.ndarray[Any, Any]]
Batch = tuple[Columns, list[Any], str]
"""A predicted batch: its inputs, its predictions, the source of its requests."""


def agreeing(
    mine: Sequence[Any], reference: Sequence[Any], *, classification: bool, tolerance: float = 0.0
) -> int:
    """How many rows of ``mine`` agree with the reference's: the same class, or (regressors)
    numbers at most ``tolerance`` apart. A NaN agrees with nothing."""
    if len(mine) != len(reference):
        raise ValueError(f"{len(mine)} predictions against {len(reference)} of the reference")
    if classification:
        return sum(1 for a, b in zip(mine, reference, strict=True) if same_label(a, b))
    return sum(
        1 for a, b in zip(mine, reference, strict=True) if abs(float(a) - float(b)) <= tolerance
    )


def _same_inputs(served: Sequence[str], reference: LoadedModel) -> list[int] | None:
    """Where each of the reference's features is among the served model's columns (None:
    the reference needs a feature the served model does not take)."""
    position = {name: i for i, name in enumerate(served)}
    if any(name not in position for name in reference.feature_names):
        return None
    return [position[name] for name in reference.feature_names]


class Comparer:
    """Compares predicted batches with a reference model on a thread of its own."""

    def __init__(
        self,
        reference: LoadedModel,
        served_features: Sequence[str],
        count: Count,
        *,
        classification: bool,
        tolerance: float = 0.0,
        capacity: int = PENDING_BATCHES,
    ) -> None:
        self.reference = reference
        self.count = count
        self.classification = classification
        self.tolerance = tolerance
        self.columns = _same_inputs(served_features, reference)
        if self.columns is None:
            missing = sorted(set(reference.feature_names) - set(served_features))
            log.warning(
                "the reference model needs features the served model does not take (%s): "
                "no row can be compared, all count as skipped",
                ", ".join(missing),
            )
        if classification != reference.is_classifier:
            log.warning("the reference model's task differs from the served model's")
        self._queue: queue.Queue[Batch | None] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._run, name="mlops-agreement", daemon=True)
        self._thread.start()

    def submit(self, columns: Columns, predictions: list[Any], source: str = DIRECT) -> None:
        """Queue a predicted batch for comparison; never blocks (a full queue skips it)."""
        try:
            self._queue.put_nowait((columns, predictions, source))
        except queue.Full:
            self.count("skipped", len(predictions), source)

    def compare(
        self, columns: Columns, predictions: list[Any], source: str = DIRECT
    ) -> tuple[int, int]:
        """Agreeing and disagreeing rows of one batch (skipped ones are counted here)."""
        rows = len(predictions)
        if self.columns is None or not rows:
            self.count("skipped", rows, source)
            return 0, 0
        try:
            same = self._agreeing(columns, predictions)
        except Exception as error:  # the reference refuses what the served model took
            log.debug("the reference model could not predict a batch: %s", error)
            self.count("skipped", rows, source)
            return 0, 0
        self.count("agree", same, source)
        self.count("disagree", rows - same, source)
        return same, rows - same

    def _agreeing(self, columns: Columns, predictions: list[Any]) -> int:
        assert self.columns is not None
        with np.errstate(all="ignore"):
            theirs, _ = self.reference.predict([columns[i] for i in self.columns], False)
        return agreeing(
            predictions,
            theirs.tolist(),
            classification=self.classification,
            tolerance=self.tolerance,
        )

    def compare_all(self, batches: list[Batch]) -> None:
        """The waiting batches of each source with one reference prediction: its per-call
        cost is paid once, so the comparison holds the interpreter less while the shadow
        answers requests. One batch at a time when they cannot be merged or the reference
        refuses the merge."""
        by_source: dict[str, list[Batch]] = {}
        for batch in batches:
            by_source.setdefault(batch[2], []).append(batch)
        for source, mine in by_source.items():
            self._compare_merged(mine, source)

    def _compare_merged(self, batches: list[Batch], source: str) -> None:
        if self.columns is not None and len(batches) > 1:
            predictions = [p for _, batch, _ in batches for p in batch]
            try:
                parts = zip(*(columns for columns, _, _ in batches), strict=True)
                merged = [np.concatenate(column) for column in parts]
                same = self._agreeing(merged, predictions)
            except Exception:  # each batch then says for itself
                pass
            else:
                self.count("agree", same, source)
                self.count("disagree", len(predictions) - same, source)
                return
        for batch in batches:
            self.compare(*batch)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < MERGED_BATCHES:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                batches = [item for item in items if item is not None]
                if batches:
                    self.compare_all(batches)
                if len(batches) < len(items):
                    return
            finally:
                for _ in items:
                    self._queue.task_done()

    def drain(self) -> None:
        """Wait until every queued batch is compared (tests, shutdown)."""
        self._queue.join()

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
