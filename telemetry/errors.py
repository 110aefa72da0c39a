"""Errors inside telemetry: counted, logged at a bounded rate, never raised into a request.

Bad configuration is different: it raises :class:`TelemetryConfigError` at start-up, so a
deployment that cannot measure what it was asked to measure does not start silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final, Literal

__all__ = ["COMPONENTS", "Component", "ErrorReporter", "TelemetryConfigError"]

_log = logging.getLogger("quanttrap.telemetry")

Component = Literal[
    "request", "span", "metrics", "energy_source", "sampler", "attribution", "scraper", "hops"
]
COMPONENTS: Final[tuple[Component, ...]] = (
    "request",
    "span",
    "metrics",
    "energy_source",
    "sampler",
    "attribution",
    "scraper",
    "hops",
)


class TelemetryConfigError(Exception):
    """Telemetry cannot start as configured; the message names the setting and its value."""


class ErrorReporter:
    """Counts every error per component and logs at most one line per component per period.

    ``count`` adds one to the ``quanttrap.telemetry.errors`` counter for a component; it is
    injected so that this module needs no metrics SDK (and tests can count in a list).
    """

    def __init__(
        self,
        count: Callable[[Component], None] | None = None,
        *,
        log_period_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._period = log_period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.total = 0

    def report(self, component: Component, exc: BaseException | str) -> None:
        """Record one error. Never raises."""
        try:
            if self._count is not None:
                self._count(component)
            now = self._clock()
            with self._lock:
                self.total += 1
                last = self._last_log.get(component)
                if last is not None and now - last < self._period:
                    self._suppressed[component] = self._suppressed.get(component, 0) + 1
                    return
                self._last_log[component] = now
                suppressed = self._suppressed.pop(component, 0)
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            if isinstance(exc, BaseException):
                _log.warning(
                    "telemetry error in %s: %s: %s%s",
                    component,
                    type(exc).__name__,
                    exc,
                    more,
                    exc_info=exc if _log.isEnabledFor(logging.DEBUG) else None,
                )
            else:
                _log.warning("telemetry error in %s: %s%s", component, exc, more)
        except Exception:  # pragma: no cover - logging itself failed; nothing left to do
            pass
