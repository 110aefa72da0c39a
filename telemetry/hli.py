"""HLI energy estimates for variants without a GPU reading but with a rated power.

The paper's hardware-latency integration is ``E_q = P x latency / N``: the board's rated
power for the request's wall time, divided among the ``N`` requests of its batch. When the
backend reports the batch size, that is the formula used. When it does not, the batch is
what the proxy itself sees in flight on the variant, integrated over the request's life:
``E_q = P x integral(dt / n(t))`` where ``n(t)`` counts this variant's requests in flight
(the request included). With a constant batch both are the same number. It is an
estimate, labelled ``hli``, never mixed with NVML figures; idle power is not included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["HliEstimator"]


class _Group:
    __slots__ = ("in_flight", "last_t", "phi", "power_w")

    def __init__(self, power_w: float, now: float) -> None:
        self.power_w = power_w
        self.in_flight = 0
        self.phi = 0.0  # integral of dt / n(t) while n > 0, in seconds
        self.last_t = now

    def advance(self, now: float) -> None:
        if self.in_flight > 0:
            self.phi += (now - self.last_t) / self.in_flight
        self.last_t = now


class HliEstimator:
    """Per-variant rated power (W) -> per-request HLI energy (J). Thread-safe, O(1)."""

    def __init__(
        self, rated_power_w: Mapping[str, float], clock: Callable[[], float] = time.monotonic
    ) -> None:
        now = clock()
        self._clock = clock
        self._groups = {g: _Group(p, now) for g, p in rated_power_w.items() if p > 0}
        self._started: dict[str, tuple[_Group, float]] = {}
        self._lock = threading.Lock()

    def has_group(self, group: str) -> bool:
        return group in self._groups

    def request_started(self, request_id: str, group: str) -> None:
        g = self._groups.get(group)
        if g is None:
            return
        with self._lock:
            g.advance(self._clock())
            g.in_flight += 1
            self._started[request_id] = (g, g.phi)

    def request_finished(
        self, request_id: str, *, duration_s: float, batch_size: int | None = None
    ) -> float | None:
        """The request's HLI energy in joules, ``None`` if it was never started here."""
        with self._lock:
            entry = self._started.pop(request_id, None)
            if entry is None:
                return None
            g, phi0 = entry
            g.advance(self._clock())
            g.in_flight -= 1
            share_s = g.phi - phi0
        if batch_size is not None and batch_size >= 1:
            return g.power_w * max(duration_s, 0.0) / batch_size
        return g.power_w * share_s
