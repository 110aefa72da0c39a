"""Offline scripts that make the probe model shipped in ``backends/probe_model`` (not product code).

Run them as modules from the repository root: ``python -m training.train_probe`` and
``python -m training.eval_probe``; see ``training/README.md``.
"""
