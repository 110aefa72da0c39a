"""The normal-mixture boundary against its published forms, and its error rate over every look."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoring.sequential import (
    best_rho,
    confidence_sequence,
    log_mixture_evalue,
    normal_mixture_bound,
    radius_multiplier,
)
from scoring.stats import z_critical


def _confseq_two_sided(v: float, alpha: float, rho: float) -> float:
    """``TwoSidedNormalMixture::bound`` of the confseq package (Howard et al.), as published:
    ``sqrt((v + rho) * (log(1 + v / rho) + 2 * log_threshold))``, ``log_threshold = log(1/α)``."""
    return math.sqrt((v + rho) * (math.log(1 + v / rho) + 2 * math.log(1 / alpha)))


def _conjmix_margin(t: float, rho2: float, alpha: float) -> float:
    """Waudby-Smith et al.'s unit-variance conjugate-mixture margin (their R package):
    ``sqrt(2 (t rho2 + 1) / (t^2 rho2) * log(sqrt(t rho2 + 1) / alpha))``."""
    log_term = math.log(math.sqrt(t * rho2 + 1) / alpha)
    return math.sqrt(2 * (t * rho2 + 1) / (t * t * rho2) * log_term)


@pytest.mark.parametrize("v", [1.0, 10.0, 250.0, 1e4, 1e7])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_boundary_matches_the_published_closed_forms(v: float, alpha: float) -> None:
    rho = best_rho(300.0, alpha)
    u = normal_mixture_bound(v, alpha, rho)
    assert u == pytest.approx(_confseq_two_sided(v, alpha, rho), rel=1e-12)
    # Same boundary on the mean's scale: u(t)/t with ρ (sum scale) = 1/ρ² (their scale).
    assert u / v == pytest.approx(_conjmix_margin(v, 1.0 / rho, alpha), rel=1e-12)


def test_best_rho_is_the_published_choice() -> None:
    # v_opt / (2 log(1/α) + log(1 + 2 log(1/α))) at v_opt = 100, α = 0.05.
    assert best_rho(100.0, 0.05) == pytest.approx(12.600_54, rel=1e-5)


@pytest.mark.parametrize("v", [3.0, 100.0, 5e5])
def test_boundary_is_where_the_mixture_martingale_reaches_one_over_alpha(v: float) -> None:
    alpha, rho = 0.05, best_rho(50.0, 0.05)
    u = normal_mixture_bound(v, alpha, rho)
    assert log_mixture_evalue(u, v, rho) == pytest.approx(math.log(1 / alpha), abs=1e-9)
    assert log_mixture_evalue(0.99 * u, v, rho) < math.log(1 / alpha)


def test_the_price_of_validity_is_a_wider_interval_that_grows_slowly() -> None:
    z = z_critical(0.95)
    m_tuned = radius_multiplier(300, 0.05, 300)
    assert 1.2 * z < m_tuned < 1.6 * z
    assert radius_multiplier(300_000, 0.05, 300) < 2.2 * z  # √(log t) growth, not √t
    cs = confidence_sequence(0.5, 0.1, 300, 0.05, 300)
    assert cs.low == pytest.approx(0.5 - m_tuned * 0.1) and cs.confidence == pytest.approx(0.95)


def test_ever_crossing_stays_below_alpha_where_a_repeated_z_test_does_not() -> None:
    # 2,000 Gaussian random walks of 3,000 steps, looked at after every step.
    rng = np.random.default_rng(11)
    alpha, steps = 0.05, 3000
    walks = np.cumsum(rng.standard_normal((2000, steps)), axis=1)
    t = np.arange(1, steps + 1, dtype=float)
    rho = best_rho(300.0, alpha)
    bound = np.array([normal_mixture_bound(v, alpha, rho) for v in t])
    ever_cs = np.mean(np.any(np.abs(walks) >= bound, axis=1))
    ever_z = np.mean(np.any(np.abs(walks) >= z_critical(1 - alpha) * np.sqrt(t), axis=1))
    assert ever_cs <= alpha
    assert ever_z > 0.4  # the fixed-sample interval, re-read at every step


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        best_rho(10.0, 1.0)
    with pytest.raises(ValueError, match="rho"):
        normal_mixture_bound(1.0, 0.05, 0.0)
    with pytest.raises(ValueError, match="samples"):
        radius_multiplier(0.0, 0.05, 10.0)
