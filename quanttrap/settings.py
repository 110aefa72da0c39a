"""quanttrap settings: one YAML file, validated once at start-up, overridable from the env.

Every field can be overridden by an environment variable named ``QUANTTRAP_`` followed by the
field's path in upper case with ``__`` between the parts; list items are addressed by index::

    QUANTTRAP_SERVER__PORT=9000
    QUANTTRAP_MODELS__0__ROUTING__PRIMARY=nf4
    QUANTTRAP_MODELS__0__SHADOW__SAMPLE_RATE=0.1

Values are read as YAML scalars (``true``, ``0.25``, ``[nf4, int8]``). Secrets never live in
the file: API keys are read from the environment variables that the file names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from core.errors import ConfigError
from proxy.config import ModelConfig, ServerConfig, _Strict
from scoring.config import ScoringConfig
from telemetry.config import TelemetryConfig

__all__ = ["ENV_PREFIX", "ConfigError", "Settings", "load_settings", "settings_from_mapping"]

ENV_PREFIX = "QUANTTRAP_"


class Settings(_Strict):
    server: ServerConfig = ServerConfig()
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    telemetry: TelemetryConfig = TelemetryConfig()
    scoring: ScoringConfig = ScoringConfig()

    @model_validator(mode="after")
    def _unique_models(self) -> Settings:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self

    def model(self, name: str) -> ModelConfig | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (or the embedded default when ``None``), apply env overrides, validate."""
    environ = os.environ if environ is None else environ
    if path is None:
        from quanttrap.defaults import embedded_default

        raw: Any = embedded_default()
        source = "the embedded default"
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {str(p)!r}: {exc.strerror}") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        source = str(p)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    return settings_from_mapping(_apply_env_overrides(raw, environ), source=source)


def settings_from_mapping(raw: Mapping[str, Any], *, source: str = "config") -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    errors = exc.errors()
    for err in errors:
        # pydantic also reports "too short" for a list whose only items were invalid: noise.
        if err["type"] == "too_short" and any(
            len(e["loc"]) > len(err["loc"]) and e["loc"][: len(err["loc"])] == err["loc"]
            for e in errors
        ):
            continue
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        # Discriminated unions put the tag in the path ("backend.openai.base_url"): keep it,
        # it tells which backend kind was being checked.
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc or '<root>'}: {msg}{shown}")
    return "\n".join(lines)


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX) or ("__" not in key and key.count("_") < 2):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in Settings.model_fields:
            continue  # e.g. QUANTTRAP_API_KEYS is a secret, not a field
        try:
            value = yaml.safe_load(environ[key])
        except yaml.YAMLError:
            value = environ[key]
        _set_path(raw, path, value, key)
    return raw


def _set_path(node: Any, path: list[str], value: Any, key: str) -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{key}: no list item {part!r} to override")
            idx = int(part)
            if last:
                node[idx] = value
                return
            node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{key}: {'.'.join(path[:i])} is not a mapping or list")
