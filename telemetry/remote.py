"""GPU energy read over HTTP, for a proxy that does not run on the GPU's host.

:class:`RemoteEnergySource` reads a ``quanttrap nvml-agent`` (``GET /v1/gpus``, see
:mod:`telemetry.agent`). :class:`DcgmEnergySource` reads NVIDIA's DCGM exporter:
``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ, from the same NVML counter, hence
``nvml_counter``), ``DCGM_FI_DEV_POWER_USAGE`` (W; integrated when the energy field is not
exported) and ``DCGM_FI_DEV_FB_USED`` (MiB). Both use a synchronous httpx client: they run
on the sampler thread, never on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import httpx
from prometheus_client.parser import text_string_to_metric_families

from telemetry.energy_source import EnergySourceError, GpuInfo, GpuReading, MeasuredMethod

__all__ = ["DcgmEnergySource", "RemoteEnergySource", "parse_dcgm_metrics"]

_DCGM_ENERGY: Final = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
_DCGM_POWER: Final = "DCGM_FI_DEV_POWER_USAGE"
_DCGM_FB_USED: Final = "DCGM_FI_DEV_FB_USED"
_DCGM_FIELDS: Final = (_DCGM_ENERGY, _DCGM_POWER, _DCGM_FB_USED)
_METHODS: Final = ("nvml_counter", "nvml_power")


def _get(client: httpx.Client, url: str) -> httpx.Response:
    try:
        response = client.get(url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise EnergySourceError(f"GET {url}: {type(exc).__name__}: {exc}") from None
    return response


class RemoteEnergySource:
    """The GPUs of a ``quanttrap nvml-agent`` at ``base_url``."""

    name = "remote"

    def __init__(
        self, base_url: str, *, timeout_s: float = 1.0, client: httpx.Client | None = None
    ) -> None:
        self._url = base_url.rstrip("/") + "/v1/gpus"
        self._client = client or httpx.Client(timeout=timeout_s)
        self._own_client = client is None

    def _fetch(self) -> list[dict[str, Any]]:
        body = _get(self._client, self._url).json()
        if not isinstance(body, list):
            raise EnergySourceError(f"{self._url}: expected a JSON list, got {type(body).__name__}")
        return body

    def open(self) -> Sequence[GpuInfo]:
        try:
            return tuple(
                GpuInfo(uuid=str(g["uuid"]), index=int(g["index"]), name=str(g["name"]))
                for g in self._fetch()
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EnergySourceError(f"{self._url}: malformed GPU list: {exc!r}") from None

    def read(self) -> Sequence[GpuReading]:
        try:
            out = []
            for g in self._fetch():
                method = g["method"]
                if method not in _METHODS:
                    raise ValueError(f"unknown method {method!r}")
                power, memory = g.get("power_mw"), g.get("memory_used_bytes")
                out.append(
                    GpuReading(
                        uuid=str(g["uuid"]),
                        energy_mj=float(g["energy_mj"]),
                        power_mw=None if power is None else float(power),
                        memory_used_bytes=None if memory is None else int(memory),
                        method=method,
                        timestamp_s=float(g["timestamp"]),
                    )
                )
            return tuple(out)
        except (KeyError, TypeError, ValueError) as exc:
            raise EnergySourceError(f"{self._url}: malformed reading: {exc!r}") from None

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def parse_dcgm_metrics(text: str) -> dict[str, dict[str, Any]]:
    """Per GPU UUID: ``index``, ``name`` and the values of the three DCGM fields present.

    Lines of other series are dropped before parsing: a DCGM exporter's page is large and
    only three fields matter.
    """
    kept = "\n".join(
        line
        for line in text.splitlines()
        if any(f in line for f in _DCGM_FIELDS) and not line.startswith("# HELP")
    )
    gpus: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(kept + "\n"):
        for sample in family.samples:
            field = next((f for f in _DCGM_FIELDS if sample.name.startswith(f)), None)
            uuid = sample.labels.get("UUID") or sample.labels.get("uuid")
            if field is None or not uuid:
                continue
            gpu = gpus.setdefault(
                uuid,
                {
                    "index": int(sample.labels.get("gpu", len(gpus))),
                    "name": sample.labels.get("modelName", ""),
                },
            )
            gpu[field] = float(sample.value)
    return gpus


class DcgmEnergySource:
    """The GPUs a DCGM exporter reports at ``metrics_url``."""

    name = "dcgm"

    def __init__(
        self,
        metrics_url: str,
        *,
        timeout_s: float = 1.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = metrics_url
        self._client = client or httpx.Client(timeout=timeout_s)
        self._own_client = client is None
        self._clock = clock
        self._integrated: dict[str, tuple[float, float, float]] = {}  # uuid -> (t, p_mw, mJ)

    def _fetch(self) -> dict[str, dict[str, Any]]:
        try:
            return parse_dcgm_metrics(_get(self._client, self._url).text)
        except ValueError as exc:
            raise EnergySourceError(f"{self._url}: unparsable metrics: {exc}") from None

    def open(self) -> Sequence[GpuInfo]:
        gpus = self._fetch()
        usable = {u: g for u, g in gpus.items() if _DCGM_ENERGY in g or _DCGM_POWER in g}
        if gpus and not usable:
            raise EnergySourceError(
                f"{self._url}: neither {_DCGM_ENERGY} nor {_DCGM_POWER} is exported"
            )
        return tuple(
            GpuInfo(uuid=u, index=int(g["index"]), name=str(g["name"])) for u, g in usable.items()
        )

    def read(self) -> Sequence[GpuReading]:
        now, wall = self._clock(), time.time()
        out = []
        for uuid, g in self._fetch().items():
            power_w = g.get(_DCGM_POWER)
            power_mw = None if power_w is None else power_w * 1000.0
            method: MeasuredMethod
            if _DCGM_ENERGY in g:
                energy_mj, method = g[_DCGM_ENERGY], "nvml_counter"
            elif power_mw is not None:
                t0, p0, e0 = self._integrated.get(uuid, (now, power_mw, 0.0))
                energy_mj, method = e0 + (p0 + power_mw) / 2.0 * (now - t0), "nvml_power"
                self._integrated[uuid] = (now, power_mw, energy_mj)
            else:
                continue
            fb = g.get(_DCGM_FB_USED)
            out.append(
                GpuReading(
                    uuid=uuid,
                    energy_mj=energy_mj,
                    power_mw=power_mw,
                    memory_used_bytes=None if fb is None else int(fb * 1024 * 1024),
                    method=method,
                    timestamp_s=wall,
                )
            )
        return tuple(out)

    def close(self) -> None:
        if self._own_client:
            self._client.close()
