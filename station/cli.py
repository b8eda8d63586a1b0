"""``station``: the command line a technician uses over ssh, and the daemon's entry point.

Each subcommand lives in one small function; heavy modules are imported inside them so that
``station decode`` starts fast on a Pi.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from datetime import date
from typing import BinaryIO

from station import __version__

DEFAULT_CONFIG = "/etc/karekod-station/station.toml"


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of raw bytes ending at LF (which is dropped); CR and GS stay for the reader."""
    buf = b""
    for chunk in iter(lambda: stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536), b""):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        yield from lines
    if buf:
        yield buf


def cmd_decode(args: argparse.Namespace) -> int:
    from station.reader import Profile
    from station.verdict import Policy, judge

    today = date.fromisoformat(args.today) if args.today else date.today()
    policy = Policy(Profile(args.profile), args.min_shelf_life_days)
    out = sys.stdout
    for line in _lines(sys.stdin.buffer):
        out.write(json.dumps(judge(line, policy, today).as_dict(), ensure_ascii=False) + "\n")
        out.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station", description="Karekod Station: scan, verify, record, report.")
    parser.add_argument("--version", action="version", version=f"karekod-station {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("decode", help="read raw scans from stdin, one per line; print one JSON verdict each")
    p.add_argument("--profile", choices=["its", "uts", "gs1"], default="its")
    p.add_argument("--today", metavar="YYYY-MM-DD", help="the day expiry is judged against (default: today)")
    p.add_argument("--min-shelf-life-days", type=int, metavar="N", default=None)
    p.set_defaults(func=cmd_decode)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
