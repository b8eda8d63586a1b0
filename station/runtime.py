"""Small runtime helpers both daemons share: sd_notify, logging, and the CLI's manners.

sd_notify needs no dependency (READY, WATCHDOG, STATUS and STOPPING to systemd) and does nothing
when the daemon does not run under systemd (no ``NOTIFY_SOCKET``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any, NoReturn

from station.tomlcheck import ConfigError


def notify(message: str) -> bool:
    """Send one notification (``READY=1``, ``WATCHDOG=1``, ``STATUS=...``). True when sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False


YOUNG_OBJECTS = 10_000
"""Objects made (and not yet freed) that start a collection of the youngest generation, in a daemon
tuned by :func:`collect_less` (CPython's default: 700)."""


def collect_less() -> None:
    """Tune CPython's garbage collector for a daemon that makes many small objects that live briefly.

    Called once its start-up is done: what start-up made is frozen (never looked at again by a
    collection), and the youngest generation is collected every :data:`YOUNG_OBJECTS` objects
    instead of every 700. The submitter makes a dozen objects a message (paho's packet and message,
    the JSON, the typed event, the ledger's rows); at the default a collection ran every few dozen
    messages and took 12 % of ingest (one event a message, medians of five runs of
    ``bench/bench_submitter.py``'s ingest: 14,149 events/s at the default, 16,157 with this).
    Reference cycles are still found, a little later; nothing is kept that would not be kept
    anyway. The station's scan path was measured with and without it: no difference (1.53-1.61x
    either way), so the station leaves the collector as it is."""
    import gc

    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, 10, 10)


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds, or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``--log-format json``, for journald's JSON readers and Loki):
    ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``error`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


LOG_FORMATS = ("text", "json")


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """One line per record to stdout (journald adds the time), as text or JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    logging.getLogger("gpiozero").setLevel(logging.WARNING)


def load_or_exit(load: Callable[[str], Any], path: str, prog: str) -> Any:
    """A checked configuration, or exit 2 with every problem listed."""
    try:
        return load(path)
    except ConfigError as e:
        print(f"{prog}: bad configuration, not starting:\n{e}", file=sys.stderr)
        raise SystemExit(2) from None


class Parser(argparse.ArgumentParser):
    """argparse with one line for a bad argument (``station: --today: 2026-13-01 is not a date``),
    then exit 2: no usage block to scroll past over ssh (``--help`` still shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def iso_date(text: str) -> date:
    """An argparse ``type`` for ``YYYY-MM-DD`` that says which value is wrong and why."""
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD): {e}") from None


def one_of(values: Iterable[str], what: str) -> Callable[[str], str]:
    """An argparse ``type`` accepting only ``values``; the refusal names them."""
    known = sorted(set(values))

    def check(text: str) -> str:
        if text not in known:
            raise argparse.ArgumentTypeError(f"{text!r} is not a known {what}: one of {', '.join(known)}")
        return text

    return check


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run the chosen subcommand: Ctrl+C is exit 130, a closed pipe (``| head``) is no error."""
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args))
    except SystemExit as e:  # a command that said why (one line) and gave up: its code
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
