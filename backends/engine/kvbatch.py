"""The running batch's key/value cache: rows join and leave between decode steps.

Sequences of different lengths share one ``transformers.DynamicCache`` by left padding: every
row's cache is right-aligned, and a ``[batch, length]`` attention mask marks the padded slots
(0) so attention ignores them. Joining rows (prefilled in a cache of their own) are padded on
the left to the common length and concatenated; leaving rows are dropped with an index select,
then columns that are padding in every remaining row are trimmed so a long finished request
does not keep the others' attention wide. Padded key/value slots hold zeros, never NaN, so the
masked products stay exactly zero.

Only the ``keys`` / ``values`` tensors (``[batch, heads, length, head_dim]``) of each layer of
the cache are touched: the layout every full-attention ``DynamicLayer`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

import torch
from transformers import DynamicCache

__all__ = ["KVBatch", "KVLayer"]


class KVLayer(Protocol):
    """One layer of the cache, as the batch edits it."""

    keys: torch.Tensor
    values: torch.Tensor


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _kv_layers(cache: DynamicCache) -> list[KVLayer]:
    layers: list[KVLayer] = []
    for index, layer in enumerate(cache.layers):
        keys = getattr(layer, "keys", None)
        if not isinstance(keys, torch.Tensor) or keys.dim() != 4:
            raise TypeError(
                f"cache layer {index} ({type(layer).__name__}) is not a key/value tensor cache: "
                "this architecture is not supported by the engine's batching"
            )
        layers.append(cast(KVLayer, layer))
    return layers


@dataclass(slots=True)
class KVBatch:
    """A left-padded batch: ``cache`` and ``mask`` (int64, 1 = real token) agree in length.

    ``layers`` are the cache's own layer objects: editing them edits the cache.
    """

    cache: DynamicCache
    layers: list[KVLayer]
    mask: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])

    @property
    def length(self) -> int:
        return int(self.mask.shape[1])

    @classmethod
    def from_prefill(cls, cache: DynamicCache, mask: torch.Tensor) -> KVBatch:
        return cls(cache, _kv_layers(cache), mask)

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention mask and position ids for one new token per row; grows the mask."""
        positions = self.mask.sum(dim=1, keepdim=True)
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.size, 1))], dim=1)
        return self.mask, positions

    def extend(self, other: KVBatch) -> None:
        """Append ``other``'s rows after this batch's rows."""
        length = max(self.length, other.length)
        for mine, theirs in zip(self.layers, other.layers, strict=True):
            mine.keys = torch.cat(
                [_left_pad(mine.keys, length, 2), _left_pad(theirs.keys, length, 2)], dim=0
            )
            mine.values = torch.cat(
                [_left_pad(mine.values, length, 2), _left_pad(theirs.values, length, 2)], dim=0
            )
        self.mask = torch.cat(
            [_left_pad(self.mask, length, 1), _left_pad(other.mask, length, 1)], dim=0
        )

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order), then trim all-padding columns on the left."""
        if len(rows) != self.size:
            index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
            for layer in self.layers:
                layer.keys = layer.keys.index_select(0, index)
                layer.values = layer.values.index_select(0, index)
            self.mask = self.mask.index_select(0, index)
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0].item()) if used.numel() else self.length
        if start > 0:
            for layer in self.layers:
                layer.keys = layer.keys[:, :, start:]
                layer.values = layer.values[:, :, start:]
            self.mask = self.mask[:, start:]
