"""One error base carrying its HTTP status; the HTTP layer maps it to a response in one place."""

from __future__ import annotations


class ServerError(Exception):
    """An error the server answers with ``{"error": message}`` and ``status_code``.

    ``reason`` is a short, stable word for the `mlops_input_errors_total` metric.
    """

    status_code = 500
    reason = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServerError):
    """The client's request is wrong: bad JSON, shape, datatype, values."""

    status_code = 400
    reason = "invalid"

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class NotFound(ServerError):
    status_code = 404
    reason = "not_found"


class ModelNotFound(NotFound):
    def __init__(self, name: str, version: str | None = None) -> None:
        what = f"model {name!r}" + (f" version {version!r}" if version is not None else "")
        super().__init__(f"{what} is not served here")


class Unauthorized(ServerError):
    status_code = 401
    reason = "unauthorized"


class Forbidden(ServerError):
    status_code = 403
    reason = "forbidden"


class Conflict(ServerError):
    status_code = 409
    reason = "conflict"


class ExplainDisabled(NotFound):
    reason = "explain_disabled"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"explanations are not switched on for model {name!r} (mlops serve --explain; "
            "in a ModelDeployment: explain.enabled on the variant)"
        )


class MethodNotAllowed(ServerError):
    status_code = 405
    reason = "method"


class PayloadTooLarge(ServerError):
    status_code = 413
    reason = "too_large"


class ModelNotReady(ServerError):
    status_code = 503
    reason = "not_ready"


class ModelLoadError(Exception):
    """The artifact cannot be served: missing, digest mismatch, untrusted types. Fatal."""
