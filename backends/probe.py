"""Where the shipped probe model lives: the embedded default's model and the canary set's solver.

Model weights cannot be downloaded on the machines this project runs on, so quanttrap ships a
small Llama (``backends/probe_model``, about 14 MB) trained on
:mod:`scoring.datasets.multihop`; see ``docs/probe_model.md``. This module only finds it: it
imports neither torch nor transformers, so the proxy can resolve the path without loading the
engine.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["REQUIRED_FILES", "ProbeModelMissing", "check_model_dir", "probe_model_path"]

REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)
"""What ``transformers`` needs to load the model and its tokenizer (chat template included)."""

_DIRECTORY = "probe_model"


class ProbeModelMissing(FileNotFoundError):
    """The probe model's directory, or one of its files, is not installed."""


def probe_model_path() -> Path:
    """The directory of the shipped probe model, ready for ``from_pretrained``.

    Raises :class:`ProbeModelMissing` when the package was installed without its data files.
    """
    return check_model_dir(Path(str(resources.files(__package__ or "backends") / _DIRECTORY)))


def check_model_dir(directory: Path) -> Path:
    """``directory`` itself if it holds every file in :data:`REQUIRED_FILES`, else an error."""
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ProbeModelMissing(
            f"probe model not found: {directory} lacks {', '.join(missing)}. The files ship in "
            "the quanttrap package (backends/probe_model); reinstall it with its package data, "
            "or recreate them with `python -m training.train_probe --out backends/probe_model`."
        )
    return directory
