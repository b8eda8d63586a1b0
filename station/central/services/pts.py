"""PTS (Paket Transfer Sistemi) packages: what a sender says a delivery holds, read safely.

A package is a zip (base64 in ``GetPackage``'s ``fileStream``) holding one XML ``transfer``: the
sender and receiver GLNs, the waybill's document number and date, and a tree of carriers
(pallets, cases: ``carrierLabel`` is an SSCC) down to ``productList`` elements (GTIN, lot,
expiry) with one ``serialNumber`` per box. Reference: shared/reference/uts-its-api.md §3.6.

Packages come from outside, so they are read as hostile: the zip's size, entry count and
unpacked size are limited, and it is unpacked as a stream that stops at the limit (a zip bomb
never reaches memory); the XML is read by expat as a stream with DTDs and entities refused
(what defusedxml refuses: no entity expansion, no external entities), element depth and unit
count limited. Every fault is one :class:`PackageError` with a stable, readable reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from station.gs1.linters import check_digit
from station.wire import Carrier, DeliveryLine

MAX_PACKAGE = 10 * 1024 * 1024
"""The service's own limit on a package file (İTS code 20009)."""
MAX_XML = 64 * 1024 * 1024
"""Unpacked XML: about 1.5 million serials; a zip that unpacks to more is refused as a bomb."""
MAX_ENTRIES = 16
MAX_DEPTH = 32
MAX_UNITS = 1_000_000
CHUNK = 64 * 1024

_GTIN = re.compile(r"\d{14}")
_SERIAL = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_GLN = re.compile(r"\d{13}")


