"""Per-request energy for every variant, by the best method each variant allows.

A variant placed on GPUs the energy source can read is *measured*: its requests get a share
of each sampling interval's counter delta (:mod:`telemetry.attribution`), method
``nvml_counter`` or ``nvml_power``. A variant with no readable GPU but a rated power gets the
paper's HLI estimate (:mod:`telemetry.hli`), method ``hli``. Any other variant's energy is
``None`` with method ``none``: never a silent zero.

Variant keys ("groups") are opaque strings chosen by the caller (``telemetry.core`` uses
``model/variant``). GPUs are named per variant as CUDA indices or UUIDs, or ``"all"`` (every
GPU the source reads: the in-process engine on its host).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from telemetry.attribution import EnergyAttributor, EnergyShare, EnergyTicket
from telemetry.energy_source import EnergyMethod, EnergySource, EnergySourceError, GpuInfo
from telemetry.errors import ErrorReporter, TelemetryConfigError
from telemetry.gpu_visibility import resolve_gpu_refs
from telemetry.hli import HliEstimator
from telemetry.sampler import EnergySampler, OnSample

__all__ = ["EnergyMeter", "GroupEnergy"]

_log = logging.getLogger("quanttrap.telemetry")


@dataclass(frozen=True, slots=True)
class GroupEnergy:
    """Where a variant runs: its GPUs (CUDA indices, UUIDs or ``"all"``) and rated power (W)."""

    gpus: tuple[str | int, ...] | Literal["all"] = ()
    rated_power_w: float | None = None


class EnergyMeter:
    """The proxy-facing energy API; :meth:`open` and :meth:`start` block (run them in a
    worker thread), everything else is cheap and thread-safe."""

    def __init__(
        self,
        source: EnergySource | None,
        groups: Mapping[str, GroupEnergy],
        *,
        interval_s: float,
        reporter: ErrorReporter,
        on_sample: OnSample | None = None,
        required: bool = False,
    ) -> None:
        self._source = source
        self._groups = dict(groups)
        self._interval = interval_s
        self._reporter = reporter
        self._on_sample = on_sample
        self._required = required
        self._attributor = EnergyAttributor({})
        self._sampler: EnergySampler | None = None
        self.gpus: tuple[GpuInfo, ...] = ()
        self._hli = HliEstimator(
            {g: s.rated_power_w for g, s in self._groups.items() if s.rated_power_w}
        )

    def open(self) -> None:
        """Open the source, place each variant on its GPUs, choose each variant's method.

        Raises :class:`TelemetryConfigError` if the source was required and cannot open, or
        if a variant names a GPU that the source does not read.
        """
        if self._source is not None:
            try:
                self.gpus = tuple(self._source.open())
            except EnergySourceError as exc:
                if self._required:
                    raise TelemetryConfigError(
                        f"telemetry.energy.source={self._source.name!r}: {exc}"
                    ) from None
                _log.warning("no GPU energy readings (%s): energy is hli or none", exc)
                self._source = None
        placed = self._place(self.gpus) if self.gpus else {}
        self._attributor = EnergyAttributor(placed)
        self._hli = HliEstimator(
            {
                g: s.rated_power_w
                for g, s in self._groups.items()
                if s.rated_power_w and g not in placed
            }
        )
        if self._source is not None and placed:
            self._sampler = EnergySampler(
                self._source,
                self._attributor,
                interval_s=self._interval,
                reporter=self._reporter,
                on_sample=self._on_sample,
            )
        elif self._source is not None:
            self._source.close()

    def _place(self, gpus: Sequence[GpuInfo]) -> dict[str, tuple[str, ...]]:
        available = [(g.index, g.uuid) for g in gpus]
        placed = {}
        for group, spec in self._groups.items():
            if spec.gpus == "all":
                placed[group] = tuple(u for _, u in available)
            elif spec.gpus:
                try:
                    placed[group] = resolve_gpu_refs(spec.gpus, available)
                except ValueError as exc:
                    raise TelemetryConfigError(f"variant {group!r}: {exc}") from None
        return {g: u for g, u in placed.items() if u}

    def start(self) -> None:
        """Take the baseline sample and start the sampler thread (if anything is measured)."""
        if self._sampler is not None:
            self._sampler.start()

    def stop(self) -> None:
        """Stop sampling; finished requests get their last interval, pending ones ``none``."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None

    @property
    def sampler(self) -> EnergySampler | None:
        return self._sampler

    def gpu_uuids(self, group: str) -> tuple[str, ...]:
        return tuple(self._attributor.groups().get(group, ()))

    def method(self, group: str) -> EnergyMethod:
        """The method ``group``'s requests get now."""
        if self._attributor.has_group(group):
            measured = self._attributor.group_method(group)
            return measured if measured is not None else "nvml_counter"
        return "hli" if self._hli.has_group(group) else "none"

    def measured(self, group: str) -> bool:
        return self._attributor.has_group(group)

    @property
    def metering(self) -> int:
        """Requests (attempts) being metered now: back to 0 when nothing is in flight."""
        return self._attributor.live

    def request_started(self, request_id: str, group: str) -> None:
        if self._attributor.has_group(group):
            self._attributor.request_started(request_id, group)
        else:
            self._hli.request_started(request_id, group)

    def tokens(self, request_id: str, n: int) -> None:
        """``n`` more tokens for ``request_id`` (any thread; a no-op unless measured)."""
        self._attributor.tokens(request_id, n)

    def request_finished(
        self,
        request_id: str,
        group: str,
        *,
        duration_s: float,
        batch_size: int | None = None,
    ) -> EnergyTicket:
        """The request's energy: resolved at the next sample if measured, else now."""
        if self._attributor.has_group(group):
            return self._attributor.request_finished(request_id)
        ticket = EnergyTicket()
        joules = self._hli.request_finished(
            request_id, duration_s=duration_s, batch_size=batch_size
        )
        ticket.resolve(EnergyShare(None, "none") if joules is None else EnergyShare(joules, "hli"))
        return ticket
