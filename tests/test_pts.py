"""PTS packages: read safely, every hostile package refused alone with a clear reason."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from datetime import date

import pytest
from central import DEPOT, HOSPITAL, SandboxServer
from scans import gtin, sscc

from station.central import deliveries
from station.central.config import Site
from station.central.ledger import Ledger
from station.central.services import pts
from station.central.services.its import ItsClient
from station.wire import Carrier, DeliveryLine, DeliveryMessage, Operation, Service

DOC = "IRS2026000123"


def package(cases: int = 3, per_case: int = 40) -> pts.Package:
    pallet = sscc(1)
    carriers = [Carrier(sscc=pallet, kind="P")] + [
        Carrier(sscc=sscc(10 + c), parent=pallet, kind="C") for c in range(cases)
    ]
    lines = [
        DeliveryLine(
            di=gtin(c),
            batch=f"B{c}",
            expiry="2030-12-31",
            carrier=sscc(10 + c),
            serials=tuple(f"S{c}-{i:04d}" for i in range(per_case)),
        )
        for c in range(cases)
    ]
    return pts.Package(DEPOT, HOSPITAL, DOC, "2026-11-20", carriers=tuple(carriers), lines=tuple(lines))


def zipped(name: str, data: bytes, *more: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
        for n, d in more:
            z.writestr(n, d)
    return buffer.getvalue()


HEAD = (
    f"<transfer><sourceGLN>{DEPOT}</sourceGLN><destinationGLN>{HOSPITAL}</destinationGLN>"
    f"<documentNumber>{DOC}</documentNumber>"
)


def test_a_package_round_trips_with_its_tree() -> None:
    p = package()
    got = pts.read_package(pts.package_zip(p), "777")
    assert (got.sender, got.receiver, got.document, got.document_date, got.transfer_id) == (
        DEPOT,
        HOSPITAL,
        DOC,
        "2026-11-20",
        "777",
    )
    assert got.carriers == p.carriers and got.lines == p.lines and got.units == 120


def test_what_real_senders_write_is_read() -> None:
    """A 20-character label with its AI 00, lowercase attribute spellings, units straight in a carrier
    and loose at the top, a namespace prefix, a date with a time."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<pts:transfer xmlns:pts="urn:x"><sourceGLN>{DEPOT}</sourceGLN><destinationGLN>{HOSPITAL}</destinationGLN>'
        f"<actionType>SALE</actionType><documentNumber> {DOC} </documentNumber>"
        "<documentDate>2026-11-20T10:00:00</documentDate>"
        f'<carrier carrierLabel="00{sscc(5)}" containerType="C">'
        f'<productList GTIN="{gtin(1)[1:]}" LotNumber="L1" ExpirationDate="2030-01-31">'
        "<serialNumber>A1</serialNumber><serialNumber>A2</serialNumber></productList></carrier>"
        f'<productList GTIN="{gtin(2)}"><serialNumber>Z9</serialNumber></productList>'
        "</pts:transfer>"
    ).encode()
    got = pts.read_package(zipped("PTS_1.xml", xml))
    assert got.document == DOC and got.document_date == "2026-11-20" and got.action == "SALE"
    assert got.carriers == (Carrier(sscc=sscc(5), kind="C"),)
    assert got.lines == (
        DeliveryLine(di=gtin(1), batch="L1", expiry="2030-01-31", carrier=sscc(5), serials=("A1", "A2")),
        DeliveryLine(di=gtin(2), serials=("Z9",)),
    )


BOMB_XML = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
    + HEAD
    + "<note>&lol2;</note></transfer>"
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not a zip at all", "not a zip file"),
        (zipped("readme.txt", b"hello"), "holds 0 XML files, not one"),
        (zipped("a.xml", b"<transfer/>", ("b.xml", b"<transfer/>")), "holds 2 XML files, not one"),
        (zipped("a.xml", HEAD.encode() + b"<note>"), "not well-formed XML"),
        (zipped("a.xml", b"<html><body>502</body></html>"), "<html> is not a PTS transfer"),
        (zipped("a.xml", BOMB_XML.encode()), "a DTD or entity declaration"),
        (
            zipped(
                "a.xml",
                b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><transfer>&x;</transfer>',
            ),
            "a DTD or entity declaration",
        ),
        (zipped("a.xml", (HEAD + '<carrier carrierLabel="123"/></transfer>').encode()), "is not an SSCC"),
        (
            zipped(
                "a.xml",
                (
                    HEAD + '<productList GTIN="08699536000011"><serialNumber>1</serialNumber></productList></transfer>'
                ).encode(),
            ),
            "is not a GTIN",
        ),
        (
            zipped(
                "a.xml",
                (
                    HEAD + f'<productList GTIN="{gtin(1)}"><serialNumber>A 1</serialNumber></productList></transfer>'
                ).encode(),
            ),
            "is not 1-20 GS1 characters",
        ),
        (
            zipped(
                "a.xml",
                (
                    HEAD + f'<productList GTIN="{gtin(1)}"><serialNumber>A</serialNumber>'
                    "<serialNumber>A</serialNumber></productList></transfer>"
                ).encode(),
            ),
            "appears twice",
        ),
        (zipped("a.xml", b"<transfer><documentNumber>X</documentNumber></transfer>"), "sourceGLN '' is not"),
        (zipped("a.xml", (HEAD + "<a>" * 40 + "</a>" * 40 + "</transfer>").encode()), "nested deeper"),
    ],
)
def test_a_bad_package_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(pts.PackageError) as e:
        pts.read_package(data)
    assert reason in e.value.reason