class PackageError(ValueError):
    """A package refused; ``reason`` is one line naming what and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Package:
    """One PTS transfer, as checked values."""

    sender: str
    receiver: str
    document: str
    document_date: str | None = None
    action: str = ""
    ship_to: str = ""
    note: str = ""
    transfer_id: str = ""
    carriers: tuple[Carrier, ...] = ()
    lines: tuple[DeliveryLine, ...] = ()

    @property
    def units(self) -> int:
        return sum(line.count for line in self.lines)


def sscc_of(label: str) -> str | None:
    """A carrier label as an 18-digit SSCC (a 20-character label with its AI ``00`` too), or None."""
    label = label.strip()
    if len(label) == 20 and label.startswith("00"):
        label = label[2:]
    if len(label) == 18 and label.isdigit() and check_digit(label[:-1]) == int(label[-1]):
        return label
    return None


def gtin_of(value: str) -> str | None:
    value = value.strip()
    if value.isdigit() and 8 <= len(value) <= 14:
        value = value.zfill(14)
        if check_digit(value[:-1]) == int(value[-1]):
            return value
    return None


# -- reading ----------------------------------------------------------------------------------


def decode_file_stream(text: Any, max_bytes: int = MAX_PACKAGE) -> bytes:
    """``fileStream`` (base64) to zip bytes, refused before decoding when it is too large."""
    if not isinstance(text, str) or not text:
        raise PackageError("the answer has no fileStream")
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise PackageError(f"the package is larger than {max_bytes // (1024 * 1024)} MB")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PackageError("fileStream is not base64") from None


def read_package(data: bytes, transfer_id: str = "", max_bytes: int = MAX_PACKAGE, max_xml: int = MAX_XML) -> Package:
    """A package's zip bytes to a :class:`Package`; :class:`PackageError` names what is wrong."""
    if len(data) > max_bytes:
        raise PackageError(f"the package is larger than {max_bytes // (1024 * 1024)} MB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise PackageError("not a zip file") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise PackageError(f"the zip has {len(entries)} entries (at most {MAX_ENTRIES})")
        xmls = [e for e in entries if not e.is_dir() and e.filename.lower().endswith(".xml")]
        if len(xmls) != 1:
            raise PackageError(f"the zip holds {len(xmls)} XML files, not one")
        entry = xmls[0]
        if entry.flag_bits & 0x1:
            raise PackageError(f"{entry.filename} is encrypted")
        if entry.file_size > max_xml:
            raise PackageError(f"{entry.filename} unpacks to {entry.file_size} bytes (at most {max_xml})")
        try:
            with archive.open(entry) as stream:
                return parse_xml(_limited(stream, max_xml, entry.filename), transfer_id)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as e:
            raise PackageError(f"{entry.filename}: cannot be unpacked ({str(e)[:80]})") from None


def _limited(stream: io.BufferedIOBase | Any, limit: int, name: str) -> Iterable[bytes]:
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return
        total += len(chunk)
        if total > limit:
            raise PackageError(f"{name} unpacks to more than {limit} bytes")
        yield chunk


_HEADER = {
    "sourcegln": "sender",
    "destinationgln": "receiver",
    "actiontype": "action",
    "shipto": "ship_to",
    "documentnumber": "document",
    "documentdate": "document_date",
    "note": "note",
}


@dataclass
class _Open:
    """A carrier being read."""

    sscc: str | None
    lines: dict[tuple[str, str | None, str | None], list[str]] = field(default_factory=dict)


class _Reader:
    """The expat handlers: a small state machine over the element stack."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.stack: list[str] = []
        self.header: dict[str, str] = {}
        self.text: list[str] = []
        self.carriers: list[Carrier] = []
        self.open: list[_Open] = [_Open(None)]
        self.product: tuple[str, str | None, str | None] | None = None
        self.lines: list[DeliveryLine] = []
        self.units = 0
        self.seen: set[tuple[str, str]] = set()
        self.labels: set[str] = set()

    def fail(self, why: str) -> NoReturn:
        raise PackageError(f"line {self.parser.CurrentLineNumber}: {why}")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = name.rsplit(":", 1)[-1].lower()
        if len(self.stack) >= MAX_DEPTH:
            self.fail(f"elements nested deeper than {MAX_DEPTH}")
        if not self.stack and tag not in ("transfer", "package", "shipmentnotification"):
            self.fail(f"<{name}> is not a PTS transfer")
        self.stack.append(tag)
        self.text = []
        low = {k.lower(): v for k, v in attrs.items()}
        if tag == "carrier":
            label = low.get("carrierlabel", "")
            sscc = sscc_of(label)
            if sscc is None:
                self.fail(f"carrierLabel {label[:40]!r} is not an SSCC")
            if sscc in self.labels:
                self.fail(f"carrier {sscc} appears twice")
            self.labels.add(sscc)
            parent = self.open[-1].sscc
            kind = re.sub(r"[^A-Za-z0-9_]", "", low.get("containertype", ""))[:16]
            self.carriers.append(Carrier(sscc=sscc, parent=parent, kind=kind))
            self.open.append(_Open(sscc))
        elif tag == "productlist":
            gtin = gtin_of(low.get("gtin", ""))
            if gtin is None:
                self.fail(f"productList GTIN {low.get('gtin', '')[:20]!r} is not a GTIN")
            lot = low.get("lotnumber", "").strip() or None
            if lot is not None and not _SERIAL.fullmatch(lot):
                self.fail(f"lotNumber {lot[:40]!r} is not 1-20 GS1 characters")
            expiry = low.get("expirationdate", "").strip()[:10] or None
            if expiry is not None and not _DATE.fullmatch(expiry):
                self.fail(f"expirationDate {expiry!r} is not YYYY-MM-DD")
            self.product = (gtin, lot, expiry)

    def end(self, name: str) -> None:
        tag = self.stack.pop()
        text = "".join(self.text).strip()
        self.text = []
        if tag == "serialnumber" and self.product is not None:
            if not _SERIAL.fullmatch(text):
                self.fail(f"serialNumber {text[:40]!r} is not 1-20 GS1 characters")
            key = (self.product[0], text)
            if key in self.seen:
                self.fail(f"unit {key[0]} {text} appears twice")
            self.seen.add(key)
            self.units += 1
            if self.units > MAX_UNITS:
                self.fail(f"more than {MAX_UNITS} units")
            self.open[-1].lines.setdefault(self.product, []).append(text)
        elif tag == "productlist":
            self.product = None
        elif tag == "carrier":
            self._flush(self.open.pop())
        elif len(self.stack) == 1 and tag in _HEADER:
            self.header[_HEADER[tag]] = text

    def chars(self, data: str) -> None:
        self.text.append(data)
        if len(self.text) > 4096:
            self.text = ["".join(self.text)]
            if len(self.text[0]) > 4096:
                self.fail("an element's text is longer than 4096 characters")

    def _flush(self, carrier: _Open) -> None:
        for (gtin, lot, expiry), serials in carrier.lines.items():
            self.lines.append(
                DeliveryLine(di=gtin, batch=lot, expiry=expiry, carrier=carrier.sscc, serials=tuple(serials))
            )

    @staticmethod
    def refuse(*_: Any) -> NoReturn:
        raise PackageError("a DTD or entity declaration (refused: entity expansion)")


def parse_xml(chunks: Iterable[bytes], transfer_id: str = "") -> Package:
    """A PTS ``transfer`` XML, fed in chunks, to a :class:`Package`."""
    parser = expat.ParserCreate()
    reader = _Reader(parser)
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.chars
    parser.StartDoctypeDeclHandler = reader.refuse
    parser.EntityDeclHandler = reader.refuse
    parser.ExternalEntityRefHandler = reader.refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except expat.ExpatError as e:
        raise PackageError(f"not well-formed XML: {expat.ErrorString(e.code)} at line {e.lineno}") from None
    reader._flush(reader.open[0])
    h = reader.header
    for key in ("sender", "receiver"):
        if not _GLN.fullmatch(h.get(key, "")):
            what = "sourceGLN" if key == "sender" else "destinationGLN"
            raise PackageError(f"{what} {h.get(key, '')[:20]!r} is not a 13-digit GLN")
    if not h.get("document"):
        raise PackageError("documentNumber is missing")
    date = h.get("document_date", "")[:10] or None
    if date is not None and not _DATE.fullmatch(date):
        date = None
    return Package(
        sender=h["sender"],
        receiver=h["receiver"],
        document=h["document"][:100],
        document_date=date,
        action=h.get("action", "")[:16],
        ship_to=h.get("ship_to", "")[:13],
        note=h.get("note", "")[:500],
        transfer_id=transfer_id,
        carriers=tuple(reader.carriers),
        lines=tuple(reader.lines),
    )


# -- writing (the sandbox's packages, tests, and a sender's SendPackage) ---------------------------


def package_xml(package: Package) -> bytes:
    """The PTS XML of a package (version 1.4 as senders write it), carriers nested as given."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<transfer>"]
    for tag, value in (
        ("sourceGLN", package.sender),
        ("destinationGLN", package.receiver),
        ("actionType", package.action or "S"),
        ("shipTo", package.ship_to or package.receiver),
        ("documentNumber", package.document),
        ("documentDate", package.document_date or ""),
        ("note", package.note),
        ("version", "1.4"),
    ):
        out.append(f"<{tag}>{escape(value)}</{tag}>")
    children: dict[str | None, list[Carrier]] = {}
    for c in package.carriers:
        children.setdefault(c.parent, []).append(c)
    lines: dict[str | None, list[DeliveryLine]] = {}
    for line in package.lines:
        lines.setdefault(line.carrier, []).append(line)

    def products(where: str | None) -> None:
        for line in lines.get(where, []):
            attrs = f"GTIN={quoteattr(line.di)}"
            if line.batch:
                attrs += f" lotNumber={quoteattr(line.batch)}"
            if line.expiry:
                attrs += f" expirationDate={quoteattr(line.expiry)}"
            out.append(f"<productList {attrs}>")
            out.extend(f"<serialNumber>{escape(s)}</serialNumber>" for s in line.serials)
            out.append("</productList>")

    def carrier(c: Carrier) -> None:
        out.append(f"<carrier carrierLabel={quoteattr(c.sscc)} containerType={quoteattr(c.kind or 'C')}>")
        for child in children.get(c.sscc, []):
            carrier(child)
        products(c.sscc)
        out.append("</carrier>")

    for top in children.get(None, []):
        carrier(top)
    products(None)
    out.append("</transfer>")
    return "\n".join(out).encode()


def package_zip(package: Package, name: str = "") -> bytes:
    """The zip a sender uploads: one XML file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name or f"PTS_{package.document or 'package'}.xml", package_xml(package))
    return buffer.getvalue()
