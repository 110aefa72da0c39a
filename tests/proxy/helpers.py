"""Building an in-process app over scripted backends."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from core.records import RequestRecord, ShadowPair
from proxy.app import QuanttrapApp
from quanttrap.settings import settings_from_mapping
from tests.doubles.scripted_backend import ScriptedBackend


def settings_for(
    variants: Mapping[str, int], *, primary: str, model: str = "demo", **model_extra: Any
) -> Any:
    return settings_from_mapping(
        {
            "server": model_extra.pop("server", {}),
            "models": [
                {
                    "name": model,
                    "anchor": next(iter(variants)),
                    "variants": [
                        {
                            "name": n,
                            "bits": b,
                            "backend": {"kind": "openai", "base_url": f"http://127.0.0.1:1/{n}"},
                        }
                        for n, b in variants.items()
                    ],
                    "routing": {"primary": primary, **model_extra.pop("routing", {})},
                    **model_extra,
                }
            ],
        }
    )


class PairStore:
    """The most recent shadow pairs (bounded: the oldest are forgotten)."""

    def __init__(self, maxlen: int) -> None:
        self.pairs: deque[ShadowPair] = deque(maxlen=maxlen)

    def __call__(self, pair: ShadowPair) -> None:
        self.pairs.append(pair)


class Harness:
    def __init__(
        self,
        app: QuanttrapApp,
        client: httpx.AsyncClient,
        records: list[RequestRecord],
        pairs: PairStore,
    ) -> None:
        self.app, self.client, self.records, self.pairs = app, client, records, pairs


@asynccontextmanager
async def harness(
    backends: Mapping[str, ScriptedBackend],
    *,
    primary: str | None = None,
    environ: Mapping[str, str] | None = None,
    **model_extra: Any,
) -> AsyncIterator[Harness]:
    names = list(backends)
    settings = settings_for(
        {n: 16 if i == 0 else 4 for i, n in enumerate(names)},
        primary=primary or names[0],
        **model_extra,
    )
    records: list[RequestRecord] = []
    pairs = PairStore(100)
    app = QuanttrapApp(
        settings,
        {("demo", n): b for n, b in backends.items()},
        record_sinks=[records.append],
        pair_sinks=[pairs],
        environ=environ or {},
    )
    await app.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        yield Harness(app, client, records, pairs)
    await app.shutdown()


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": "hi"}], **extra}
