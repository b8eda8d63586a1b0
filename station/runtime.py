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
from collections.abc import Callable
from typing import Any

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


def setup_logging(level: str = "INFO") -> None:
    """One line per record to stdout (journald adds the time)."""
    logging.basicConfig(
        stream=sys.stdout,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("gpiozero").setLevel(logging.WARNING)


def load_or_exit(load: Callable[[str], Any], path: str, prog: str) -> Any:
    """A checked configuration, or exit 2 with every problem listed."""
    try:
        return load(path)
    except ConfigError as e:
        print(f"{prog}: bad configuration, not starting:\n{e}", file=sys.stderr)
        raise SystemExit(2) from None


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run the chosen subcommand: Ctrl+C is exit 130, a closed pipe (``| head``) is no error."""
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
