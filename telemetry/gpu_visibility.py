"""Which physical GPUs a CUDA process sees, and in what order: pure functions, no NVML.

NVML numbers GPUs in PCI bus order; CUDA numbers the GPUs it is allowed to see
(``CUDA_VISIBLE_DEVICES``) in ``CUDA_DEVICE_ORDER``: ``PCI_BUS_ID``, or by default
``FASTEST_FIRST``, whose order among different models CUDA leaves unspecified. So GPUs are
identified by UUID everywhere, and a CUDA index is only translated where it is unambiguous:
on a host whose GPUs are all the same model, or with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.

``CUDA_VISIBLE_DEVICES`` is read the way CUDA reads it: comma-separated indices or
``GPU-`` UUIDs (a unique prefix is enough); parsing stops at the first entry that is invalid,
out of range or repeated, and the entries before it stay visible. ``MIG-`` entries stop it
too: a MIG slice has no energy counter of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AmbiguousGpuOrder", "PhysicalGpu", "resolve_gpu_refs", "visible_gpus"]


class AmbiguousGpuOrder(ValueError):
    """A CUDA index was used where CUDA's device order cannot be known."""


@dataclass(frozen=True, slots=True)
class PhysicalGpu:
    nvml_index: int
    uuid: str
    name: str
    pci_bus_id: str


def _cuda_order(gpus: Sequence[PhysicalGpu]) -> list[PhysicalGpu]:
    return sorted(gpus, key=lambda g: (g.pci_bus_id.lower(), g.nvml_index))


def _match_uuid(entry: str, gpus: Sequence[PhysicalGpu]) -> PhysicalGpu | None:
    prefix = entry.lower()
    if not prefix.startswith("gpu-"):
        prefix = "gpu-" + prefix
    found = [g for g in gpus if g.uuid.lower().startswith(prefix)]
    return found[0] if len(found) == 1 else None


def visible_gpus(
    gpus: Sequence[PhysicalGpu],
    cuda_visible_devices: str | None,
    cuda_device_order: str | None,
) -> list[PhysicalGpu]:
    """The GPUs a CUDA process sees, in CUDA index order.

    Raises :class:`AmbiguousGpuOrder` when ``CUDA_VISIBLE_DEVICES`` uses indices on a host
    with several GPU models and ``CUDA_DEVICE_ORDER`` is not ``PCI_BUS_ID``.
    """
    ordered = _cuda_order(gpus)
    if cuda_visible_devices is None:
        return ordered
    pci_order = (cuda_device_order or "").strip().upper() == "PCI_BUS_ID"
    mixed = len({g.name for g in gpus}) > 1
    seen: list[PhysicalGpu] = []
    for raw in cuda_visible_devices.split(","):
        entry = raw.strip()
        gpu: PhysicalGpu | None = None
        if entry.isdigit():
            if mixed and not pci_order:
                raise AmbiguousGpuOrder(
                    f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} uses indices on a host with "
                    f"different GPU models ({', '.join(sorted({g.name for g in gpus}))}); set "
                    "CUDA_DEVICE_ORDER=PCI_BUS_ID or list GPU UUIDs"
                )
            i = int(entry)
            gpu = ordered[i] if i < len(ordered) else None
        elif entry and not entry.upper().startswith("MIG-"):
            gpu = _match_uuid(entry, ordered)
        if gpu is None or gpu in seen:
            break
        seen.append(gpu)
    return seen


def resolve_gpu_refs(
    refs: Sequence[str | int], available: Sequence[tuple[int, str]]
) -> tuple[str, ...]:
    """UUIDs of a variant's GPUs, given as CUDA indices or (prefixes of) UUIDs.

    ``available`` holds ``(cuda_index, uuid)`` of the GPUs the energy source reads.
    Raises :class:`ValueError` naming the reference that matches no GPU (or several).
    """
    out: list[str] = []
    for ref in refs:
        text = str(ref).strip()
        if text.isdigit():
            hits = [u for i, u in available if i == int(text)]
        else:
            p = text.lower() if text.lower().startswith("gpu-") else "gpu-" + text.lower()
            hits = [u for _, u in available if u.lower().startswith(p)]
        if len(hits) != 1:
            known = ", ".join(f"{i}={u}" for i, u in available) or "none"
            raise ValueError(f"GPU {ref!r} matches {len(hits)} GPUs (available: {known})")
        if hits[0] not in out:
            out.append(hits[0])
    return tuple(out)
