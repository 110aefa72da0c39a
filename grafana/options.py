"""What the generated rules depend on: the scoring settings and the alert thresholds.

The recording rules must compute the SI with the same window, weights, λ, policy and sample
gates as the proxies they aggregate, so they are generated from the same
:class:`~scoring.config.ScoringConfig` (``quanttrap export --config FILE`` reads it from
the proxy's config file; without one, the defaults). Alert thresholds that have no
counterpart in the proxy's config are here, each with the reason for its default.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Final

from scoring.config import ScoringConfig
from scoring.pillars import SIConfig

__all__ = ["DEFAULT_RUNBOOK_BASE", "RuleOptions", "duration"]

DEFAULT_RUNBOOK_BASE: Final = "https://github.com/quanttrap/quanttrap/blob/main/docs/runbooks"
"""Where ``docs/runbooks/`` of this repository is browsable; ``--runbook-base`` overrides it."""

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds`` (``900`` → ``15m``; ``2.5`` → ``2500ms``)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a window must be a positive number of seconds, got {seconds}")
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True, slots=True)
class RuleOptions:
    """Everything the rule files are generated from.

    ``alert_for`` replaces every alert's ``for:`` (e.g. ``0s`` in a test, where waiting five
    minutes is not an option); ``None`` keeps the defaults below.
    """

    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    alert_for: str | None = None
    runbook_base: str = DEFAULT_RUNBOOK_BASE
    shadow_disagreement: float = 0.2
    """Share of comparable shadow answers that differ from the primary's before alerting:
    with exact-match answer comparison a good 4-bit variant disagrees on a few percent."""
    min_comparisons: int = 20
    """Shadow comparisons needed in the window before the disagreement rate is trusted."""
    canary_stall: str = "15m"
    """No canary completed for this long (while canaries ran before) = stalled."""
    energy_lookback: str = "6h"
    """A variant measured by a real method within this long, now ``none``: energy went missing."""
    energy_expected: str = ""
    """Regex of variants whose GPUs must be metered (``method none`` alerts at once); empty:
    only variants that were metered before and stopped are reported."""

    def __post_init__(self) -> None:
        for name in ("canary_stall", "energy_lookback"):
            value = getattr(self, name)
            if not _DURATION.match(value):
                raise ValueError(f"{name} must be a Prometheus duration like 15m, got {value!r}")
        if self.alert_for is not None and not _DURATION.match(self.alert_for):
            raise ValueError(
                f"alert_for must be a Prometheus duration like 5m, got {self.alert_for!r}"
            )
        if not 0.0 < self.shadow_disagreement < 1.0:
            raise ValueError(
                f"shadow_disagreement must be in (0, 1), got {self.shadow_disagreement}"
            )
        if self.min_comparisons < 1:
            raise ValueError(f"min_comparisons must be >= 1, got {self.min_comparisons}")
        if self.energy_expected:
            re.compile(self.energy_expected)

    @property
    def window(self) -> str:
        """The rate window: the proxy's live window, so both see the same evidence."""
        return duration(self.scoring.window_s)

    @property
    def si_config(self) -> SIConfig:
        s = self.scoring
        return SIConfig(
            s.trust_weight, s.economic_weight, s.energy_weight, s.economic_lambda, s.policy
        )

    def for_(self, default: str) -> str:
        return self.alert_for if self.alert_for is not None else default
