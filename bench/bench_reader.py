"""Reader speed, import time and memory, side by side with biip in the same run.

Goals (issue 2): >= 10x biip on canonical codes, >= 2,000 codes/s on the worst lost-separator
case, import well under biip's; (issue 11) the UDI paths (HIBC, IFA, ISBT 128, Digital Link) at
least 20,000 codes/s. Prints ratios so the figures compare within one machine and run.

    .venv/bin/python bench/bench_reader.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date

from figures import emit

GS = "\x1d"
CANONICAL = f"]d2010869953609012221ABCDEF12345{GS}1726013110LOT123"
# Worst case for recovery: no GS, batch before serial, both numeric and full of AI-looking digit
# pairs, so nearly every cut point is tried (the slowest of 8,000 random candidates, searched once).
WORST = "010869953609012217260131101711111722121212112102101211101026201017"
#: One device label of each other form a dock sees (tests/test_udi.py's examples, dates moved ahead).
UDIS = {
    "HIBC": "+A99912345/$$52701510X3/16D20111212/S77DE1G450",
    "IFA PPN": "[)>\x1e06\x1d9N110375286414\x1d1T12345ABCD\x1dD270600\x1dS12345ABCDEF98765\x1e\x04",
    "ISBT 128": "=/A9997AB3456T0123=G12341765432170=>027151&,10000000000005434RZ",
    "Digital Link": "https://id.gs1.org/01/09506000134352/10/AB%2F1/21/S-9?17=271231",
}


def rate(fn: Callable[[str], object], value: str, seconds: float = 1.0) -> float:
    for _ in range(200):
        fn(value)
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            for _ in range(100):
                fn(value)
            n += 100
        best = max(best, n / elapsed)
    return best


def import_cost(module: str) -> tuple[float, float]:
    """(import ms, RSS MiB growth) of a module in a fresh interpreter, best of 5."""
    code = (
        "import time\n"
        "def rss():\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) / 1024\n"
        f"r0 = rss(); t = time.perf_counter(); import {module}; t = (time.perf_counter() - t) * 1000\n"
        "print(t, rss() - r0)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        for _ in range(5)
    ]
    return min(float(r[0]) for r in runs), min(float(r[1]) for r in runs)


def main() -> None:
    import compileall
    from pathlib import Path

    import biip

    # pip compiles biip's .pyc at install; do the same for ours so imports compare like for like.
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "station"), quiet=1)

    from station.gs1.reader import Profile, read
    from station.gs1.verdict import Policy, judge

    today = date(2026, 1, 1)
    policy = Policy(Profile.ITS)
    assert judge(CANONICAL, policy, today).ok
    worst = read(WORST, Profile.ITS, 2026)
    print(f"worst case reads as: {worst.reason or 'ok'} ({worst.message})")

    ours = rate(lambda s: judge(s, policy, today), CANONICAL)
    theirs = rate(biip.parse, CANONICAL)
    ours_worst = rate(lambda s: judge(s, policy, today), WORST)
    theirs_worst = rate(biip.parse, WORST)
    print(
        f"canonical   station {ours:>10,.0f} codes/s   biip {theirs:>8,.0f} codes/s"
        f"   ratio {ours / theirs:5.1f}x (goal >= 10x)"
    )
    print(f"lost-GS     station {ours_worst:>10,.0f} codes/s   biip {theirs_worst:>8,.0f} codes/s   (goal >= 2,000/s)")
    emit("reader", "canonical karekods read", ours, "codes/s", ">= 10x biip", ours >= 10 * theirs, theirs, "biip")
    worst_met = ours_worst >= 2000
    emit("reader", "worst lost-separator case", ours_worst, "codes/s", ">= 2,000/s", worst_met, theirs_worst, "biip")
    devices = Policy(Profile.UTS)
    for name, code in UDIS.items():
        assert judge(code, devices, today).ok, name
        speed = rate(lambda s: judge(s, devices, today), code)
        print(f"{name:<13}station {speed:>10,.0f} codes/s   (goal >= 20,000/s)")
        emit("reader", f"{name.strip()} read", speed, "codes/s", ">= 20,000/s", speed >= 20000)
    ms, mib = import_cost("station.gs1.verdict")
    bms, bmib = import_cost("biip")
    print(
        f"import      station {ms:6.1f} ms  +{mib:4.1f} MiB RSS   biip {bms:6.1f} ms  +{bmib:4.1f} MiB RSS"
        f"   ratio {ms / bms:4.2f}"
    )
    emit("reader", "import time", ms, "ms", "under biip's", ms < bms, bms, "biip")


if __name__ == "__main__":
    main()
