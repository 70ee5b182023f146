"""Argument types shared by several commands."""

from __future__ import annotations

import argparse


def seed(text: str) -> int:
    """A ``--seed`` value: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be >= 0, got {value}")
    return value
