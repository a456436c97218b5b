"""Errors the `critic` command prints as one line, without a trace (exit 2)."""
from __future__ import annotations


class UsageError(Exception):
    """A problem the user can fix (bad path, bad option)."""
