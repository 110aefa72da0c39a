"""Errors every package may raise or catch."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """The configuration is invalid; the message names each bad field and its value."""
