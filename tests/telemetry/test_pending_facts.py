"""PendingFacts.on_ready: the facts reach their consumer once, energy or no energy."""

from __future__ import annotations

import asyncio
import threading

from telemetry.attribution import EnergyShare, EnergyTicket
from telemetry.request import PendingFacts, TelemetryFacts


def _base() -> TelemetryFacts:
    return TelemetryFacts(trace_id="0" * 32, agent_chain_position=2)


async def test_on_ready_delivers_the_sampler_figure_on_the_loop() -> None:
    ticket = EnergyTicket()
    got: list[tuple[TelemetryFacts, int]] = []
    loop_thread = threading.get_ident()
    PendingFacts(_base(), ticket, timeout_s=5).on_ready(
        lambda r: got.append((r, threading.get_ident()))
    )
    assert got == []
    threading.Thread(target=ticket.resolve, args=(EnergyShare(12.5, "nvml_counter", 3),)).start()
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    ((record, thread),) = got
    assert record.energy_j == 12.5 and record.energy_method == "nvml_counter"
    assert record.agent_chain_position == 2  # the rest of the facts are kept
    assert thread == loop_thread  # delivered on the event loop, not the sampler thread


async def test_on_ready_times_out_to_unmeasured_and_fires_once() -> None:
    ticket = EnergyTicket()
    got: list[TelemetryFacts] = []
    PendingFacts(_base(), ticket, timeout_s=0.05).on_ready(got.append)
    await asyncio.sleep(0.15)
    ticket.resolve(EnergyShare(1.0, "nvml_counter", 1))  # too late: already delivered
    await asyncio.sleep(0.05)
    assert len(got) == 1
    assert got[0].energy_j is None and got[0].energy_method == "none"


async def test_on_ready_without_a_ticket_is_immediate() -> None:
    got: list[TelemetryFacts] = []
    PendingFacts(_base()).on_ready(got.append)
    assert got == [_base()]
