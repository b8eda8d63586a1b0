"""``station``: the command line a technician uses over ssh, and the daemon's entry point.

Each subcommand lives in one small function; heavy modules are imported inside them so that
``station decode`` starts fast on a Pi.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

from station import __version__, runtime
from station.gs1.reasons import Reason
from station.runtime import dispatch, load_or_exit

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
    from station.gs1.reader import Profile
    from station.gs1.verdict import Policy, judge

    today = args.today or date.today()
    policy = Policy(Profile(args.profile), args.min_shelf_life_days)
    out = sys.stdout
    if args.hid_events:
        from station.edge.events import Scan, judge_scan
        from station.edge.scanners.keys import KeyDecoder, key_code, read_recording, replay

        decoder = KeyDecoder(args.layout, key_code(args.gs_key) if args.gs_key else None)
        with open(args.hid_events, encoding="utf-8") as f:
            for frame in replay(read_recording(f), decoder):
                scan = Scan(frame.raw, "hid", 0.0, 0.0, frame.terminated_by, frame.detail)
                verdict = judge_scan(scan, policy, today)
                out.write(json.dumps(verdict.as_dict(), ensure_ascii=False) + "\n")
        return 0
    for line in _lines(sys.stdin.buffer):
        out.write(json.dumps(judge(line, policy, today).as_dict(), ensure_ascii=False) + "\n")
        out.flush()
    return 0


def _config(args: argparse.Namespace) -> Any:
    from station.edge.config import load

    return load_or_exit(load, args.config, "station")


def cmd_run(args: argparse.Namespace) -> int:
    from station.edge.daemon import run

    runtime.setup_logging(args.log_level, args.log_format)
    config = _config(args)
    drain = args.drain_seconds if args.drain_seconds is not None else (3.0 if args.simulate else 0.0)
    return run(config, simulate=args.simulate, drain_seconds=drain)


def cmd_config_check(args: argparse.Namespace) -> int:
    from station.edge.config import load
    from station.tomlcheck import ConfigError

    try:
        config = load(args.file)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.file}: ok (station {config.station.id}, {config.station.operation}, profile {config.reader.profile})")
    return 0


def cmd_test_feedback(args: argparse.Namespace) -> int:
    import time

    from station.edge.outputs.feedback import GpioFeedback, Signal, simulated_pin_factory

    runtime.setup_logging("INFO")
    config = _config(args)
    factory = None
    if args.simulate:
        factory = simulated_pin_factory(lambda pin, value: print(f"  {pin} {'on' if value else 'off'}", flush=True))
    feedback = GpioFeedback(config.feedback, factory)
    try:
        for sig in Signal:
            p = config.feedback.patterns[sig.value]
            print(
                f"{sig.value}: {p.led} LED x{p.blinks} ({p.seconds}s), {p.beeps} beep(s) of {p.beep_seconds}s",
                flush=True,
            )
            feedback.show(sig)
            time.sleep(max(p.seconds * (2 * p.blinks - 1), p.beep_seconds * (2 * p.beeps - 1)) + args.pause)
    finally:
        feedback.close()
    return 0


def _read_store(args: argparse.Namespace) -> Any:
    from station.edge.store import StorageError, Store

    store = Store(_config(args).storage.path, readonly=True)
    try:
        store.open()
    except StorageError as e:
        print(f"station: cannot read the station file: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    return store


def cmd_status(args: argparse.Namespace) -> int:
    import os
    import time

    from station.edge.daemon import status_path
    from station.edge.health import age as _age

    config = _config(args)
    store = _read_store(args)
    stats = store.stats()
    daemon: dict[str, Any] = {}
    try:
        with open(status_path(config)) as f:
            daemon = json.load(f)
    except (OSError, ValueError):
        pass
    running = False
    if daemon.get("pid") and daemon.get("state") != "stopped":
        try:
            os.kill(int(daemon["pid"]), 0)
            running = (_age(daemon.get("at")) or 0) < 60
        except (OSError, ValueError):
            running = False
    body = {
        "station": config.station.id,
        "daemon": "running" if running else "not running",
        "mqtt_connected": daemon.get("mqtt_connected") if running else None,
        "scanner_connected": daemon.get("scanner_connected") if running else None,
        "events": stats.events,
        "last_seq": stats.last_seq,
        "backlog": stats.backlog,
        "oldest_undelivered_age_s": _age(stats.oldest_undelivered_at),
        "last_scan_at": stats.last_scan_at,
        "refused_later": stats.refused_later,
        "storage": (daemon.get("storage") if running else None) or "ok",
        "disk_free_bytes": daemon.get("disk_free_bytes"),
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    problems = []
    if not running:
        problems.append("the daemon is not running")
    elif body["scanner_connected"] is False:
        problems.append("a scanner is not connected")
    if body["storage"] != "ok":
        problems.append(f"storage: {body['storage']}")
    age = body["oldest_undelivered_age_s"]
    if age is not None and age > args.max_backlog_age:
        problems.append(f"the oldest undelivered event is {age:.0f} s old (limit {args.max_backlog_age:.0f} s)")
    body["problems"] = problems
    if args.json:
        print(json.dumps(body))
    else:
        width = max(len(k) for k in body)
        for k, v in body.items():
            shown = "; ".join(v) or "none" if isinstance(v, list) else v
            print(f"{k:<{width}}  {'-' if shown is None else shown}")
    return 1 if problems else 0  # for cron and Nagios: unhealthy is non-zero


def cmd_events(args: argparse.Namespace) -> int:
    store = _read_store(args)
    rows = store.events(args.last, "refused_later" if args.refused else args.reason)
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    for r in rows:
        verdict = "accept" if r["ok"] else f"reject {r['reason']}"
        service = ""
        if r["service_ok"] is not None:
            service = f"  {r['service']}: {'ok' if r['service_ok'] else 'REFUSED ' + r['service_code']}"
            service += f" {r['service_message']}" if not r["service_ok"] else ""
        delivered = "delivered" if r["delivered_at"] else "queued"
        reread = f" rereads={r['rereads']}" if r["rereads"] else ""
        print(
            f"{r['seq']:>7} {r['at']} {verdict:<24} {r['gtin'] or '-'} {r['serial'] or '-'} {r['batch'] or '-'}"
            f" {delivered}{reread}{service}"
        )
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from station.edge.health import age as _age

    stats = _read_store(args).stats()
    age = _age(stats.oldest_undelivered_at)
    if args.json:
        print(
            json.dumps(
                {
                    "undelivered": stats.backlog,
                    "oldest_undelivered_age_s": age,
                    "oldest_undelivered_at": stats.oldest_undelivered_at,
                }
            )
        )
    else:
        print(f"undelivered  {stats.backlog}")
        print(f"oldest       {stats.oldest_undelivered_at or '-'}" + (f" ({age:.0f} s ago)" if age is not None else ""))
    return 0


def _progress(
    args: argparse.Namespace, what: str, session_of: Any, progress_of: Any
) -> tuple[str, dict[str, Any], Any] | int:
    """The open (or named) delivery's or order's progress, and its session; or the exit code when
    none is open or the file cannot be read (said in one line)."""
    from station.edge.store import StorageError

    try:
        session = session_of()
        ident = args.id or (session[0] if session else None)
        if ident is None:
            print(json.dumps({"open": None}) if args.json else f"no {what} is open")
            return 0 if args.json else 1
        body: dict[str, Any] = progress_of(ident)
    except StorageError as e:
        print(f"station: cannot read the {what}: {e}", file=sys.stderr)
        return 1
    body["open"] = bool(session and session[0] == ident)
    return ident, body, session


def cmd_delivery(args: argparse.Namespace) -> int:
    """The open delivery's progress (or a named one), or close it as the operator."""
    import time

    from station.edge.store import StorageError, Store
    from station.wire import ClosedBy

    if args.close:
        config = _config(args)
        store = Store(config.storage.path)
        try:
            summary = store.close_session(config.station.id, ClosedBy.OPERATOR, time.time())
        except StorageError as e:
            print(f"station: cannot close the delivery: {e}", file=sys.stderr)
            return 1
        finally:
            store.close()
        if summary is None:
            print("no delivery is open", file=sys.stderr)
            return 1
        print(
            summary.to_json().decode()
            if args.json
            else f"closed {summary.delivery}: {summary.received} of"
            f" {summary.expected} received, {summary.missing} missing, {summary.unexpected} unexpected"
        )
        return 0
    store = _read_store(args)
    found = _progress(args, "delivery", store.session, store.progress)
    if isinstance(found, int):
        return found
    ident, body, session = found
    body["opened_at"] = session[1] if body["open"] and session else None
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
        return 0
    state = "OPEN" if body["open"] else body["state"]
    print(f"delivery  {ident} ({state}) waybill {body['document']} from {body['sender']} ({body['service']})")
    print(
        f"units     {body['received']} of {body['expected']} received, {body['missing']} missing,"
        f" {body['unexpected']} unexpected"
    )
    print("carrier              expected  received  missing")
    for c in body["carriers"]:
        print(f"{c['sscc'] or '(loose)':<20} {c['expected']:>8}  {c['received']:>8}  {c['missing']:>7}")
    if body["last_scans"]:
        print("last scans:")
        for r in body["last_scans"]:
            verdict = "accept" if r["ok"] else f"reject {r['reason']}"
            print(f"  {r['seq']:>7} {r['at']} {verdict:<22} {r['gtin'] or '-'} {r['serial'] or r['batch'] or '-'}")
    return 0


