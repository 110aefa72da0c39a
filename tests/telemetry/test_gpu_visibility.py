"""CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, as CUDA reads them."""

from __future__ import annotations

import pytest

from telemetry.gpu_visibility import (
    AmbiguousGpuOrder,
    PhysicalGpu,
    resolve_gpu_refs,
    visible_gpus,
)

# NVML enumerates in PCI order; listed out of order here to check the sorting.
H100 = [
    PhysicalGpu(2, "GPU-cccc-3333", "NVIDIA H100", "00000000:5A:00.0"),
    PhysicalGpu(0, "GPU-aaaa-1111", "NVIDIA H100", "00000000:18:00.0"),
    PhysicalGpu(1, "GPU-bbbb-2222", "NVIDIA H100", "00000000:2A:00.0"),
]
MIXED = [*H100[:2], PhysicalGpu(1, "GPU-dddd-4444", "NVIDIA A10", "00000000:2A:00.0")]


def uuids(gpus: list[PhysicalGpu]) -> list[str]:
    return [g.uuid for g in gpus]


def test_unset_means_all_in_pci_order() -> None:
    assert uuids(visible_gpus(H100, None, None)) == [
        "GPU-aaaa-1111",
        "GPU-bbbb-2222",
        "GPU-cccc-3333",
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("", []),
        ("2,0", ["GPU-cccc-3333", "GPU-aaaa-1111"]),
        (" 1 ", ["GPU-bbbb-2222"]),
        ("GPU-cccc", ["GPU-cccc-3333"]),  # a unique prefix is enough
        ("gpu-bbbb-2222,0", ["GPU-bbbb-2222", "GPU-aaaa-1111"]),
        ("0,7,1", ["GPU-aaaa-1111"]),  # parsing stops at the first invalid entry
        ("0,0,1", ["GPU-aaaa-1111"]),  # ... or a repeated one
        ("-1", []),
        ("MIG-1234,0", []),  # MIG slices are not metered
        ("GPU-", []),  # ambiguous prefix
    ],
)
def test_cuda_visible_devices(env: str, expected: list[str]) -> None:
    assert uuids(visible_gpus(H100, env, None)) == expected


def test_indices_on_a_mixed_host_need_pci_bus_order() -> None:
    with pytest.raises(AmbiguousGpuOrder, match="CUDA_DEVICE_ORDER=PCI_BUS_ID"):
        visible_gpus(MIXED, "1", None)
    assert uuids(visible_gpus(MIXED, "1", "PCI_BUS_ID")) == ["GPU-dddd-4444"]
    assert uuids(visible_gpus(MIXED, "GPU-dddd", None)) == ["GPU-dddd-4444"]


def test_resolve_variant_gpu_refs() -> None:
    available = [(0, "GPU-aaaa-1111"), (1, "GPU-bbbb-2222")]
    assert resolve_gpu_refs([1, "0"], available) == ("GPU-bbbb-2222", "GPU-aaaa-1111")
    assert resolve_gpu_refs(["GPU-bbbb", "bbbb-2222"], available) == ("GPU-bbbb-2222",)
    with pytest.raises(ValueError, match="'5' matches 0 GPUs"):
        resolve_gpu_refs(["5"], available)
