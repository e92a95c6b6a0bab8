"""Why a model store could not take an artifact: unreachable, full or refused, from the error.

Local stores (``file://``, ``pvc://``) fail with an OSError and its errno; object stores through
fsspec with the OSError s3fs translates S3's error codes into, or the client's connection
errors (botocore, aiohttp), whose classes are matched by name so that no client library has to
be importable. The cause chain is searched, since fsspec wraps errors.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from model_server import store
from trainer.errors import PublishError, StoreDeniedError, StoreFullError, StoreUnreachableError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.ENOTCONN,
        errno.ESTALE,
    }
)
FULL_CODES = ("XMinioStorageFull", "QuotaExceeded", "InsufficientStorage", "EntityTooLarge")
DENIED_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled")
UNREACHABLE_CLASSES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "FSTimeoutError",
    }
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def kind(error: BaseException) -> type[PublishError]:
    """The PublishError subclass that says what went wrong (PublishError: something else)."""
    for item in _chain(error):
        names = {cls.__name__ for cls in type(item).__mro__}
        code = getattr(item, "errno", None)
        text = str(item)
        if code in FULL_ERRNOS or any(c in text for c in FULL_CODES):
            return StoreFullError
        if isinstance(item, PermissionError) or code in DENIED_ERRNOS:
            return StoreDeniedError
        if any(c in text for c in DENIED_CODES):
            return StoreDeniedError
        if isinstance(item, ConnectionError | TimeoutError | socket.gaierror):
            return StoreUnreachableError
        if code in UNREACHABLE_ERRNOS or names & UNREACHABLE_CLASSES:
            return StoreUnreachableError
    return PublishError


def where(store_uri: str) -> str:
    """The store as a person would name it: its URI, and the S3 endpoint when one is set."""
    endpoint = os.environ.get(store.S3_ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL")
    if urlsplit(store_uri).scheme == "s3" and endpoint:
        return f"{store_uri} (endpoint {endpoint})"
    return store_uri


def _detail(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def publish_error(store_uri: str, uri: str, error: BaseException) -> PublishError:
    """The one-line error for a failed write of ``uri`` into ``store_uri``."""
    found, detail, name = kind(error), _detail(error), where(store_uri)
    if found is StoreFullError:
        return found(
            f"model store {name} is full ({detail}) writing {uri}: nothing was published; "
            "free space or grow the claim, then retry"
        )
    if found is StoreDeniedError:
        return found(
            f"model store {name} refused to write {uri} ({detail}): nothing was published; "
            "check the claim's access mode and the Pod's fsGroup, or the s3:// credentials"
        )
    if found is StoreUnreachableError:
        return found(
            f"model store {name} is unreachable ({detail}) writing {uri}: nothing was "
            "published; a retry publishes once the store answers"
        )
    return PublishError(f"model store {name}: cannot write {uri} ({detail})")
