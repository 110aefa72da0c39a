"""Fixtures of the chart tests: the reference renders, made once per session.

chart_tools is imported inside the fixtures: it skips (or, in CI, fails) its importers when
the Helm SDK is missing, which a conftest must not do at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from tests.helm.chart_tools import Rendered


@pytest.fixture(scope="session")
def full_values() -> dict[str, Any]:
    from tests.helm.chart_tools import FULL_VALUES

    values: dict[str, Any] = yaml.safe_load(FULL_VALUES.read_text(encoding="utf-8"))
    return values


@pytest.fixture(scope="session")
def fixture_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart with one fixture rule file and one fixture dashboard under files/."""
    from tests.helm.chart_tools import chart_copy

    return chart_copy(tmp_path_factory.mktemp("chart"), rules=True, dashboards=True)


@pytest.fixture(scope="session")
def full(fixture_chart: Path, full_values: dict[str, Any]) -> Rendered:
    from tests.helm.chart_tools import render

    return render(fixture_chart, full_values)


@pytest.fixture(scope="session")
def default() -> Rendered:
    from tests.helm.chart_tools import CHART_DIR, render

    return render(CHART_DIR)
