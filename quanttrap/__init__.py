"""The composition root: settings, assembly, the server and the command line.

Everything that wires the parts together lives here and nowhere else: reading the settings
(:mod:`quanttrap.settings`), building backends, telemetry, the app and live scoring from them
(:mod:`quanttrap.assembly`), running uvicorn (:mod:`quanttrap.server`) and the ``quanttrap``
command (:mod:`quanttrap.cli`). Request handling (``proxy``), token sources (``backends``),
measurement (``telemetry``), maths (``scoring``) and dashboards (``grafana``) never import it.
"""
