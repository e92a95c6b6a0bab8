"""Remembered predictions and their ground truth: the online accuracy of a variant."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

from model_server.errors import Conflict, InvalidInput, NotFound

CONFLICTED: list[Any] = []
"""Remembered in place of the predictions of an id two requests gave different answers to."""


@dataclass(frozen=True, slots=True)
class Outcome:
    correct: int
    incorrect: int
    absolute_error: float | None


class FeedbackStore:
    """The predictions of the last ``capacity`` requests (bounded; oldest forgotten first).

    Rows are bounded too: at most ``capacity * 16`` rows remembered in all, so a few huge
    requests cannot hold much memory.
    """

    def __init__(
        self, capacity: int, classification: bool, classes: list[Any] | None = None
    ) -> None:
        self.capacity = capacity
        self.classes = classes
        """A classifier's classes: truth that names none of them is refused, not counted."""
        self.max_rows = capacity * 16
        self.classification = classification
        self._entries: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()
        self.correct = 0
        self.incorrect = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, request_id: str, predictions: list[Any]) -> None:
        if not self.capacity or len(predictions) > self.max_rows:
            return
        with self._lock:
            old = self._entries.pop(request_id, None)
            if old is not None:
                self._rows -= len(old)
                if old != predictions:
                    # Ids are the client's: a second request reusing one must not swap the
                    # prediction another client's feedback will be compared with (a retry of
                    # the same request predicts the same and changes nothing).
                    predictions = CONFLICTED
            self._entries[request_id] = predictions
            self._rows += len(predictions)
            while len(self._entries) > self.capacity or self._rows > self.max_rows:
                _, dropped = self._entries.popitem(last=False)
                self._rows -= len(dropped)

    def record(self, request_id: str, truth: list[Any]) -> Outcome:
        """Compare ``truth`` with the remembered predictions; each id is accepted once."""
        with self._lock:
            predictions = self._entries.get(request_id)
            if predictions is None:
                raise NotFound(
                    f"no remembered prediction for request id {request_id!r}: unknown, already "
                    f"given feedback, or older than the last {self.capacity} requests"
                )
            if predictions is CONFLICTED:
                raise Conflict(
                    f"request id {request_id!r} was used by requests with different predictions: "
                    "its feedback cannot be attributed and is refused (use unique ids)"
                )
            if len(truth) != len(predictions):
                raise InvalidInput(
                    f"request {request_id!r} had {len(predictions)} rows; feedback has "
                    f"{len(truth)} truth values",
                    "feedback",
                )
            if self.classification:
                self._check_classes(truth)
                correct = sum(
                    1 for p, t in zip(predictions, truth, strict=True) if same_label(p, t)
                )
                outcome = Outcome(correct, len(truth) - correct, None)
                self.correct += outcome.correct
                self.incorrect += outcome.incorrect
            else:
                try:
                    error = sum(
                        abs(float(p) - float(t)) for p, t in zip(predictions, truth, strict=True)
                    )
                except (TypeError, ValueError) as exc:
                    raise InvalidInput(
                        f"feedback for a regressor needs numbers: {exc}", "feedback"
                    ) from exc
                outcome = Outcome(0, 0, error)
            del self._entries[request_id]
            self._rows -= len(predictions)
            return outcome

    def _check_classes(self, truth: list[Any]) -> None:
        if not self.classes:
            return
        for value in truth:
            if not any(same_label(known, value) for known in self.classes):
                shown = ", ".join(repr(c) for c in self.classes[:20])
                raise InvalidInput(
                    f"feedback truth {value!r} is not a class of this model (classes: {shown})",
                    "feedback",
                )

    def accuracy(self) -> float | None:
        total = self.correct + self.incorrect
        return self.correct / total if total else None


def same_label(prediction: Any, truth: Any) -> bool:
    if prediction == truth:
        return True
    return str(prediction) == str(truth)  # "1" from a client for class 1, and the like
