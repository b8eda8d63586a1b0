"""Logging for the station and the submitter: one line per record to stdout (journald adds the time)."""

from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO") -> None:
    logging.basicConfig(
        stream=sys.stdout,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("gpiozero").setLevel(logging.WARNING)
