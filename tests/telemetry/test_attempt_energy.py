"""Energy books balance when request ids collide the way they do in production.

A user's request, its failover attempts and each of its shadow copies (one per shadow
variant) all carry the client's request id; only the attempt id is unique. Through
telemetry's observers, on a fake GPU whose clock the test drives: every attempt gets its own
share, and attributed + idle energy equals the counter's delta.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from core.records import AttemptOutcome
from telemetry import FakeEnergySource, TelemetryFacts, VariantSpec
from telemetry.attribution import EnergyAttributor
from telemetry.core import ActiveTelemetry
from tests.telemetry.helpers import MODEL, make_telemetry, value

_VARIANTS = (
    VariantSpec(MODEL, "fp32", 32, gpus="all"),
    VariantSpec(MODEL, "int8", 8, gpus="all"),
    VariantSpec(MODEL, "nf4", 4, gpus="all"),
)


def _outcome() -> AttemptOutcome:
    return AttemptOutcome(status=200, error_type=None, duration_s=0.1, completion_tokens=3)


@pytest.mark.parametrize("seed", range(25))
async def test_books_balance_with_request_ids_shared_by_attempts_and_copies(seed: int) -> None:
    rng = random.Random(seed)
    clock = [0.0]
    source = FakeEnergySource(power_w=300.0, clock=lambda: clock[0])
    tel, registry, _ = make_telemetry(variants=_VARIANTS, source=source)
    await tel.start()
    assert isinstance(tel, ActiveTelemetry)
    sampler = tel.energy_meter.sampler
    assert sampler is not None
    sampler._stop.set()  # samples are driven by hand below
    await asyncio.sleep(0.03)
    sampler.tick()  # the baseline reading, at clock 0
    live = []
    pending = []
    for step in range(rng.randint(5, 30)):
        for _ in range(rng.randint(0, 2)):
            request_id = f"req-{rng.randint(0, 3)}"  # clients reuse ids too
            # The primary and one copy per shadow variant, all under one request id.
            for role, variant in [("primary", "fp32"), ("shadow", "int8"), ("shadow", "nf4")]:
                if role == "shadow" and rng.random() < 0.3:
                    continue
                obs = tel.start_attempt(
                    model=MODEL,
                    variant=variant,
                    attempt_id=f"a{seed}-{step}-{len(live) + len(pending)}",
                    role=role,  # type: ignore[arg-type]
                    request_id=request_id,
                    pair_id=f"pair-{step}",
                )
                live.append(obs)
        for obs in live:
            if rng.random() < 0.7:
                obs.tokens(rng.randint(1, 4))
        for obs in [o for o in live if rng.random() < 0.4]:
            live.remove(obs)
            pending.append(obs.finish(_outcome()))
        clock[0] += rng.uniform(0.01, 0.5)
        sampler.tick()
    for obs in live:
        pending.append(obs.finish(_outcome()))
    clock[0] += 0.1
    sampler.tick()
    facts: list[TelemetryFacts] = [await p for p in pending]
    measured_j = 300.0 * clock[0]  # the counter's delta since the baseline: P x t
    attributed = value(registry, "quanttrap_energy_attributed_joules_total") or 0.0
    idle = value(registry, "quanttrap_energy_idle_joules_total") or 0.0
    # Every attempt got its own measured share: none lost to a slot another one took over.
    assert all(f.energy_method == "nvml_counter" and f.energy_j is not None for f in facts)
    assert sum(f.energy_j or 0.0 for f in facts) == pytest.approx(attributed, rel=1e-6, abs=1e-6)
    assert attributed + idle == pytest.approx(measured_j, rel=1e-6, abs=1e-6)
    await tel.aclose()


def test_a_key_already_metered_is_refused_not_taken_over() -> None:
    attributor = EnergyAttributor({"v": ["GPU-0"]})
    attributor.request_started("attempt-1", "v")
    with pytest.raises(ValueError, match="attempt-1"):
        attributor.request_started("attempt-1", "v")
