"""The read-only status API and the built-in status page.

Routes (added by :func:`add_status_routes`):

- ``GET /quanttrap/v1/status`` — the live table as JSON (:func:`status_json`): per model and
  variant, the headline and every batch-size bucket with samples, accuracy, TPS, energy (and
  its method, or why it is unavailable), COR, the three pillars and the SI with intervals,
  regime, trap flag, paired test, the anytime-valid verdicts (confidence sequences since the
  epoch's start, the margins they were held against, held answers), B\\*, plus a short
  history for charts;
- ``GET /quanttrap/v1/evaluations`` — graded evaluations from the log, newest first; filters
  ``model``, ``variant``, ``role``, ``dataset``, ``correct=true|false``, ``since`` (Unix
  time), ``limit`` (1-1000, default 100);
- ``GET /quanttrap/v1/comparisons`` — shadow comparisons; filters ``model``,
  ``shadow_variant``, ``agree=true|false``, ``since``, ``limit``;
- ``GET /quanttrap/`` — the status page (``proxy/static``: plain HTML, JS and CSS, nothing
  loaded from elsewhere) that polls the status API.

Every route here needs a monitoring or client key whenever keys are configured (they show
per-variant accuracy, and the logs may hold prompts with content capture on): see
:mod:`proxy.auth`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from fastapi import Request
from fastapi.responses import Response

from proxy.errors import APIError
from scoring.agreement import HopTrend
from scoring.snapshot import (
    AgreementView,
    BucketRow,
    HistoryPoint,
    LiveSnapshot,
    PillarView,
    VariantStatus,
)
from scoring.stats import Interval, McNemarResult
from scoring.verdicts import Verdicts

if TYPE_CHECKING:
    from proxy.app import QuanttrapApp
    from proxy.scoring_runtime import ScoringRuntime

__all__ = [
    "COMPARISONS_PATH",
    "EVALUATIONS_PATH",
    "PAGE_PATH",
    "STATUS_PATH",
    "add_status_routes",
    "status_json",
]

STATUS_PATH = "/quanttrap/v1/status"
EVALUATIONS_PATH = "/quanttrap/v1/evaluations"
COMPARISONS_PATH = "/quanttrap/v1/comparisons"
PAGE_PATH = "/quanttrap/"

_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_MAX_LIMIT = 1000


def add_status_routes(app: QuanttrapApp, runtime: ScoringRuntime) -> None:
    """Register the status API, the log queries and the page on ``app`` (FastAPI routes)."""
    app.add_status_route(
        STATUS_PATH, _status_endpoint(runtime), methods=["GET"],
        tags=["status"], summary="The live SI table",
    )  # fmt: skip
    app.add_status_route(
        EVALUATIONS_PATH, _log_endpoint(runtime, "evaluations", _EVALUATION_FILTERS),
        methods=["GET"], tags=["status"], summary="The evaluation log",
    )  # fmt: skip
    app.add_status_route(
        COMPARISONS_PATH, _log_endpoint(runtime, "shadow_comparisons", _COMPARISON_FILTERS),
        methods=["GET"], tags=["status"], summary="The shadow comparison log",
    )  # fmt: skip
    files = resources.files("proxy.static")
    for name, content_type in _STATIC.items():
        endpoint = _static_endpoint(files.joinpath(name).read_bytes(), content_type)
        paths = [f"/quanttrap/{name}"]
        if name == "index.html":
            paths += [PAGE_PATH, PAGE_PATH.rstrip("/")]
        for path in paths:
            app.add_status_route(
                path, endpoint, methods=["GET"], include_in_schema=path == PAGE_PATH
            )


def status_json(runtime: ScoringRuntime) -> dict[str, Any]:
    """The status document (see ``docs/scoring.md`` for every field)."""
    cfg = runtime.config
    snap = runtime.snapshot
    out: dict[str, Any] = {
        "generated_at": snap.at if snap else None,
        "window_s": cfg.window_s,
        "confidence": cfg.confidence,
        "recompute_interval_s": cfg.recompute_interval_s,
        "si": {
            "weights": {
                "trust": cfg.trust_weight,
                "economic": cfg.economic_weight,
                "energy": cfg.energy_weight,
            },
            "economic_lambda": cfg.economic_lambda,
            "policy": cfg.policy,
        },
        "tolerances": {
            "accuracy": cfg.trap.accuracy_tolerance,
            "speed": cfg.trap.speed_tolerance,
            "energy": cfg.trap.energy_tolerance,
            "min_graded": cfg.trap.min_graded,
            "min_requests": cfg.trap.min_requests,
            "on_after": cfg.trap.on_after,
            "off_after": cfg.trap.off_after,
        },
        "verdicts": {
            "method": "anytime-valid confidence sequences (normal mixture), per variant, "
            "bucket and epoch",
            "level": cfg.confidence,
            "epoch_s": cfg.trap.epoch_s,
            "epoch_since": runtime.scorer.epoch_since,
            "tune_samples": cfg.trap.tune_samples,
        },
        "canary": _canary_json(runtime),
        "shadow_sampling": _shadow_json(runtime),
        "counters": dict(snap.counters) if snap else {},
        "models": [],
    }
    if snap is not None:
        out["models"] = _models_json(snap, runtime)
    return out


def _models_json(snap: LiveSnapshot, runtime: ScoringRuntime) -> list[dict[str, Any]]:
    models = []
    for m in snap.models:
        variants = []
        for v in m.variants:
            history = runtime.history.series.get((m.model, v.variant), ())
            variants.append({**_variant_json(v), "history": [_point(p) for p in history]})
        models.append(
            {
                "model": m.model,
                "anchor": m.anchor,
                "variants": variants,
                "shadow_agreement": [_agreement_json(a) for a in m.agreement],
            }
        )
    return models


def _agreement_json(a: AgreementView) -> dict[str, Any]:
    """Agreement over the window, by hop bucket and by outcome, and the epoch's hop trend."""
    return {
        "primary": a.primary,
        "shadow": a.shadow,
        "agree": a.agree,
        "disagree": a.disagree,
        "unknown": a.unknown,
        "rate": _iv(a.rate),
        "verdicts": dict(a.verdicts),
        "by_hop": [
            {
                "hop_bucket": h.bucket,
                "agree": h.agree,
                "disagree": h.disagree,
                "unknown": h.unknown,
                "rate": _iv(h.rate),
            }
            for h in a.hops
        ],
        "hop_trend": _trend_json(a.trend),
    }


