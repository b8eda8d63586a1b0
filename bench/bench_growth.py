"""Growth: what a station file of two busy years does to start-up and to a scan (issue 12).

For each size (accepted units remembered for duplicates, plus 100,000 delivered events), a file is
written directly (``tests/test_field_scale.py``'s ``fill``: half the units past retention, half
the events past keeping), then measured beside the empty file in the same run:

- the daemon's time to READY (``station run --simulate``; housekeeping starts after READY);
- a scan's time through the whole path (judge, rules by key, durable record), p50 of 300.

    .venv/bin/python bench/bench_growth.py [--units 0,1000000,10000000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from figures import emit  # noqa: E402
from test_field_scale import daemon_ready_seconds, fill, judge_times  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", default="0,1000000,10000000", help="sizes, comma-separated")
    args = parser.parse_args()
    sizes = [0] + [int(x) for x in args.units.split(",") if int(x)]  # the empty file first: the reference
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as d:
        work = Path(d)
        empty_ready = empty_scan = 0.0
        for units in sizes:
            where = work / f"u{units}"
            where.mkdir()
            t = time.perf_counter()
            if units:
                fill(where / "station.db", units)
            built = time.perf_counter() - t
            size = (where / "station.db").stat().st_size / 2**20 if units else 0.0
            pristine = work / "pristine.db"
            if units:
                shutil.copy(where / "station.db", pristine)  # the daemon purges its copy after READY
            ready = min(daemon_ready_seconds(where) for _ in range(2))
            if units:
                shutil.copy(pristine, where / "station.db")
            scan = statistics.median(judge_times(where / "station.db", 300))
            if not units:
                empty_ready, empty_scan = ready, scan
            print(
                f"growth      {units:>11,} units ({size:6.0f} MiB, written in {built:4.0f} s): READY in"
                f" {ready * 1e3:5.0f} ms, a scan p50 {scan * 1e3:6.3f} ms"
            )
            if units:
                label = f"{units:,} accepted units"
                emit("growth", f"time to READY with {label}", ready * 1e3, "ms", "as an empty file's (<= 1.5x)",
                     ready <= 1.5 * empty_ready, empty_ready * 1e3, "empty file")  # fmt: skip
                emit("growth", f"a scan, p50, with {label}", scan * 1e3, "ms", "as an empty file's (<= 1.5x)",
                     scan <= 1.5 * empty_scan, empty_scan * 1e3, "empty file")  # fmt: skip
            shutil.rmtree(where)
            pristine.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
