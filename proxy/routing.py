"""Which variant serves a request, and who is next when it cannot.

The first choice is the client's pinned variant (header ``X-Quanttrap-Variant``), else a
weighted draw when ``routing.weights`` is set, else ``routing.primary``. Failover then walks the
model's other variants in config order. A pinned request never fails over: a client that pins a
variant (an evaluation harness, say) wants that variant's answer or an error, not another's.
"""

from __future__ import annotations

import bisect
import itertools
import random

from proxy.config import ModelConfig
from proxy.errors import APIError

__all__ = ["Router"]


class Router:
    def __init__(self, model: ModelConfig, rng: random.Random | None = None) -> None:
        self.model = model
        self._rng = rng or random.Random()
        self._names = [v.name for v in model.variants]
        failover = model.routing.failover
        # Precomputed orders: one list per possible first choice, so routing allocates nothing.
        self._orders = {
            first: [first] + ([n for n in self._names if n != first] if failover else [])
            for first in self._names
        }
        self._pinned = {name: [name] for name in self._names}
        weights = model.routing.weights
        if weights:
            self._weighted = [n for n in self._names if weights.get(n, 0) > 0]
            self._cumulative = list(itertools.accumulate(weights[n] for n in self._weighted))
        else:
            self._weighted = []
            self._cumulative = []

    def order(self, pinned: str | None = None) -> list[str]:
        """Variants to try, in order. Raises :class:`APIError` 400 for an unknown pin."""
        if pinned is not None:
            order = self._pinned.get(pinned)
            if order is None:
                raise APIError(
                    400,
                    f"Unknown variant {pinned!r} for model {self.model.name!r} in header "
                    f"X-Quanttrap-Variant; known variants: {', '.join(self._names)}.",
                    param="X-Quanttrap-Variant",
                    code="unknown_variant",
                )
            return order
        if self._cumulative:
            x = self._rng.random() * self._cumulative[-1]
            first = self._weighted[bisect.bisect_right(self._cumulative, x)]
            return self._orders[first]
        return self._orders[self.model.routing.primary]
