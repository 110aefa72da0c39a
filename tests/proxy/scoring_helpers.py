"""An in-process app with live scoring attached, over scripted backends (for fast tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.metrics import Meter

from proxy.app import QuanttrapApp
from proxy.scoring_runtime import ScoringRuntime
from quanttrap.assembly import attach_scoring
from scoring.config import ScoringConfig
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import settings_for


class ScoredHarness:
    def __init__(
        self, app: QuanttrapApp, client: httpx.AsyncClient, runtime: ScoringRuntime
    ) -> None:
        self.app, self.client, self.runtime = app, client, runtime

    async def status(self) -> dict[str, Any]:
        await self.runtime.tick()
        resp = await self.client.get("/quanttrap/v1/status")
        assert resp.status_code == 200
        data: dict[str, Any] = resp.json()
        return data


@asynccontextmanager
async def scored(
    backends: Mapping[str, ScriptedBackend],
    tmp_path: Path | None,
    *,
    scoring: dict[str, Any] | None = None,
    meter: Meter | None = None,
    environ: Mapping[str, str] | None = None,
    **model_extra: Any,
) -> AsyncIterator[ScoredHarness]:
    """``backends``' first entry is the anchor (16 bits), the others 4 bits."""
    names = list(backends)
    settings = settings_for(
        {n: 16 if i == 0 else 4 for i, n in enumerate(names)}, primary=names[0], **model_extra
    )
    section: dict[str, Any] = {"recompute_interval_s": 600, **(scoring or {})}
    store = section.setdefault("store", {})
    if tmp_path is None:
        store.setdefault("enabled", False)
    else:
        store.setdefault("path", str(tmp_path / "log.sqlite3"))
    settings = settings.model_copy(update={"scoring": ScoringConfig.model_validate(section)})
    app = QuanttrapApp(
        settings, {("demo", n): b for n, b in backends.items()}, environ=environ or {}
    )
    runtime = attach_scoring(app, settings, meter=meter)
    assert runtime is not None
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            yield ScoredHarness(app, client, runtime)
    finally:
        await app.shutdown()


def tagged(expected: str, *, variant: str | None = None, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for ``client.post``: a chat tagged with its expected answer."""
    headers = {"X-Quanttrap-Expected": expected}
    if variant is not None:
        headers["X-Quanttrap-Variant"] = variant
    body = {"model": "demo", "messages": [{"role": "user", "content": "What is 6 * 7?"}], **extra}
    return {"json": body, "headers": headers}
