"""``station sheet``: one printed page of the station's command barcodes, each with a caption a
person can read, plus a test karekod that must read as accept.

Commands are QR codes (segno); the test karekod is a GS1 DataMatrix (ppf-datamatrix, with the
FNC1 GS1 needs written here) on a GS1 demonstration GTIN (company prefix 952), which a station
shows as accepted and never records or notifies. The page is composed with Pillow at 300 dpi, as
PNG or PDF. These libraries are the ``[sheet]`` extra: a Pi that never prints does not carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from station.edge.commands import Command, payload

DPI = 300
A4 = (2480, 3508)  # pixels at 300 dpi
GS = "\x1d"
TEST_GTIN = "09520000000011"
"""A GS1 demonstration GTIN (prefix 952, "for demonstrations and examples of the GS1 system")."""


def test_karekod() -> str:
    """The test karekod's element string: demonstration GTIN, a serial, far expiry, a batch."""
    return f"01{TEST_GTIN}21TEST0001{GS}17491231{GS}10TEST"  # expiry 2049-12-31 under the GS1 century rule


@dataclass(frozen=True)
class Code:
    kind: str
    """``qr`` or ``datamatrix``."""
    text: str
    caption: str


def codes(
    station: str, secret: bytes = b"", extra: tuple[tuple[str, str], ...] = (), operations: tuple[str, ...] = ()
) -> list[Code]:
    """What the sheet carries: every command (a switch only to the ``operations`` the station may
    do, and only when it may do more than one), the configured plain barcodes (``extra``: text,
    caption), and the test karekod."""
    wanted = [c for c in Command if c.operation is None or (len(operations) > 1 and c.operation in operations)]
    out = [Code("qr", payload(station, c, secret), c.caption) for c in wanted]
    out += [Code("qr", text, caption) for text, caption in extra if text]
    out.append(Code("datamatrix", test_karekod(), "Test karekodu: yeşil yanmalı / Test karekod: must show accept"))
    return out


def _gs1_datamatrix(element_string: str) -> list[list[int]]:
    """A GS1 DataMatrix: FNC1 (codeword 232) first and in place of each GS, the rest in ASCII mode."""
    import ppf.datamatrix  # noqa: F401  (registers the datamatrix.* codecs)
    from ppf.datamatrix import DataMatrix

    class _GS1(str):
        def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            if encoding != "datamatrix.ascii":
                raise ValueError("GS1 DataMatrix: ASCII mode only")
            parts = [str.encode(p, "datamatrix.ascii") for p in str.split(self, GS)]
            return bytes([232]) + bytes([232]).join(parts)

    matrix: list[list[int]] = DataMatrix(_GS1(element_string), codecs=["ascii"]).matrix
    return matrix


def _qr(text: str) -> list[list[int]]:
    import segno

    symbol = segno.make(text, error="m", micro=False)
    return [[1 if v else 0 for v in row] for row in symbol.matrix]


def render(station: str, title: str, items: list[Code], fmt: str = "png") -> bytes:
    """The sheet as PNG or PDF bytes."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("L", A4, 255)
    draw = ImageDraw.Draw(page)
    try:
        font = ImageFont.load_default(size=42)
        small = ImageFont.load_default(size=34)
    except TypeError:  # an old Pillow without sized default fonts
        font = small = ImageFont.load_default()
    draw.text((150, 120), f"Karekod Station: {title}", fill=0, font=font)
    draw.text((150, 190), f"station {station}", fill=0, font=small)
    columns, cell_w, cell_h, top = 2, 1090, 760, 320
    for i, item in enumerate(items):
        matrix = _qr(item.text) if item.kind == "qr" else _gs1_datamatrix(item.text)
        quiet = 4 if item.kind == "qr" else 2
        size = len(matrix[0]) + 2 * quiet
        module = max(4, min(14, 520 // size))
        x0 = 150 + (i % columns) * cell_w
        y0 = top + (i // columns) * cell_h
        _paint(page, matrix, x0 + quiet * module, y0 + quiet * module, module)
        caption_y = y0 + size * module + 20
        for n, line in enumerate(item.caption.split(" / ")):
            draw.text((x0, caption_y + n * 44), line, fill=0, font=small)
    out = io.BytesIO()
    if fmt == "pdf":
        page.convert("RGB").save(out, "PDF", resolution=DPI)
    else:
        page.save(out, "PNG", dpi=(DPI, DPI))
    return out.getvalue()


def _paint(page: Any, matrix: list[list[int]], x0: int, y0: int, module: int) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(page)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                draw.rectangle(
                    (x0 + x * module, y0 + y * module, x0 + (x + 1) * module - 1, y0 + (y + 1) * module - 1), fill=0
                )
