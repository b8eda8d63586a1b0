"""The long chaos run (issue 14): hundreds of SIGKILLs of the stations and the submitter and kills
of the broker, with a slow, failing sandbox; every promise checked at the end (tests/chaos.py).

    .venv/bin/python bench/bench_chaos.py [kills=200] [seed=1]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import chaos
from figures import emit


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = chaos.run(Path(tmp), kills, seed, per_round=8, log=lambda line: print(line, flush=True))
    print(
        f"{sum(report.kills.values())} kills ({dict(report.kills)}) in {time.monotonic() - started:.0f} s; "
        f"{report.scans_sent} scans sent, accepted {report.accepted}, refused at the station "
        f"{report.refused_at_station}; notified once each: {report.notified}; refused by the service: "
        f"{report.refused_by_service}; every promise held (settled in {report.settle_seconds:.1f} s)"
    )
    kills_done = sum(report.kills.values())  # chaos.run raises when a promise fails: here they held
    emit(
        "chaos",
        f"{kills_done} SIGKILLs of stations, submitter and broker: promises held",
        kills_done,
        "kills",
        "all hold",
        True,
    )


if __name__ == "__main__":
    main()
