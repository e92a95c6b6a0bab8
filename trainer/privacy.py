"""Protecting the people in the data: drop, hash or keep columns; scan for personal data.

- ``drop``: the column is removed right after the data is read, before anything looks at it
  (the data report, the features, the artifact, the logs).
- ``hash``: each value becomes ``HMAC-SHA256(salt, value)`` (the first 16 hex digits), a
  categorical feature. The salt comes from a Secret (``$MLOPS_PRIVACY_SALT`` in the training
  Pod), or locally from that variable or the file named by ``$MLOPS_PRIVACY_SALT_FILE``.
- ``keep``: columns declared fine: scanned and reported, but never held against the gate.
- The PII scan looks at the remaining columns for values that look like e-mail addresses,
  phone numbers, payment card numbers (Luhn-checked) and national identifiers (US SSN, UK
  NINO). Findings name the column, the kind and how many values matched, never a value.

Pure functions; the salt's I/O is :func:`salt_from_env`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_operator.api.trainingjob import Privacy
from mlops_operator.api.workload import SALT_ENV, SALT_FILE_ENV
from trainer.errors import InvalidSpecError

HASH_DIGITS = 16
SCAN_ROWS = 10_000
"""The scan looks at most at this many values per column (a seeded sample)."""
MIN_SHARE = 0.01
"""A column is flagged when at least this share of its values (and at least one) match."""

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SSN = re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")
NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]", re.I)
CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
PHONE = re.compile(r"(\+\d{1,3}[ .-]?)?(\(\d{1,4}\)[ .-]?)?\d{2,4}([ .-]\d{2,4}){1,4}")
PHONE_DIGITS = (7, 15)


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(text: str) -> bool:
    if not CARD.fullmatch(text):
        return False
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn(digits)


def _phone(text: str) -> bool:
    if not PHONE.fullmatch(text):
        return False
    digits = len(re.sub(r"\D", "", text))
    date = re.fullmatch(r"\d{4}-\d{2}-\d{2}", text)
    return PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1] and not date


KINDS: dict[str, Callable[[str], bool]] = {
    "email": lambda text: EMAIL.search(text) is not None,
    "national_id": lambda text: bool(SSN.fullmatch(text) or NINO.fullmatch(text)),
    "card_number": _card,
    "phone": _phone,
}
"""What looks like personal data, checked in this order (a value counts once)."""


def kind_of(value: str) -> str | None:
    text = value.strip()
    for kind, looks in KINDS.items():
        if looks(text):
            return kind
    return None


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str
    matches: int
    scanned: int
    kept: bool
    """Declared in privacy.keep: reported, not held against the gate."""

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "matches": self.matches,
            "scanned": self.scanned,
            "kept": self.kept,
        }

    def describe(self) -> str:
        kind = self.kind.replace("_", " ")
        return f"{self.column!r} looks like {kind} ({self.matches} of {self.scanned} values)"


def _texts(column: pd.Series, seed: int) -> list[str]:
    present = column.dropna()
    if len(present) > SCAN_ROWS:
        present = present.sample(SCAN_ROWS, random_state=seed)
    if pd.api.types.is_float_dtype(present):
        whole = present[np.mod(present.to_numpy(dtype=float), 1) == 0]
        return [str(int(v)) for v in whole]
    return [str(v) for v in present]


def scan(frame: pd.DataFrame, keep: list[str] | None = None, seed: int = 0) -> list[Finding]:
    """The columns whose values look like personal data, most matches first."""
    findings = []
    for name in frame.columns:
        texts = _texts(frame[name], seed)
        if not texts:
            continue
        counts: dict[str, int] = {}
        for text in texts:
            kind = kind_of(text)
            if kind is not None:
                counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            continue
        kind, matches = max(counts.items(), key=lambda item: item[1])
        if matches / len(texts) >= MIN_SHARE:
            findings.append(Finding(str(name), kind, matches, len(texts), name in (keep or [])))
    return sorted(findings, key=lambda f: (-f.matches, f.column))


def hash_value(value: Any, salt: bytes) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    digest = hmac.new(salt, str(value).encode(), hashlib.sha256).hexdigest()
    return digest[:HASH_DIGITS]


def salt_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The salt: ``$MLOPS_PRIVACY_SALT``, or the content of ``$MLOPS_PRIVACY_SALT_FILE``."""
    environ = os.environ if environ is None else environ
    if environ.get(SALT_ENV):
        return environ[SALT_ENV].encode()
    path = environ.get(SALT_FILE_ENV)
    if path:
        try:
            content = Path(path).read_bytes().strip()
        except OSError as error:
            why = error.strerror
            raise InvalidSpecError(f"{SALT_FILE_ENV}={path}: cannot read it ({why})") from None
        return content or None
    return None


def check(privacy: Privacy, target: str, features: list[str] | None) -> None:
    """Declarations that contradict each other or the dataset (before reading any data)."""
    drop, hashed = set(privacy.drop or []), set(privacy.hash or [])
    both = sorted(drop & hashed)
    if both:
        raise InvalidSpecError(f"privacy: {', '.join(both)} cannot be both dropped and hashed")
    if target in drop | hashed:
        raise InvalidSpecError(f"privacy: the target {target!r} cannot be dropped or hashed")
    listed = sorted(drop & set(features or []))
    if listed:
        raise InvalidSpecError(
            f"privacy.drop: {', '.join(listed)} also in dataset.features; remove it there"
        )


def protect(frame: pd.DataFrame, privacy: Privacy, salt: bytes | None) -> pd.DataFrame:
    """The table with dropped columns removed and hashed columns hashed."""
    missing = [c for c in (*(privacy.drop or []), *(privacy.hash or [])) if c not in frame.columns]
    if missing:
        raise InvalidSpecError(f"privacy: no column(s) {', '.join(missing)} in the dataset")
    out = frame.drop(columns=list(privacy.drop or []))
    if privacy.hash:
        if not salt:
            raise InvalidSpecError(
                f"privacy.hash needs a salt: set privacy.saltSecretRef (a Secret), or "
                f"${SALT_ENV} / ${SALT_FILE_ENV} when training locally"
            )
        for column in privacy.hash:
            out[column] = out[column].astype(object).map(lambda v: hash_value(v, salt))
    return out


def summary(privacy: Privacy, findings: list[Finding]) -> dict[str, Any]:
    """What the data report and the run's report say about privacy."""
    return {
        "dropped": list(privacy.drop or []),
        "hashed": list(privacy.hash or []),
        "kept": list(privacy.keep or []),
        "pii": [f.to_json() for f in findings],
    }


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.kept]
