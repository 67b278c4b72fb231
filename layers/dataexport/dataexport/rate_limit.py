"""Per-user limits on export creation: the decision and how it is told to the client."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RateDecision:
    """Whether one more export may be created now, and the state of the caller's window."""

    allowed: bool
    limit: int
    remaining: int
    # When the oldest use in the window leaves it (a slot frees); None if nothing is used.
    resets_at: datetime | None
    now: datetime

    @property
    def retry_after_seconds(self) -> int:
        if self.allowed or self.resets_at is None:
            return 0
        wait = math.ceil((self.resets_at - self.now).total_seconds())
        # A concurrent request may have stamped its use a moment after this one's `now`.
        return min(max(1, wait), int(RATE_WINDOW.total_seconds()))

    def headers(self) -> dict[str, str]:
        """The X-RateLimit-* headers (and Retry-After when refused) of a create answer."""
        reset = self.resets_at or self.now
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(reset.timestamp())),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


def limit_for(org_id: str, default_limit: int, tenant_limits: dict[str, int]) -> int:
    """The tenant's own limit when the deployment sets one, else the default."""
    return tenant_limits.get(org_id, default_limit)
