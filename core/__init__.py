"""The vocabulary every package shares: the records of a finished request and its small maths.

``core`` imports nothing else of quanttrap, so every package may import it: the request
record and attempt outcome (:mod:`core.records`), and the batch-size buckets that telemetry
labels and scoring stratifies by (:mod:`core.buckets`).
"""