def _trend_json(t: HopTrend | None) -> dict[str, Any] | None:
    if t is None:
        return None
    difference = _iv(t.difference)
    if difference is not None and t.difference is not None:
        difference["confidence"] = t.difference.confidence
    return {
        "statistic": "disagreement rate at hops >= 1 minus at hop 0",
        "method": "anytime-valid confidence sequence (normal mixture, Bernoulli bound), "
        "since the epoch started",
        "since": t.since,
        "level": 1.0 - t.alpha,
        "min_samples": t.min_samples,
        "first_hop": {"compared": t.first_compared, "disagree": t.first_disagree},
        "later_hops": {"compared": t.later_compared, "disagree": t.later_disagree},
        "difference": difference,
        "grows": t.grows,
    }


def _variant_json(v: VariantStatus) -> dict[str, Any]:
    head = v.headline
    b = v.b_star
    return {
        "variant": v.variant,
        "bits": v.bits,
        "is_anchor": v.is_anchor,
        "regime": head.regime if head else "undetermined",
        "trap": v.trap,
        "trap_buckets": [r.bucket for r in v.buckets if r.trap],
        "headline_bucket": head.bucket if head else None,
        "memory": {"gb": v.memory_gb, "method": v.memory_method, "source": v.memory_source},
        "b_star": None
        if b is None
        else {
            "batch_size": b.b_star,
            "below_at_all_sizes": b.below_at_all_sizes,
            "stays_below": b.stays_below,
            "measured_sizes": list(b.measured_sizes),
        },
        "b_star_note": v.b_star_note,
        "buckets": [_row_json(r) for r in v.buckets],
    }


def _row_json(r: BucketRow) -> dict[str, Any]:
    e = r.energy
    less, slower, more = r.significant
    return {
        "batch_size_bucket": r.bucket,
        "samples": {
            "requests": r.requests,
            "failed": r.failed,
            "graded": r.graded,
            "speed": r.speed_samples,
            "energy": e.samples,
        },
        "accuracy": _iv(r.accuracy),
        "accuracy_difference": _iv(r.accuracy_difference),
        "tokens_per_s": _iv(r.tokens_per_s),
        "cor": _iv(r.cor),
        "energy": {
            "method": e.method,
            "available": e.available,
            "samples": e.samples,
            "j_per_query": _iv(e.j_per_query),
            "j_per_token": e.j_per_token,
            "note": e.reason,
        },
        "energy_considered": r.energy_considered,
        "memory_gb": r.memory_gb,
        "pillars": {
            "trust": _pillar(r.trust),
            "economic": _pillar(r.economic),
            "energy": _pillar(r.energy_pillar),
        },
        "si": _iv(r.si),
        "si_raw": r.si_raw,
        "regime": r.regime,
        "regime_now": r.regime_now,
        "trap": r.trap,
        "significant": {"less_accurate": less, "slower": slower, "more_energy": more},
        "verdicts": _verdicts(r.verdicts),
        "paired": _paired(r.pairs, r.paired),
        "missing": list(r.missing),
    }


def _verdicts(v: Verdicts | None) -> dict[str, Any] | None:
    """The anytime-valid answers, their confidence sequences and the margins applied."""
    if v is None:
        return None

    def cs(interval: Interval | None) -> dict[str, float] | None:
        out = _iv(interval)
        if out is not None and interval is not None:
            out["confidence"] = interval.confidence
        return out

    m = v.margins
    return {
        "since": v.since,
        "level": 1.0 - v.alpha,
        "margins": {"accuracy": m.accuracy, "speed": m.speed, "energy": m.energy},
        "accuracy_difference": cs(v.accuracy),
        "accuracy_difference_paired": cs(v.accuracy_paired),
        "speed_ratio": cs(v.speed),
        "energy_ratio": cs(v.energy),
        "energy_method": v.energy_method,
        "answers": {
            "less_accurate": v.less_accurate,
            "slower": v.slower,
            "more_energy": v.more_energy,
        },
        "held_from_previous_epoch": list(v.carried),
    }


