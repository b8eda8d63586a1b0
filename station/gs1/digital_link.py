"""GS1 Digital Link URIs (``https://id.example.com/01/09506000134352/10/ABC?17=261231``) to AI fields.

Read as the GS1 Syntax Engine reads them (``dl.c``), which follows the GS1 Digital Link standard
1.x: the path is searched from its end for the rightmost ``/AI/value`` pair whose AI is a
primary key (``dlpkey`` in the Syntax Dictionary); anything before it is the stem. The key and the
qualifiers after it must form one of the key's qualifier sequences in order; query parameters
whose names are all digits must be AIs that may be data attributes (``?`` in the dictionary) and
may not be ones that belong in the path; other parameters and the fragment are ignored. Values are
percent-decoded (``+`` is a space in the query). Convenience names (``/gtin/``) and zero-suppressed
GTINs are refused, as the reference does by default.

The fields then go through the same checks as an element string (``elements.check_fields``).
"""

from __future__ import annotations

import re
from functools import cache

from station.gs1.ai_table import AIS
from station.gs1.elements import Fault, Field, length_range
from station.gs1.reasons import Reason

URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
BAD_DOMAIN = set("_~?#@!$&'()*+,;=%")
SCHEMES = ("https://", "HTTPS://", "http://", "HTTP://")


def is_digital_link(text: str) -> bool:
    return text.startswith(SCHEMES)


@cache
def key_sequences() -> frozenset[tuple[str, ...]]:
    """Every valid path: a primary key followed by any ordered subset of one qualifier sequence."""
    found: set[tuple[str, ...]] = set()
    for ai, entry in AIS.items():
        for sequence in entry.dl_key or ():
            chosen: list[tuple[str, ...]] = [()]
            for qualifier in sequence:
                chosen += [(*c, qualifier) for c in chosen]
            found.update((ai, *c) for c in chosen)
    return frozenset(found)


@cache
def _keys() -> frozenset[str]:
    return frozenset(s[0] for s in key_sequences() if len(s) == 1)


def _unescape(text: str, query: bool) -> str | None:
    """Percent-decoding as the reference does it; None when a NUL comes out."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%" and i < len(text) - 2 and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1 : i + 3]):
            ch = chr(int(text[i + 1 : i + 3], 16))
            if ch == "\0":
                return None
            out.append(ch)
            i += 3
            continue
        out.append(" " if query and c == "+" else c)
        i += 1
    return "".join(out)


def _bad(message: str, reason: Reason = Reason.NOT_GS1) -> tuple[list[Field], list[Fault]]:
    return [], [Fault(reason, message)]


def _value(ai: str, raw: str, query: bool) -> str | Fault:
    """One value of the link, decoded, with the reference's parse-time checks: not empty, no NUL,
    within the AI's length range, no ``^`` (its FNC1 sign)."""
    where = "query" if query else "path"
    if not raw:
        return Fault(Reason.INVALID_LENGTH, f"AI {ai} in the link's {where} has no value.")
    value = _unescape(raw, query)
    if value is None:
        return Fault(Reason.INVALID_CHARACTER, f"AI {ai} in the link decodes to a NUL.")
    lo, hi = length_range(ai)
    if not lo <= len(value) <= hi:
        return Fault(Reason.INVALID_LENGTH, f"AI {ai} in the link has {len(value)} characters; {lo} to {hi} allowed.")
    if "^" in value:
        return Fault(Reason.INVALID_CHARACTER, f"AI {ai} in the link holds '^'.")
    return value


def split_link(uri: str) -> tuple[list[Field], list[Fault]]:
    """A Digital Link URI to AI fields in path order, then query order; or the first fault."""
    if URI_CHARACTERS.fullmatch(uri) is None:
        return _bad("The link holds characters a URI cannot have.", Reason.INVALID_CHARACTER)
    scheme = next((s for s in SCHEMES if uri.startswith(s)), None)
    if scheme is None:
        return _bad("Not an http(s) link.")
    rest = uri[len(scheme) :]
    slash = rest.find("/")
    domain = rest if slash < 0 else rest[:slash]
    if any(c in BAD_DOMAIN for c in domain):
        return _bad("The link's domain holds characters a domain cannot have.", Reason.INVALID_CHARACTER)
    if slash < 1:
        return _bad("The link has no domain or no path.")
    path = rest[slash:]
    path, _, _fragment = path.partition("#")
    path, has_query, query = path.partition("?")
    segments = path.split("/")  # segments[0] is "" (the path starts with '/')
    keys = _keys()
    start = None
    i = len(segments) - 2
    while i >= 1:
        ai = segments[i]
        if ai not in AIS:
            break
        if ai in keys:
            start = i
            break
        i -= 2
    if start is None:
        return _bad("The link's path has no GS1 primary key (/01/, /00/...).")
    fields: list[Field] = []
    for j in range(start, len(segments) - 1, 2):
        ai = segments[j]
        value = _value(ai, segments[j + 1], query=False)
        if isinstance(value, Fault):
            return [], [value]
        fields.append((ai, value))
    path_ais = tuple(ai for ai, _ in fields)
    attributes: list[Field] = []
    for part in query.split("&") if has_query else ():
        name, has_value, raw = part.partition("=")
        if not part or not has_value:
            continue
        if name and not (name.isdigit() and name.isascii()):
            continue  # not an AI: ignored, as the standard says (an empty name is no AI either)
        if name not in AIS:
            return _bad(f"Query parameter {name} is no GS1 application identifier.")
        value = _value(name, raw, query=True)
        if isinstance(value, Fault):
            return [], [value]
        attributes.append((name, value))
    if path_ais not in key_sequences():
        return _bad(f"AIs {'/'.join(path_ais)} in the link's path are not a key and its qualifiers in order.")
    seen = set(path_ais)
    for ai, _ in attributes:
        if ai in seen:
            return _bad(f"AI {ai} appears twice in the link.", Reason.INVALID_COMBINATION)
        seen.add(ai)
    for ai, _ in attributes:
        if not AIS[ai].dl_attribute:
            return _bad(f"AI {ai} may not be a link query attribute.", Reason.INVALID_COMBINATION)
        for j in range(1, len(path_ais) + 1):
            if (*path_ais[:j], ai, *path_ais[j:]) in key_sequences():
                return _bad(f"AI {ai} belongs in the link's path, not its query.", Reason.INVALID_COMBINATION)
    return fields + attributes, []
