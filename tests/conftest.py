"""Fixtures live in harness.py so tests can also import its helpers by name."""

from harness import broker, central, ledger_url

__all__ = ["broker", "central", "ledger_url"]
