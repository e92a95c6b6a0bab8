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


class PublishError(TrainerError):
    code, reason = ExitCode.PUBLISH_FAILED, "PublishFailed"


class TerminatedError(TrainerError):
    """SIGTERM arrived (activeDeadlineSeconds, a deleted Pod): stop and still report."""

    code, reason = ExitCode.TERMINATED, "Terminated"
