"""A million fuzzed inputs through every pure state machine (issue 14), tests/fuzz.py's checks:
no exception, no invalid accept, no input slower than 50 ms, memory flat.

    .venv/bin/python bench/bench_fuzz.py [total=1000000] [seed=1]

Inputs are mutated seeds (valid codes of every issuer, a wire message) and plain random bytes.
The share of each target follows its cost; both cores run, one process each.
"""

from __future__ import annotations

import logging
import random
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz
from figures import emit

SHARE = {"reader": 0.45, "wire": 0.3, "framing": 0.15, "hid": 0.1}
SLOW_MS = 50.0


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def work(job: tuple[str, int, int]) -> dict[str, object]:
    target, count, seed = job
    logging.disable(logging.CRITICAL)  # the decoder's one warning per bad scan, a million times over
    check = fuzz.TARGETS[target]
    rng = random.Random(seed)
    slowest, slow, failures = 0.0, 0, []
    warm = 0.0
    started = time.perf_counter()
    for i in range(count):
        raw = fuzz.mutate(rng)
        t = time.perf_counter()
        try:
            check(raw)
        except Exception as e:  # a finding: recorded, the run goes on
            failures.append(f"{target}: {raw!r}: {type(e).__name__}: {e}"[:300])
        ms = (time.perf_counter() - t) * 1000
        slowest = max(slowest, ms)
        slow += ms > SLOW_MS
        if i == count // 10:
            warm = rss_mib()
    return {
        "target": target,
        "count": count,
        "seconds": time.perf_counter() - started,
        "slowest_ms": slowest,
        "slow": slow,
        "failures": failures,
        "rss_growth_mib": rss_mib() - warm,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    jobs = []
    for target, share in SHARE.items():
        n = int(total * share)
        jobs += [(target, n // 2, seed * 1000 + i) for i in range(2)] if n >= 2 else [(target, n, seed)]
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(work, jobs))
    by_target: dict[str, list[dict[str, object]]] = {}
    for r in results:
        by_target.setdefault(str(r["target"]), []).append(r)
    failures = [f for r in results for f in r["failures"]]  # type: ignore[attr-defined]
    print(f"{sum(int(r['count']) for r in results):,} inputs in {time.perf_counter() - started:.0f} s (2 processes)")
    for target, parts in by_target.items():
        count = sum(int(p["count"]) for p in parts)
        print(
            f"  {target:<8} {count:>9,} inputs  slowest {max(float(p['slowest_ms']) for p in parts):6.1f} ms"
            f"  over {SLOW_MS:.0f} ms: {sum(int(p['slow']) for p in parts)}"
            f"  RSS growth after warm-up {max(float(p['rss_growth_mib']) for p in parts):+.1f} MiB"
            f"  failures {sum(len(p['failures']) for p in parts)}"  # type: ignore[arg-type]
        )
    for f in failures[:20]:
        print("  FAIL", f)
    count = sum(int(r["count"]) for r in results)
    slowest = max(float(r["slowest_ms"]) for r in results)
    growth = max(float(r["rss_growth_mib"]) for r in results)
    emit("fuzz", f"{count:,} fuzzed inputs: failures", len(failures), "", "none", not failures)
    emit("fuzz", "slowest input", slowest, "ms", "< 50 ms", slowest < SLOW_MS)
    emit("fuzz", "RSS growth after warm-up", growth, "MiB", "flat (< 1 MiB)", growth < 1)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
