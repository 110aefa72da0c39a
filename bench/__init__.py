"""``quanttrap bench``: each precision at each batch size, measured like the paper, with spread.

Modules: :mod:`bench.commands` (the CLI), :mod:`bench.sweep` (the order of work),
:mod:`bench.cells` (one steady-state window through the engine), :mod:`bench.evaluation`
(graded accuracy), :mod:`bench.reference` (HF ``generate``), :mod:`bench.gpu` (NVML energy,
clocks, power limit), :mod:`bench.models` (random-weight presets), :mod:`bench.analysis` (the
maths, over ``scoring``), :mod:`bench.report` (JSON, SI inputs, table), :mod:`bench.plots`.
Importing this package imports nothing heavy; torch is loaded by the sweep.
"""
