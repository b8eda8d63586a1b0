"""The fleet under fire, in the suite: a short chaos run (tests/chaos.py); bench/bench_chaos.py is
the long one. Every promise of "What we promise" is checked at the end."""

from __future__ import annotations

from pathlib import Path

import chaos
import pytest


@pytest.mark.timeout(420)
def test_kills_and_broker_restarts_break_no_promise(tmp_path: Path) -> None:
    report = chaos.run(tmp_path, kills=16, seed_value=7)
    assert dict(report.kills) == {"line": 4, "dock": 4, "submitter": 4, "broker": 4}
    assert min(report.accepted.values()) > 0 and report.notified > 0 and report.refused_by_service > 0
