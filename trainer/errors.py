"""Every way a training run can fail, each with its own exit code.

The exit code is the contract with whoever runs `mlops train` (the TrainingJob controller reads
it from the Pod, a script from ``$?``); the message is one line naming the problem.
"""

from __future__ import annotations

from mlops_operator.api.workload import ExitCode


class TrainerError(Exception):
    """A failure with a one-line message, a reason (CamelCase) and an exit code."""

    code: ExitCode = ExitCode.INTERNAL
    reason: str = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class InvalidSpecError(TrainerError):
    code, reason = ExitCode.INVALID_SPEC, "InvalidSpec"


class DataUnreadableError(TrainerError):
    code, reason = ExitCode.DATA_UNREADABLE, "DataUnreadable"


class DataMalformedError(TrainerError):
    code, reason = ExitCode.DATA_MALFORMED, "DataMalformed"


class MissingColumnError(TrainerError):
    code, reason = ExitCode.MISSING_COLUMN, "MissingColumn"


class EmptyDatasetError(TrainerError):
    code, reason = ExitCode.EMPTY_DATASET, "EmptyDataset"


class EstimatorNotAllowedError(TrainerError):
    code, reason = ExitCode.ESTIMATOR_NOT_ALLOWED, "EstimatorNotAllowed"


class BadParamsError(TrainerError):
    code, reason = ExitCode.BAD_PARAMS, "BadParams"


class TrainingFailedError(TrainerError):
    code, reason = ExitCode.TRAINING_FAILED, "TrainingFailed"


class InvalidStoreError(TrainerError):
    """The model store URI cannot name a store (no bucket or claim, an unknown scheme)."""

    code, reason = ExitCode.INVALID_STORE, "InvalidStore"


class PublishError(TrainerError):
    code, reason = ExitCode.PUBLISH_FAILED, "PublishFailed"


class StoreUnreachableError(PublishError):
    """The model store did not answer (connection refused, DNS, timeout): retried."""

    code, reason = ExitCode.STORE_UNREACHABLE, "ModelStoreUnreachable"


class StoreFullError(PublishError):
    """The model store has no space (ENOSPC, a quota): retried, space may be freed."""

    code, reason = ExitCode.STORE_FULL, "ModelStoreFull"


class StoreDeniedError(PublishError):
    """The model store refused the write (permission, read-only, credentials): not retried."""

    code, reason = ExitCode.STORE_DENIED, "ModelStoreDenied"


class TerminatedError(TrainerError):
    """SIGTERM arrived (activeDeadlineSeconds, a deleted Pod): stop and still report."""

    code, reason = ExitCode.TERMINATED, "Terminated"


class PrivacyGateFailedError(TrainerError):
    """The data holds columns that look like personal data and privacy.piiGate is fail."""

    code, reason = ExitCode.PRIVACY_GATE_FAILED, "PrivacyGateFailed"


class TrackingFailedError(TrainerError):
    """MLflow could not be reached and tracking.required is set."""

    code, reason = ExitCode.TRACKING_FAILED, "TrackingFailed"