def _iv(interval: Interval | None) -> dict[str, float] | None:
    if interval is None:
        return None
    return {"estimate": interval.estimate, "low": interval.low, "high": interval.high}


def _pillar(view: PillarView) -> dict[str, Any]:
    return {"raw": _iv(view.raw), "bounded": view.bounded}


def _paired(pairs: tuple[int, int, int, int], test: McNemarResult | None) -> dict[str, Any]:
    return {
        "both_correct": pairs[0],
        "anchor_only": pairs[1],
        "variant_only": pairs[2],
        "both_wrong": pairs[3],
        "mcnemar_p": test.p_value if test else None,
    }


def _point(p: HistoryPoint) -> dict[str, Any]:
    return {
        "at": p.at,
        "si": p.si,
        "si_low": p.si_low,
        "si_high": p.si_high,
        "j_per_query": p.j_per_query,
        "energy_method": p.energy_method,
        "tokens_per_s": p.tokens_per_s,
        "accuracy": p.accuracy,
        "regime": p.regime,
        "trap": p.trap,
    }


def _canary_json(runtime: ScoringRuntime) -> dict[str, Any]:
    cfg = runtime.config.canary
    out: dict[str, Any] = {"enabled": cfg.enabled}
    if cfg.enabled:
        out.update(rate_per_minute=cfg.rate_per_minute, dataset=cfg.dataset)
        runner = runtime.canary
        if runner is not None:
            out["probes"] = [
                {"model": m, "variant": v, "outcome": o, "count": n}
                for (m, v, o), n in sorted(runner.counts.items())
            ]
            out["budget"] = asdict(runner.budget_status())
    return out


def _shadow_json(runtime: ScoringRuntime) -> dict[str, Any]:
    """Per model: the shadow cap, its per-bucket shares and what ran or was dropped where."""
    coverage = runtime.shadow_coverage
    return {model: asdict(stats) for model, stats in coverage().items()} if coverage else {}


# -- endpoints --------------------------------------------------------------------------------


def _status_endpoint(runtime: ScoringRuntime) -> Callable[[], Awaitable[Response]]:
    async def status() -> Response:
        return _response(orjson.dumps(status_json(runtime)), "application/json")

    return status


_EVALUATION_FILTERS = ("model", "variant", "role", "dataset", "correct")
_COMPARISON_FILTERS = ("model", "primary_variant", "shadow_variant", "agree")


def _log_endpoint(
    runtime: ScoringRuntime, table: str, allowed: tuple[str, ...]
) -> Callable[[Request], Awaitable[Response]]:
    async def query(request: Request) -> Response:
        store = runtime.store
        if store is None:
            raise APIError(
                404,
                "The evaluation log is switched off (scoring.io.store.enabled: false).",
                code="store_disabled",
            )
        filters, limit = _parse_query(request.scope.get("query_string", b""), allowed)
        rows = await asyncio.to_thread(store.query, table, filters, limit)
        body = orjson.dumps({"object": "list", "data": rows, "limit": limit})
        return _response(body, "application/json")

    query.__doc__ = f"Rows of the {table.replace('_', ' ')} log, newest first; filters: " + (
        ", ".join((*allowed, "since", "limit"))
    )
    return query


def _parse_query(raw: bytes, allowed: tuple[str, ...]) -> tuple[dict[str, Any], int]:
    query = parse_qs(raw.decode("latin-1"), keep_blank_values=False)
    filters: dict[str, Any] = {}
    limit = 100
    for key, values in query.items():
        value = values[-1]
        if key == "limit":
            if not value.isdigit() or not 1 <= int(value) <= _MAX_LIMIT:
                raise APIError(400, f"limit must be 1-{_MAX_LIMIT}, got {value!r}", param=key)
            limit = int(value)
        elif key == "since":
            try:
                filters["since"] = float(value)
            except ValueError:
                raise APIError(400, f"since must be Unix time, got {value!r}", param=key) from None
        elif key in ("correct", "agree") and key in allowed:
            if value not in ("true", "false"):
                raise APIError(400, f"{key} must be true or false, got {value!r}", param=key)
            filters[key] = value == "true"
        elif key in allowed:
            filters[key] = value
        else:
            known = ", ".join((*allowed, "since", "limit"))
            raise APIError(400, f"unknown query parameter {key!r}; known: {known}", param=key)
    return filters, limit


def _static_endpoint(body: bytes, content_type: str) -> Callable[[], Awaitable[Response]]:
    async def page() -> Response:
        return _response(body, content_type)

    return page


def _response(body: bytes, content_type: str) -> Response:
    return Response(body, media_type=None, headers={"content-type": content_type,
                                                    "cache-control": "no-store"})  # fmt: skip
