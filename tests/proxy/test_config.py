"""Configuration: the issue's example shape, env overrides, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.config import OpenAIBackendConfig
from quanttrap.settings import ConfigError, load_settings

EXAMPLE = """
models:
  - name: demo                 # what clients send as "model"
    anchor: bf16               # the native-precision reference variant
    variants:
      - name: bf16
        bits: 16
        backend: {kind: openai, base_url: "http://127.0.0.1:9001/v1", model: "served-name"}
      - name: nf4
        bits: 4
        backend: {kind: openai, base_url: "http://127.0.0.1:9002/v1"}
    routing: {primary: bf16}
    shadow: {variants: [nf4], sample_rate: 0.25}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "quanttrap.yaml"
    path.write_text(text)
    return path


def test_the_issue_example_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE), environ={})
    (model,) = settings.models
    assert model.name == "demo" and model.anchor == "bf16"
    backend = model.variants[0].backend
    assert isinstance(backend, OpenAIBackendConfig) and backend.model == "served-name"
    assert model.shadow.sample_rate == 0.25 and model.shadow.variants == ("nf4",)
    assert settings.server.port == 8000


def test_environment_overrides_every_field(tmp_path: Path) -> None:
    env = {
        "QUANTTRAP_SERVER__PORT": "9100",
        "QUANTTRAP_MODELS__0__SHADOW__SAMPLE_RATE": "0.5",
        "QUANTTRAP_MODELS__0__VARIANTS__1__BACKEND__BASE_URL": "http://10.0.0.2:8000/v1",
        "QUANTTRAP_MODELS__0__ROUTING__PRIMARY": "nf4",
        "QUANTTRAP_API_KEYS": "secret",  # a secret, not a field: ignored here
        "UNRELATED": "x",
    }
    settings = load_settings(write(tmp_path, EXAMPLE), environ=env)
    assert settings.server.port == 9100
    model = settings.models[0]
    assert model.shadow.sample_rate == 0.5 and model.routing.primary == "nf4"
    assert model.variants[1].backend.base_url == "http://10.0.0.2:8000/v1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        (("routing: {primary: bf16}", "routing: {primary: fp8}"), "routing.primary", "fp8"),
        (("bits: 4", "bits: four"), "models.0.variants.1.bits", "four"),
        (("sample_rate: 0.25", "sample_rate: 2"), "models.0.shadow.sample_rate", "2"),
        (('base_url: "http://127.0.0.1:9002/v1"', "base_url: ftp://x"), "base_url", "ftp://x"),
        (('kind: openai, base_url: "http://127.0.0.1:9002/v1"', "kind: magic"), "backend", "magic"),
        (("anchor: bf16", "anchor: fp32"), "anchor", "fp32"),
        (("shadow: {variants: [nf4]", "shadow: {variants: [int4]"), "shadow.variants", "int4"),
        (("    shadow:", "    colour: blue\n    shadow:"), "colour", "blue"),
    ],
)
def test_errors_name_the_bad_field_and_value(
    tmp_path: Path, change: tuple[str, str], field: str, value: str
) -> None:
    text = EXAMPLE.replace(*change)
    assert text != EXAMPLE
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    message = str(info.value)
    assert field in message and value in message


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "models: [\n"), environ={})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(write(tmp_path, "- 1\n"), environ={})
    with pytest.raises(ConfigError, match="models"):
        load_settings(write(tmp_path, "server: {port: 1}\n"), environ={})


def test_bad_env_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="QUANTTRAP_MODELS__5__NAME"):
        load_settings(write(tmp_path, EXAMPLE), environ={"QUANTTRAP_MODELS__5__NAME": "x"})


def test_embedded_default_is_valid() -> None:
    settings = load_settings(None, environ={})
    (model,) = settings.models
    assert [v.name for v in model.variants] == ["fp32", "int8", "nf4"]
    assert model.shadow.sample_rate > 0
