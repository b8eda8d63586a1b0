"""What the station costs a Pi: install size of each wing, and the daemon's RSS once READY.

Makes a fresh venv per wing (``pip install .[edge]`` and ``.[central]``), measures what the
packages add beside an empty venv, then starts ``station run --simulate`` (no MQTT) from the edge
venv and reads its RSS after it is ready and has judged a scan. Needs the package registries.

    .venv/bin/python bench/bench_footprint.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

ROOT = Path(__file__).resolve().parent.parent


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def site(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def venv_with(where: Path, extra: str | None) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    if extra is not None:
        spec = f"{ROOT}[{extra}]" if extra else str(ROOT)
        subprocess.run(
            [str(where / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", spec],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return where


def daemon_rss(venv: Path, work: Path) -> tuple[float, float]:
    """(seconds to READY, RSS in MiB after one scan) of the simulated daemon."""
    cfg = work / "station.toml"
    cfg.write_text(f'[station]\nid = "fp"\n[storage]\npath = "{work / "s.db"}"\n[mqtt]\nenabled = false\n')
    log = work / "daemon.log"
    t = time.perf_counter()
    proc = subprocess.Popen(
        [str(venv / "bin" / "station"), "run", "--simulate", "-c", str(cfg)],
        stdin=subprocess.PIPE,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    while b"ready" not in log.read_bytes():
        time.sleep(0.005)
        if proc.poll() is not None:
            raise SystemExit(log.read_text())
    ready = time.perf_counter() - t
    assert proc.stdin is not None
    proc.stdin.write(b"]d20108699536090122211234\x1d17301231101\n")
    proc.stdin.flush()
    while b"scan seq=1" not in log.read_bytes():
        time.sleep(0.01)
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        if line.startswith("VmRSS")
    )
    proc.stdin.close()
    proc.wait(10)
    return ready, rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="make the venvs here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        empty = du(site(venv_with(base / "empty", None)))
        for wing in ("edge", "central"):
            venv = venv_with(base / wing, wing)
            size = (du(site(venv)) - empty) / 2**20
            print(f"install  .[{wing}]   {size:6.1f} MiB beside an empty venv")
            emit("footprint", f"install size .[{wing}]", size, "MiB", "", None)
        ready, rss = daemon_rss(base / "edge", base)
        print(f"daemon   ready in {ready:.2f} s, RSS {rss:.1f} MiB after one scan (simulated pins, no MQTT)")
        emit("footprint", "station daemon RSS (.[edge] install)", rss, "MiB", "", None)
        emit("footprint", "station daemon time to READY (.[edge] install)", ready * 1e3, "ms", "", None)


if __name__ == "__main__":
    main()
