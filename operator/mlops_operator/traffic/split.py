"""What a traffic provider is asked to do: the split between the variants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OVERRIDE_HEADER = "x-mlops-variant"
"""A request carrying this header with the value stable or canary goes to that variant."""
VARIANT_HEADER = "x-mlops-served-by"
"""The builtin router answers with the variant that served the request."""


@dataclass(frozen=True)
class Sticky:
    """Hash a request header or a cookie so the same key always gets the same variant."""

    kind: Literal["header", "cookie"]
    name: str


@dataclass(frozen=True)
class Split:
    """The canary's share of live traffic, how it is assigned, and mirroring."""

    canary_weight: int = 0
    """Percent of live requests (or, with sticky, of keys) sent to the canary."""
    canary: bool = False
    """A canary exists (its Service can be routed to)."""
    sticky: Sticky | None = None
    mirror: bool = False
    """Shadow: every live request is also copied to the canary; its answers are dropped."""
    override_header: str = OVERRIDE_HEADER

    def __post_init__(self) -> None:
        if not 0 <= self.canary_weight <= 100:
            raise ValueError(f"canary weight {self.canary_weight} is not a percentage")
        if not self.canary and (self.canary_weight or self.mirror):
            raise ValueError("a canary weight or mirroring needs a canary")

    @property
    def stable_weight(self) -> int:
        return 100 - self.canary_weight if self.canary else 100