def cmd_order(args: argparse.Namespace) -> int:
    """The open order's progress (or a named one)."""
    store = _read_store(args)
    found = _progress(args, "order", store.order_session, store.order_progress)
    if isinstance(found, int):
        return found
    ident, body, _ = found
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
        return 0
    state = "OPEN" if body["open"] else body["state"]
    print(f"order     {ident} ({state}) document {body['document']} for {body['buyer']}")
    print(f"boxes     {body['sent']} sent, {body['not_in_order']} refused as not in it")
    if body["lines"]:
        print("gtin              wanted  sent")
        for line in body["lines"]:
            print(f"{line['gtin']:<16} {line['wanted']:>7} {line['sent']:>5}")
    for r in body["last_scans"]:
        verdict = "accept" if r["ok"] else f"reject {r['reason']}"
        print(f"  {r['seq']:>7} {r['at']} {verdict:<22} {r['gtin'] or '-'} {r['serial'] or '-'}")
    return 0


def cmd_sheet(args: argparse.Namespace) -> int:
    """Print the station's command sheet (PNG or PDF at 300 dpi)."""
    config = _config(args)
    try:
        from station.edge import sheet
    except ImportError:  # pragma: no cover - the extra is missing
        print("station: the sheet needs the [sheet] extra: pip install 'karekod-station[sheet]'", file=sys.stderr)
        return 2
    from station.tomlcheck import ConfigError, read_secret

    secret = b""
    if config.commands.secret_file:
        try:
            secret = read_secret(config.commands.secret_file, "[commands] secret_file").encode()
        except ConfigError as e:
            print(f"station: {e}", file=sys.stderr)
            return 2
    extra = (
        (config.delivery.close_barcode, "Teslimatı kapat / Close the delivery (plain)"),
        (config.order.end_barcode, "Siparişi bitir / End the order (plain)"),
    )
    try:
        data = sheet.render(
            config.station.id,
            config.station.site or config.station.id,
            sheet.codes(config.station.id, secret, extra, (config.station.operation, *config.commands.operations)),
            args.format,
        )
    except ImportError:
        print("station: the sheet needs the [sheet] extra: pip install 'karekod-station[sheet]'", file=sys.stderr)
        return 2
    output = args.output or f"karekod-sheet-{config.station.id}.{args.format}"
    with open(output, "wb") as f:
        f.write(data)
    print(f"{output}: {len(data)} bytes, {args.format} at 300 dpi")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    """Start a new history: for a station whose file is gone, empty, corrupt or not its own."""
    from station.edge.daemon import status_path
    from station.edge.store import reset

    config = _config(args)
    if not args.yes:
        print(
            f"station reset: this moves {config.storage.path} aside (never deletes it) and starts a new history:\n"
            "  seq starts again at 1 and the duplicate memory is empty. Stop the daemon first, then run again\n"
            "  with --yes.",
            file=sys.stderr,
        )
        return 2
    if os.path.exists(status_path(config)):
        try:
            with open(status_path(config)) as f:
                running = json.load(f).get("state") != "stopped"
        except (OSError, ValueError):
            running = False
        if running and not args.force:
            print("station reset: the daemon looks running (its status file says so): stop it first", file=sys.stderr)
            return 2
    done = reset(config.storage.path)
    for line in done or ["nothing to reset: no station file and no history marker"]:
        print(f"station reset: {line}")
    print("station reset: the next start begins a new history")
    return 0


