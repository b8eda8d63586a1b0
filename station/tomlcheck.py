"""Configuration files checked key by key: every problem named with its ``file:line``.

Shared by the station's and the central side's configuration, so both speak to a technician the
same way and a file the check passes is a file the daemon starts with.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A station's (or scanner's, site's) name: it becomes an MQTT topic level."""


class ConfigError(ValueError):
    """A configuration file that cannot be used; ``problems`` has one line per bad key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


Check = Callable[[Any], str | None]
"""A value check: None when fine, otherwise what is wrong."""


def typed(kind: type, also: Check | None = None) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, kind) and not (kind in (int, float) and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            return f"must be {'a number' if kind in (int, float) else kind.__name__}"
        return also(v) if also else None

    return check


def at_least(lo: float) -> Check:
    return lambda v: None if v >= lo else f"must be at least {lo}"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _line_index(text: str) -> dict[tuple[str, str], int]:
    """(table, key) -> line number, so problems point at the line a technician must edit."""
    index: dict[tuple[str, str], int] = {}
    table = ""
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"\[\s*([A-Za-z0-9_.\-\s]+?)\s*\]", stripped)
        if header and not stripped.startswith("[["):
            table = header.group(1).replace(" ", "")
            index.setdefault((table, ""), no)
            continue
        key = re.match(r'([A-Za-z0-9_\-]+|"[^"]*")\s*=', stripped)
        if key:
            index.setdefault((table, key.group(1).strip('"')), no)
    return index


def read_toml(text: str, path: str) -> tuple[dict[str, Any], Callable[..., str]]:
    """Parsed TOML and ``where(table, key="")``, which names the ``file:line`` of a key for messages.

    Shared by the station's and the submitter's configuration.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, [f"{path}: not valid TOML: {e}"]) from None
    lines = _line_index(text)

    def where(table: str, key: str = "") -> str:
        no = lines.get((table, key)) or lines.get((table, ""))
        return f"{path}:{no}" if no else path

    return data, where


def read_file(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), [f"{path}: cannot read: {e.strerror or e}"]) from None


def line_of(problem: str) -> int:
    m = re.match(r"[^:]*:(\d+):", problem)
    return int(m.group(1)) if m else 0


def port() -> Check:
    return typed(int, lambda v: None if 1 <= v <= 65535 else "must be a port number from 1 to 65535")


def topic_prefix() -> Check:
    return typed(str, lambda v: None if v and not {"+", "#"} & set(v) else "must be a topic without + or #")


def secret_file(path: str, what: str) -> str | None:
    """Why a password or token file cannot be used (missing, unreadable, readable by anyone), or None.

    A secret must be readable by its daemon's user and group only: ``chmod 0640``, owner root,
    group the service's.
    """
    try:
        st = os.stat(path)
        with open(path, "rb"):
            pass
    except OSError as e:
        return f"{what}: cannot read {path}: {e.strerror or e}"
    if st.st_mode & 0o007:
        return f"{what}: {path} can be read by any user (mode {st.st_mode & 0o777:04o}): chmod o-rwx {path}"
    return None


def read_secret(path: str, what: str) -> str:
    """A password or token file's content, once :func:`secret_file` finds nothing wrong with it;
    otherwise ConfigError with that one line."""
    wrong = secret_file(path, what)
    if wrong:
        raise ConfigError(path, [wrong])
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, [f"{what}: cannot read {path}: {e}"]) from None
