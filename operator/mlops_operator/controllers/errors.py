"""The one place the client's errors become kopf's: what to retry, and how soon."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import kopf

from mlops_operator import kube, metrics

RETRY_DELAY = 60.0
"""Seconds before a handler that failed on the API server runs again."""


@contextmanager
def handling(kind: str) -> Iterator[None]:
    """Counts and times one reconciliation of ``kind``; maps the client's errors to retries."""
    with metrics.reconciling(kind):
        try:
            yield
        except kube.Conflict as error:
            raise kopf.TemporaryError(f"{error}; reading it again", delay=1) from error
        except kube.MissingKind as error:
            raise kopf.TemporaryError(
                f"{error}: install that kind's CRDs, or choose another spec.router.provider",
                delay=RETRY_DELAY,
            ) from error
        except kube.KubeError as error:
            raise kopf.TemporaryError(str(error), delay=RETRY_DELAY) from error
