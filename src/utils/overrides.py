"""The one place seglab reads a ``key=value`` override by hand (Hydra reads the rest)."""

from __future__ import annotations


def split_override(argument: str) -> tuple[str, str | None]:
    """``key=value`` -> (key, value); a bare word (``--help``, a group deletion) -> (word, None)."""
    key, separator, value = argument.partition("=")
    return key, value if separator else None
