"""A per-process circuit for a dependency that may be down (Redis as cache or broker).

While the dependency fails, callers skip it for `retry_after` seconds at a time (one probe per period
instead of a connection attempt, and its timeout, on every request) and fall back to what they can do
without it. The outage is logged once when it starts and once when it ends, not per request.
"""

import logging
import threading
import time

logger = logging.getLogger("common.outage")


class Circuit:
    def __init__(self, name: str, *, retry_after: float = 5.0, fallback: str = ""):
        self.name = name
        self.retry_after = retry_after
        self.fallback = fallback
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def should_try(self) -> bool:
        """True when the dependency is up, or when it is time for one probe; False: use the fallback now."""
        if self._down_since is None:
            return True
        with self._lock:
            now = time.monotonic()
            if now >= self._retry_at:
                self._retry_at = now + self.retry_after  # one probe per period, other threads fall back
                return True
            return False

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            first = self._down_since is None
            now = time.monotonic()
            if first:
                self._down_since = now
            self._retry_at = now + self.retry_after
        if first:
            logger.error(
                "%s unreachable (%s: %s)%s; retrying every %ss",
                self.name,
                type(exc).__name__,
                exc,
                f": {self.fallback}" if self.fallback else "",
                self.retry_after,
            )

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.warning("%s reachable again after %.0f s", self.name, time.monotonic() - since)

    def reset(self) -> None:
        """Forget any outage (tests, or a settings change)."""
        with self._lock:
            self._down_since = None
            self._retry_at = 0.0
