"""Grafana dashboards and Prometheus rules, generated from code (``quanttrap export``).

The dashboards are built with grafana-foundation-sdk (the optional ``grafana`` extra, imported
only by :mod:`grafana.export` and the dashboard modules, so that the rest of quanttrap works
without it); the recording rules render the SI formulas of :mod:`scoring.promql` — the same
maths as the in-process scorer; the alerting rules read the proxy's significant trap flag.
The rendered files are checked in under ``grafana/`` and ``helm/quanttrap/files/`` and tested
to be in sync with this code.
"""

from grafana.alerting import alerting_groups
from grafana.options import RuleOptions
from grafana.recording import recording_groups

__all__ = ["RuleOptions", "alerting_groups", "recording_groups"]