def escape(raw: bytes) -> str:
    """A scan as a technician needs to see it: control bytes named, nothing hidden."""
    names = {0x1D: "<GS>", 0x1E: "<RS>", 0x0D: "<CR>", 0x0A: "<LF>", 0x09: "<TAB>", 0x1C: "<FS>", 0x04: "<EOT>"}
    out = []
    for ch in raw.decode("utf-8", "backslashreplace"):
        if ord(ch) in names:
            out.append(names[ord(ch)])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"<{ord(ch):02X}>")
        else:
            out.append(ch)
    return "".join(out)


def cmd_scanners(args: argparse.Namespace) -> int:
    import glob
    import os

    print('Serial ports (type = "serial", port = ...):')
    try:
        from serial.tools import list_ports

        ports = list(list_ports.comports())
    except Exception as e:  # pyserial missing or no sysfs: say so, do not fail
        print(f"  (cannot list: {e})")
        ports = []
    for p in ports:
        usb = f"usb:{p.vid:04x}:{p.pid:04x}" if p.vid is not None and p.pid is not None else "-"
        serial_no = f"serial {p.serial_number}" if p.serial_number else ""
        print(f"  {p.device:<16} {usb:<15} {p.description or ''} {serial_no}")
    for link in sorted(glob.glob("/dev/serial/by-id/*")) + [x for x in ("/dev/scanner",) if os.path.exists(x)]:
        print(f"  {link} -> {os.path.realpath(link)}")
    if not ports:
        print("  none found")
    print('Input devices (type = "hid", device = ...):')
    try:
        import evdev

        paths = evdev.list_devices()
    except Exception as e:
        print(f"  (cannot list: {e})")
        paths = []
    shown = 0
    for path in paths:
        try:
            dev = evdev.InputDevice(path)
        except OSError as e:
            print(f"  {path}: cannot open ({e.strerror}); is this user in group 'input'?")
            continue
        keys = dev.capabilities().get(evdev.ecodes.EV_KEY, [])
        kind = "keyboard" if evdev.ecodes.KEY_A in keys and evdev.ecodes.KEY_ENTER in keys else "other"
        print(f"  {path!s:<20} usb:{dev.info.vendor:04x}:{dev.info.product:04x}  {kind:<8} {str(dev.name)!r}")
        dev.close()
        shown += 1
    for link in sorted(glob.glob("/dev/input/by-id/*")):
        print(f"  {link} -> {os.path.realpath(link)}")
    if not shown:
        print("  none found")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    import threading
    import time

    from station.edge.config import Layout, ScannerConfig, ScannerType, Suffix
    from station.edge.daemon import make_scanner
    from station.edge.events import Scan, judge_scan
    from station.edge.scanners.hid import HidScanner
    from station.gs1.verdict import Policy

    runtime.setup_logging("WARNING")
    if args.port or args.device:
        sc = ScannerConfig(
            type=ScannerType.SERIAL if args.port else ScannerType.HID,
            port=args.port or "",
            device=args.device or "",
            layout=Layout(args.layout),
            suffix=Suffix(args.suffix),
            gs_key=args.gs_key,
        )
        configs: tuple[ScannerConfig, ...] = (sc,)
        policy = Policy()
    else:
        config = _config(args)
        configs, policy = config.scanners, config.reader.policy
    scanners = [make_scanner(sc, sys.stdin.buffer) for sc in configs]
    record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
    lock = threading.Lock()
    if record is not None:
        hid = [s for s in scanners if isinstance(s, HidScanner)]
        if not hid:
            print("station trace: --record needs a hid scanner", file=sys.stderr)
            return 2

        def write(event: tuple[int, int, int, int, int]) -> None:
            with lock:
                record.write(json.dumps(list(event)) + "\n")
                record.flush()

        for s in hid:
            s.on_event = write
    last: dict[str, float] = {}

    def show(scan: Scan) -> None:
        v = judge_scan(scan, policy, date.today())
        gap = scan.mono - last.get(scan.source, scan.mono)
        last[scan.source] = scan.mono
        with lock:
            print(
                f"{time.strftime('%H:%M:%S')} {scan.source}  +{gap:.3f}s  ended by {scan.terminated_by or '-'}"
                f"  {len(scan.raw)} bytes, {scan.raw.count(0x1D)} GS"
            )
            print(f"  raw     {escape(scan.raw)}")
            print(f"  verdict {'accept' if v.ok else 'reject ' + str(v.reason)}: {v.message}")
            if v.karekod:
                k = v.karekod
                print(f"  fields  {' '.join(f'({ai}){val}' for ai, val in k.fields)}")
            sys.stdout.flush()

    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(show, stop), daemon=True) for s in scanners]
    for t in threads:
        t.start()
    print(f"tracing {', '.join(s.name for s in scanners)}; Ctrl+C stops", flush=True)
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in threads:
            t.join(2)
        if record is not None:
            record.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from station.edge.config import Layout, Suffix

    parser = runtime.Parser(prog="station", description="Karekod Station: scan, verify, record, report.")
    parser.add_argument("--version", action="version", version=f"karekod-station {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p: argparse.ArgumentParser = sub.add_parser(
        "decode", help="read raw scans from stdin, one per line; print one JSON verdict each"
    )
    p.add_argument("--profile", choices=["its", "uts", "gs1"], default="its")
    p.add_argument(
        "--today", type=runtime.iso_date, metavar="YYYY-MM-DD", help="the day expiry is judged against (default: today)"
    )
    p.add_argument("--min-shelf-life-days", type=int, metavar="N", default=None)
    p.add_argument("--hid-events", metavar="FILE", help="replay a recorded HID event stream instead of stdin")
    p.add_argument("--layout", choices=list(Layout), default="us", help="the scanner's keyboard layout")
    p.add_argument("--gs-key", default="", metavar="KEY", help="a key the scanner sends for GS, e.g. KEY_F12")
    p.set_defaults(func=cmd_decode)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
        return p

    p = with_config(sub.add_parser("run", help="run the station daemon"))
    p.add_argument(
        "--simulate",
        action="store_true",
        help="scans from stdin (one per line, GS as 0x1D), pins simulated and shown in the terminal",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=None,
        help="when the input ends, wait this long for the backlog to be acked (simulate: 3)",
    )
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", choices=runtime.LOG_FORMATS, default="text", help="json: one object per line")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    pc = csub.add_parser("check", help="check a configuration file; names each bad key with its line")
    pc.add_argument("file", nargs="?", default=DEFAULT_CONFIG)
    pc.set_defaults(func=cmd_config_check)

    p = with_config(sub.add_parser("test-feedback", help="show every light and buzzer pattern once"))
    p.add_argument("--simulate", action="store_true", help="mock pins, printed to the terminal")
    p.add_argument("--pause", type=float, default=0.7, help="seconds between patterns")
    p.set_defaults(func=cmd_test_feedback)

    p = with_config(sub.add_parser("status", help="station health; exits 1 when unhealthy (for cron and Nagios)"))
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--max-backlog-age",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="unhealthy when the oldest undelivered event is older (default 3600)",
    )
    p.set_defaults(func=cmd_status)

    p = with_config(sub.add_parser("events", help="the newest events, with the national service's answer"))
    p.add_argument("--last", type=int, default=20, metavar="N")
    p.add_argument(
        "--reason",
        type=runtime.one_of([*Reason, "refused_later"], "reason"),
        metavar="R",
        help="only this reason (refused_later: refused by the service)",
    )
    p.add_argument(
        "--refused", action="store_true", help="only units the national service refused after they were accepted"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("scanners", help="list serial ports and input devices that could be scanners")
    p.set_defaults(func=cmd_scanners)

    p = with_config(sub.add_parser("trace", help="show each scan as the scanner sent it, and what it decodes to"))
    p.add_argument("--port", help="trace this serial port instead of the configured scanners")
    p.add_argument("--device", help="trace this input device (path, usb:VVVV:PPPP or name)")
    p.add_argument("--layout", choices=list(Layout), default="us")
    p.add_argument("--suffix", choices=list(Suffix), default="auto")
    p.add_argument("--gs-key", default="")
    p.add_argument("--record", metavar="FILE", help="append every raw HID input event to FILE as JSON lines")
    p.set_defaults(func=cmd_trace)

    p = with_config(sub.add_parser("queue", help="undelivered events and the age of the oldest"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_queue)

    p = with_config(sub.add_parser("delivery", help="the open delivery's progress: expected, received, missing"))
    p.add_argument("id", nargs="?", help="another delivery than the open one")
    p.add_argument("--close", action="store_true", help="close the open delivery now (its summary goes out)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_delivery)

    p = with_config(sub.add_parser("order", help="the open order's progress: lines wanted and sent, last scans"))
    p.add_argument("id", nargs="?", help="another order than the open one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_order)

    p = with_config(sub.add_parser("sheet", help="print the command barcodes and a test karekod on one page"))
    p.add_argument("--format", choices=["png", "pdf"], default="png")
    p.add_argument("--output", "-o", metavar="FILE")
    p.set_defaults(func=cmd_sheet)

    p = with_config(sub.add_parser("reset", help="start a new history after the station file was lost (moved aside)"))
    p.add_argument("--yes", action="store_true", help="do it")
    p.add_argument("--force", action="store_true", help="even when the status file says the daemon runs")
    p.set_defaults(func=cmd_reset)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
