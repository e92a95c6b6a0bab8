"""The one place the client's errors become kopf's: what to retry, and how soon; and which
errors are a problem of the spec that no retry fixes (they become a condition instead)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import kopf

from mlops_operator import kube, metrics

RETRY_DELAY = 60.0
"""Seconds before a handler that failed on the API server runs again."""
REFUSED = (400, 422)
"""The API server refused the object for what it is: writing it again cannot help."""
TYPED_PATCH = "failed to create typed patch object"
"""How server-side apply answers (with a 500) an object its schema cannot read, e.g. a
quantity 1GB."""
MISSING_KIND_HINT = "install that kind's CRDs, or choose another spec.router.provider"


@dataclass(frozen=True)
class Problem:
    """A reason (CamelCase) and a message naming the object and the field."""

    reason: str
    message: str


def problem(error: kube.KubeError) -> Problem | None:
    """The spec problem the API server's answer shows; None for passing trouble (retried)."""
    if isinstance(error, kube.MissingKind):
        return Problem("MissingKind", f"{error.detail}: {MISSING_KIND_HINT}")
    if error.status in REFUSED or (error.status == 500 and TYPED_PATCH in error.detail):
        return Problem("ChildRejected", f"the API server refused a child: {error.detail}")
    return None


@contextmanager
def handling(kind: str) -> Iterator[None]:
    """Counts and times one reconciliation of ``kind``; maps the client's errors to retries."""
    with metrics.reconciling(kind):
        try:
            yield
        except kube.Conflict as error:
            raise kopf.TemporaryError(f"{error}; reading it again", delay=1) from error
        except kube.MissingKind as error:
            raise kopf.TemporaryError(f"{error}: {MISSING_KIND_HINT}", delay=RETRY_DELAY) from error
        except kube.KubeError as error:
            raise kopf.TemporaryError(str(error), delay=RETRY_DELAY) from error
