"""The command sheet: rendered at 300 dpi, every code decoded by an independent decoder (zxing-cpp),
each command taken by the station, and the test karekod shown as accepted and never recorded."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

zxingcpp = pytest.importorskip("zxingcpp", reason="the [dev] extra installs zxing-cpp")
Image = pytest.importorskip("PIL.Image")

from harness import ROOT, Signals, write_config  # noqa: E402

from station.edge import commands, sheet  # noqa: E402
from station.edge.config import DeliveryConfig, ReaderConfig, StationConfig  # noqa: E402
from station.edge.dock import Dock  # noqa: E402
from station.edge.events import Scan  # noqa: E402
from station.edge.outputs.feedback import Signal  # noqa: E402
from station.edge.pipeline import Station  # noqa: E402
from station.edge.store import Store  # noqa: E402
from station.gs1.reader import Profile  # noqa: E402
from station.gs1.verdict import Policy, judge  # noqa: E402


def test_the_rendered_sheet_decodes_to_exactly_the_commands(tmp_path: Path) -> None:
    secret = b"dock-a-secret"
    (tmp_path / "secret").write_bytes(secret + b"\n")
    (tmp_path / "secret").chmod(0o600)
    cfg = write_config(
        tmp_path,
        1883,
        "dock-a",
        commands={"secret_file": str(tmp_path / "secret")},
        delivery={"close_barcode": "KAREKOD-CLOSE-DOCK-A"},
    )
    out = tmp_path / "sheet.png"
    run = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", "sheet", "-c", str(cfg), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    image = Image.open(out)
    assert image.info["dpi"][0] == pytest.approx(300, abs=1)
    found = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    qr = sorted(r.text for r in found if r.format == zxingcpp.BarcodeFormat.QRCode)
    plain = [c for c in commands.Command if c.operation is None]  # one operation: no switch commands
    wanted = sorted([commands.payload("dock-a", c, secret) for c in plain] + ["KAREKOD-CLOSE-DOCK-A"])
    assert qr == wanted
    (dm,) = [r for r in found if r.format == zxingcpp.BarcodeFormat.DataMatrix]
    assert dm.symbology_identifier == "]d2"  # a GS1 DataMatrix, FNC1 and all
    verdict = judge(dm.symbology_identifier + dm.text, Policy(Profile.ITS), sheet_today())
    assert verdict.ok, verdict.message
    # each command, read as the scanner sends it, is taken by this station and by no other
    store = Store(tmp_path / "s.db")
    shown = Signals()
    station = Station(
        StationConfig("dock-a", "", "receipt"),
        ReaderConfig(),
        store,
        shown,
        command_secret=secret,  # type: ignore[arg-type]
        dock=Dock(store, DeliveryConfig(), "dock-a"),
    )
    for text in qr:
        if text.startswith("KKC1"):
            outcome = station.handle(Scan(("]Q1" + text + "\r").encode(), "test", time.time(), time.monotonic()))
            assert outcome.event is None
            if ":end-order:" in text:  # a dock has no orders: said so, nothing done
                assert not outcome.verdict.ok and "does nothing at a receipt station" in outcome.verdict.message
            elif ":cancel-last:" in text:  # nothing accepted yet: said so
                assert not outcome.verdict.ok and "nothing accepted" in outcome.verdict.message
            else:
                assert outcome.verdict.ok, outcome.verdict.message
    assert Signal.ACCEPT in shown.shown and Signal.NO_DELIVERY in shown.shown  # status, close with none open
    outcome = station.handle(Scan((dm.symbology_identifier + dm.text).encode(), "test", time.time(), time.monotonic()))
    assert outcome.verdict.ok and outcome.event is None and shown.shown[-1] is Signal.ACCEPT
    assert store.stats().events == 0  # neither commands nor the test karekod are units
    other = Station(StationConfig("dock-b", "", "receipt"), ReaderConfig(), Store(tmp_path / "b.db"), shown)  # type: ignore[arg-type]
    first_command = next(t for t in qr if t.startswith("KKC1"))
    refused = other.handle(Scan(first_command.encode(), "test", time.time(), time.monotonic()))
    assert not refused.verdict.ok and "for station 'dock-a'" in refused.verdict.message
    forged = commands.payload("dock-a", commands.Command.STATUS, b"guess")
    assert "signature" in station.handle(Scan(forged.encode(), "t", time.time(), 0.0)).verdict.message


def sheet_today():  # type: ignore[no-untyped-def]
    from datetime import date

    return date(2026, 11, 23)


def test_the_sheet_as_pdf(tmp_path: Path) -> None:
    data = sheet.render("line-2", "Depo hattı 2", sheet.codes("line-2"), "pdf")
    assert data.startswith(b"%PDF") and len(data) > 10_000
    png = sheet.render("line-2", "Depo hattı 2", sheet.codes("line-2"), "png")
    assert len(zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))) == len(commands.Command) - 5 + 1
    both = sheet.codes("line-2", operations=("dispatch", "return"))
    assert {c.text.split(":")[2] for c in both if c.kind == "qr"} >= {"operation-dispatch", "operation-return"}
