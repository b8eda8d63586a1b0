"""Write the README's MQTT message tables from ``station.wire``, or check that they match.

.venv/bin/python scripts/wire_doc.py          # rewrite the block between the wire markers
.venv/bin/python scripts/wire_doc.py --check  # exit 1 when the README lags the contract
"""

from __future__ import annotations

import sys
import types
import typing
from dataclasses import MISSING, fields
from enum import StrEnum
from pathlib import Path

from station import wire

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- wire:begin (scripts/wire_doc.py writes this) -->", "<!-- wire:end -->"


def type_name(kind: typing.Any) -> str:
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return f"{type_name(inner[0])} or null"
    if typing.get_origin(kind) is tuple:
        return f"list of {type_name(typing.get_args(kind)[0])}"
    if typing.get_origin(kind) is dict:
        return "object of booleans"
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return " \\| ".join(f"`{m.value}`" for m in kind)
    if isinstance(kind, type) and issubclass(kind, wire.Message):
        return kind.__name__
    return {str: "string", int: "integer", float: "number", bool: "boolean"}[kind]


def limits(kind: typing.Any, meta: typing.Mapping[str, typing.Any], default: typing.Any) -> str:
    """What a value may be, as ``station.wire`` checks it: length, form, range, items, default."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    out = []
    if kind is str:
        pattern = meta.get("pattern")
        out.append(f"≤ {meta.get('max_len', 200)} chars")
        form = pattern.pattern if pattern is not None else "no control characters"
        out.append(f"`{form}`".replace("|", "\\|") if pattern is not None else form)
    elif kind in (int, float):
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None or hi is not None:
            out.append(f"{'' if lo is None else lo}..{'' if hi is None else hi}")
    elif typing.get_origin(kind) is tuple:
        out.append(f"≤ {meta.get('max_len', 200)} items")
    elif typing.get_origin(kind) is dict:
        out.append("≤ 64 keys")
    if default is not MISSING and default not in (None, (), ""):
        out.append(f"default `{default}`")
    return ", ".join(out)


def tables() -> str:
    out = ["| topic | direction | QoS | message |", "|---|---|---|---|"]
    for topic, (direction, kind, qos, retained) in wire.TOPICS.items():
        name = wire.MESSAGES[kind].__name__
        out.append(f"| `{topic}` | {direction.replace('->', '→')} | {qos}{', retained' if retained else ''} | {name} |")
    for message in dict.fromkeys([*wire.MESSAGES.values(), wire.ResultBatch, wire.EventBatch]):
        hints = typing.get_type_hints(message)
        doc = " ".join((message.__doc__ or "").split()).replace("``", "`")
        out += ["", f"**{message.__name__}** (at most {message.MAX_BYTES // 1024} KiB): {doc}", ""]
        out += ["| field | type | required | limits | meaning |", "|---|---|---|---|---|"]
        for f in fields(message):
            required = "yes" if f.default is MISSING and f.default_factory is MISSING else ""
            kind = hints[f.name]
            out.append(
                f"| `{f.name}` | {type_name(kind)} | {required} | {limits(kind, f.metadata, f.default)}"
                f" | {f.metadata.get('doc', '')} |"
            )
    return "\n".join(out)


def main() -> int:
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + tables() + "\n" + text[end:]
    if "--check" in sys.argv:
        if new != text:
            print("README.md: the MQTT tables lag station/wire.py; run scripts/wire_doc.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