def test_a_zip_bomb_stops_at_the_limit_without_unpacking_it() -> None:
    xml = HEAD.encode() + b"<note>" + b"A" * (pts.MAX_XML + 1024) + b"</note></transfer>"
    bomb = zipped("a.xml", xml)
    assert len(bomb) < 200_000  # a small file...
    with pytest.raises(pts.PackageError) as e:
        pts.read_package(bomb)  # ...refused from its declared size
    assert "unpacks to" in e.value.reason
    # a header that lies about the size: unpacking stops at the declared size and the check fails
    lying = bomb.replace(len(xml).to_bytes(4, "little"), (100).to_bytes(4, "little"))
    with pytest.raises(pts.PackageError) as e:
        pts.read_package(lying)
    assert "cannot be unpacked" in e.value.reason or "not well-formed" in e.value.reason


def test_a_package_past_the_services_limit_is_refused_before_decoding() -> None:
    fifty_mb = base64.b64encode(b"\0" * (50 * 1024 * 1024)).decode()
    with pytest.raises(pts.PackageError) as e:
        pts.decode_file_stream(fifty_mb)
    assert "larger than 10 MB" in e.value.reason
    with pytest.raises(pts.PackageError):
        pts.decode_file_stream("@@not base64@@")
    with pytest.raises(pts.PackageError):
        pts.read_package(b"PK" + b"\0" * (11 * 1024 * 1024))


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    s = SandboxServer(seed=5)
    s.sandbox.seed({"its": {"users": [{"username": HOSPITAL, "password": "p", "gln": HOSPITAL}]}})
    yield s
    s.close()


def test_fetching_stores_good_packages_and_names_each_bad_one(tmp_path, sandbox: SandboxServer) -> None:  # type: ignore[no-untyped-def]
    good = package(2, 5)
    b64 = base64.b64encode
    sandbox.sandbox.seed(
        {
            "its": {
                "packages": [
                    {
                        "transfer_id": "1001",
                        "to": HOSPITAL,
                        "from": DEPOT,
                        "file": b64(zipped("a.xml", b"<transfer")).decode(),
                    },
                    {
                        "transfer_id": "1002",
                        "to": HOSPITAL,
                        "from": DEPOT,
                        "file": b64(zipped("a.xml", BOMB_XML.encode())).decode(),
                    },
                    {
                        "transfer_id": "1003",
                        "sender": good.sender,
                        "receiver": good.receiver,
                        "document": good.document,
                        "date": date.today().isoformat(),
                        "carriers": [c.as_dict() for c in good.carriers],
                        "lines": [line.as_dict() for line in good.lines],
                    },
                    {"transfer_id": "1004", "to": HOSPITAL, "from": DEPOT, "file": "!!"},
                ]
            }
        }
    )
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    site = Site("dock", Service.ITS, HOSPITAL, Operation.RECEIPT, ("dock-1",))
    client = ItsClient(sandbox.url, HOSPITAL, "p", 5)
    report = deliveries.fetch(ledger, site, None, client)
    assert report.new == 1
    assert sorted(p.split(":")[0] for p in report.problems) == [
        "PTS package 1001",
        "PTS package 1002",
        "PTS package 1004",
    ]
    assert "not well-formed XML" in report.problems[0] and "entity" in report.problems[1]
    (row,) = deliveries.listing(ledger)
    assert (row["document"], row["sender"], row["expected"], row["state"]) == (DOC, DEPOT, 10, "open")
    stored = deliveries.get(ledger, row["id"])
    assert stored is not None and isinstance(stored[0], DeliveryMessage) and stored[0].lines == good.lines
    again = deliveries.fetch(ledger, site, None, client)
    assert again.new == 0  # a package is fetched once
