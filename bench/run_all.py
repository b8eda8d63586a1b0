"""Every benchmark, one table (``bench/run``).

Each bench runs as its own process (its own broker, files and ledger), its output kept in
``var/bench/NAME.log``; the ``FIGURE`` lines it prints (``bench/figures.py``) become the rows of one
table: figure, this project, the reference measured in the same run, the ratio, the goal, met or
not. The table is printed and written to ``bench/last-run.md`` with the machine it ran on, and a
Pi estimate from the CPU a scan takes here.

    bench/run [--quick [--full NAME ...]] [--only NAME ...] [--mutation] [--gs1-engine LIB]

``--quick`` runs smaller sizes (minutes); the default sizes are the issue's (about an hour).
Mutation testing takes hours and runs only with ``--mutation``; the GS1 Syntax Engine comparison
needs the engine's shared library (``--gs1-engine``, see the README).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from figures import Figure

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"

PI_CPU_FACTOR = 5.0
"""How much slower a Raspberry Pi 4's core runs this Python than this machine's (an assumption,
from pyperformance figures for Cortex-A72 at 1.5 GHz against a current x86 core: 4-6x)."""

PI_FSYNC_MS = 3.0
"""A durable SQLite commit on a good A1/A2 SD card (typical 1-5 ms)."""


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    optional: bool = False


BENCHES = [
    Bench("reader", "bench_reader.py"),
    Bench(
        "station",
        "bench_station.py",
        ("--scans", "3000", "--events", "100000", "--rss-scans", "1000000"),
        ("--scans", "1000", "--events", "20000", "--rss-scans", "50000"),
    ),
    Bench("growth", "bench_growth.py", ("--units", "1000000,10000000"), ("--units", "1000000")),
    Bench("delivery", "bench_delivery.py", (), ("--scans", "500")),
    Bench("submitter", "bench_submitter.py", ("--events", "50000"), ("--events", "20000", "--units", "300")),
    Bench("ledger", "bench_ledger.py", ("--jobs", "1000000"), ("--jobs", "200000")),
    Bench(
        "fleet",
        "bench_fleet.py",
        ("--stations", "500", "--rate", "1000", "--seconds", "60"),
        ("--stations", "100", "--rate", "200", "--seconds", "20", "--down", "5"),
    ),
    Bench("chaos", "bench_chaos.py", ("200",), ("20",)),
    Bench("fuzz", "bench_fuzz.py", ("1000000",), ("100000",)),
    Bench("footprint", "bench_footprint.py"),
    Bench("gs1 engine", "bench_gs1_engine.py", optional=True),
    Bench("mutation", "bench_mutation.py", optional=True),
]


def machine() -> str:
    cpu = mem = "?"
    with contextlib.suppress(OSError, StopIteration):
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    with contextlib.suppress(OSError, StopIteration, ValueError):
        total = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        mem = f"{int(total.split()[1]) / 2**20:.1f} GiB"
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem} RAM, {platform.system()} {platform.release()},"
        f" Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def number(x: float | None) -> str:
    if x is None:
        return ""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.1f}"


def table(figures: list[Figure], failed: list[str]) -> str:
    rows = [
        "| bench | figure | this project | reference (same run) | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ref = f"{number(f.reference)} {f.unit} ({f.reference_name})" if f.reference is not None else ""
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        met = {True: "met", False: "**not met**", None: ""}[f.met]
        rows.append(f"| {f.bench} | {f.name} | {number(f.ours)} {f.unit} | {ref} | {ratio} | {f.goal} | {met} |")
    for name in failed:
        rows.append(f"| {name} | the bench itself | failed (see var/bench/{name}.log) | | | runs | **not met** |")
    return "\n".join(rows)


def pi_estimate(figures: list[Figure]) -> str:
    cpu = next((f for f in figures if f.bench == "station" and f.name.startswith("CPU per scan")), None)
    if cpu is None:
        return ""
    scan = cpu.ours * PI_CPU_FACTOR
    return (
        f"Pi 4 estimate: {cpu.ours:.3f} ms of CPU per scan here x {PI_CPU_FACTOR:.0f} = {scan:.2f} ms, plus a durable"
        f" commit on an SD card (~{PI_FSYNC_MS:.0f} ms): about {scan + PI_FSYNC_MS:.1f} ms from scan to light, of"
        f" which the station's own work is {scan / (scan + PI_FSYNC_MS):.0%} ({(scan + PI_FSYNC_MS) / PI_FSYNC_MS:.2f}x"
        " a bare commit); a conveyor at 15 boxes/s leaves 67 ms per box."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: minutes, not an hour")
    parser.add_argument("--only", nargs="*", default=(), help="these benches only (names as in the table)")
    parser.add_argument("--full", nargs="*", default=(), help="with --quick: these benches at full size all the same")
    parser.add_argument("--mutation", action="store_true", help="mutation testing too (hours)")
    parser.add_argument("--gs1-engine", metavar="LIB", help="the GS1 Syntax Engine's libgs1encoders.so")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "last-run.md")
    args = parser.parse_args()
    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    failed: list[str] = []
    for b in BENCHES:
        if args.only and b.name not in args.only:
            continue
        extra: tuple[str, ...] = b.quick if args.quick and b.name not in args.full else b.full
        if b.name == "mutation" and not args.mutation:
            continue
        if b.name == "gs1 engine":
            if not args.gs1_engine:
                continue
            extra = (args.gs1_engine, "30000" if args.quick else "300000")
        log = logs / f"{b.name.replace(' ', '-')}.log"
        started = time.monotonic()
        print(f"bench/run: {b.name} ...", flush=True)
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(PYTHON), str(ROOT / "bench" / b.script), *extra],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                figure = Figure.parse(line)
                if figure is not None:
                    figures.append(figure)
            code = proc.wait()
        took = time.monotonic() - started
        print(f"bench/run: {b.name} done in {took:.0f} s{'' if code == 0 else f' (exit {code})'}", flush=True)
        if code != 0:
            failed.append(b.name)
    text = "\n\n".join(
        x
        for x in (
            f"`bench/run{' --quick' if args.quick else ''}{' --full ' + ' '.join(args.full) if args.full else ''}`"
            f" on {machine()}.",
            table(figures, failed),
            pi_estimate(figures),
        )
        if x
    )
    print(text)
    args.out.write_text(text + "\n")
    print(f"bench/run: table written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
