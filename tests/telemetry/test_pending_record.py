"""PendingRecord.on_ready: the record reaches its consumer once, energy or no energy."""

from __future__ import annotations

import asyncio
import threading

from scoring.records import RequestRecord
from telemetry.attribution import EnergyShare, EnergyTicket
from telemetry.request import PendingRecord


def _record() -> RequestRecord:
    return RequestRecord("r", "m", "nf4", 4, "primary", "chat", False, 200, 0.0, 0.1)


async def test_on_ready_delivers_the_sampler_figure_on_the_loop() -> None:
    ticket = EnergyTicket()
    got: list[tuple[RequestRecord, int]] = []
    loop_thread = threading.get_ident()
    PendingRecord(_record(), ticket, timeout_s=5).on_ready(
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
    assert thread == loop_thread  # delivered on the event loop, not the sampler thread


async def test_on_ready_times_out_to_unmeasured_and_fires_once() -> None:
    ticket = EnergyTicket()
    got: list[RequestRecord] = []
    PendingRecord(_record(), ticket, timeout_s=0.05).on_ready(got.append)
    await asyncio.sleep(0.15)
    ticket.resolve(EnergyShare(1.0, "nvml_counter", 1))  # too late: already delivered
    await asyncio.sleep(0.05)
    assert len(got) == 1
    assert got[0].energy_j is None and got[0].energy_method == "none"


async def test_on_ready_without_a_ticket_is_immediate() -> None:
    got: list[RequestRecord] = []
    PendingRecord(_record()).on_ready(got.append)
    assert got == [_record()]
