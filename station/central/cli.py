"""``station-submitter``: run the central submitter, serve the sandbox services, and answer operators."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import signal
import sys
import threading
import time
from datetime import datetime
from types import FrameType
from typing import Any

from station import runtime
from station.central.ledger import JobState
from station.runtime import dispatch, load_or_exit

DEFAULT_CONFIG = "/etc/karekod-submitter/submitter.toml"
log = logging.getLogger("submitter")


def _config(args: argparse.Namespace) -> Any:
    from station.central.config import load

    return load_or_exit(load, args.config, "station-submitter")


def _ledger(args: argparse.Namespace) -> Any:
    from station.central.ledger import Ledger

    config = _config(args)
    return config, Ledger(config.ledger, config.id)


def cmd_run(args: argparse.Namespace) -> int:
    from station.central.ingest import Central
    from station.central.notifier import Notifier
    from station.tomlcheck import ConfigError

    runtime.setup_logging(args.log_level)
    config, ledger = _ledger(args)
    central = Central(config, ledger)
    try:
        notifier = Notifier(config, ledger, central.publish_results, publish_deliveries=central.publish_deliveries)
    except ConfigError as e:
        print(f"station-submitter: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    central.start()
    threads = [
        threading.Thread(target=central.run, args=(stop,), name="ingest", daemon=True),
        threading.Thread(target=notifier.run, args=(stop,), name="notifier", daemon=True),
    ]
    for t in threads:
        t.start()
    runtime.notify("READY=1")
    log.info(
        "submitter %s ready: %s environment, ledger %s, %d site(s)",
        config.id,
        config.environment,
        config.ledger.split("@")[-1],
        len(config.sites),
    )
    while not stop.wait(1):
        runtime.notify("WATCHDOG=1")
    for t in threads:
        t.join(10)
    central.stop()
    log.info("submitter stopped")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from station.central.services.sandbox import Sandbox, make_server

    runtime.setup_logging("INFO")
    sandbox = Sandbox(args.latency_ms, args.error_rate, args.lost_answer_rate)
    if args.seed:
        with open(args.seed, encoding="utf-8") as f:
            sandbox.seed(json.load(f))
    server = make_server(sandbox, args.host, args.port)
    log.info(
        "sandbox ÜTS and İTS on http://%s:%d (latency %s ms, error rate %s, lost answers %s)",
        args.host,
        server.server_address[1],
        args.latency_ms,
        args.error_rate,
        args.lost_answer_rate,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The file, and whether this environment's credentials can be read (they are not shown)."""
    from station.tomlcheck import ConfigError

    config = _config(args)
    problems = []
    for name, service in (("ÜTS system token", config.uts), ("İTS password", config.its)):
        if service is not None:
            try:
                service.secret.read(name)
            except ConfigError as e:
                problems.append(str(e))
    for p in problems:
        print(f"{args.config}: {config.environment} credentials: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.config}: ok ({len(config.sites)} site(s), {config.environment} environment, credentials readable)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config, ledger = _ledger(args)
    stations = {}
    for station, state, at, status in ledger.query("SELECT station, state, at, status FROM stations"):
        body = json.loads(status or "{}")
        stations[station] = {
            "state": state,
            "seen_s_ago": round(time.time() - at, 1) if at else None,
            "backlog": body.get("backlog"),
        }
    for station, n, last in ledger.query("SELECT station, count(*), max(received_at) FROM events GROUP BY station"):
        stations.setdefault(station, {}).update(events=n, last_event_s_ago=round(time.time() - last, 1))
    services: dict[str, dict[str, int]] = {}
    for service, state, n in ledger.query("SELECT coalesce(service, '-'), state, count(*) FROM jobs GROUP BY 1, 2"):
        services.setdefault(service, {})[state] = n
    body = {"submitter": config.id, "environment": config.environment, "stations": stations, "services": services}
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
        return 0
    print(f"submitter {config.id} ({config.environment})")
    print("stations:")
    for name, s in sorted(stations.items()):
        print(
            f"  {name:<24} {s.get('state') or '?':<8} events {s.get('events', 0):>7}  last event "
            f"{s.get('last_event_s_ago', '-')} s ago  backlog {s.get('backlog', '-')}"
        )
    print("services:")
    for service, states in sorted(services.items()):
        print(f"  {service:<4} " + "  ".join(f"{k} {v}" for k, v in sorted(states.items())))
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    _, ledger = _ledger(args)
    jobs = ledger.jobs(f"state IN ('{JobState.REFUSED}', '{JobState.FAILED}', '{JobState.IN_DOUBT}')", limit=args.last)
    for j in jobs:
        row = {
            "event_id": j.event_id,
            "station": j.station,
            "site": j.site,
            "service": j.service,
            "operation": j.operation,
            "gtin": j.gtin,
            "serial": j.serial,
            "batch": j.batch,
            "state": j.state,
            "code": j.code,
            "message": j.message,
            "attempts": j.attempts,
        }
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(
                f"{j.event_id}  {j.station:<16} {j.service or '-':<4} {j.state:<9} {j.code or '-':<16} "
                f"{j.gtin} {j.serial or j.batch}  {j.message or ''}"
            )
    if not jobs and not args.json:
        print("no failures")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    _, ledger = _ledger(args)
    bad = [i for i in args.ids if not ledger.retry(i)]
    for i in bad:
        print(f"{i}: not a failed, refused or in-doubt unit", file=sys.stderr)
    return 1 if bad else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from station.central.notifier import Notifier

    config, ledger = _ledger(args)
    notifier = Notifier(config, ledger)
    failed = 0
    for event_id in args.ids:
        jobs = ledger.jobs("event_id = ?", (event_id,))
        if not jobs:
            print(f"{event_id}: no such unit", file=sys.stderr)
            failed += 1
            continue
        ok, message = notifier.cancel(jobs[0])
        print(f"{event_id}: {'cancelled' if ok else 'not cancelled'}: {message}")
        failed += not ok
    notifier.pool.shutdown()
    return 1 if failed else 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    """Incoming deliveries and how far each has come; ``--fetch`` asks the services first."""
    from station.central import deliveries
    from station.central.notifier import Notifier
    from station.wire import DeliveryState

    config, ledger = _ledger(args)
    if args.fetch:
        notifier = Notifier(config, ledger)
        try:
            for report in notifier.fetch_deliveries(args.site):
                print(
                    f"site {report.site}: {report.new} new, {report.changed} changed, {report.unchanged} unchanged,"
                    f" {report.withdrawn} withdrawn",
                    file=sys.stderr,
                )
                for p in report.problems:
                    print(f"site {report.site}: {p}", file=sys.stderr)
        finally:
            notifier.pool.shutdown()
    state = DeliveryState.OPEN if args.open else DeliveryState.CLOSED if args.closed else None
    rows = deliveries.listing(ledger, state)
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    print(f"{'id':<21} {'site':<16} {'svc':<4} {'waybill':<20} {'sender':<14} {'state':<9} expected received missing")
    for r in rows:
        print(
            f"{r['id']:<21} {r['site']:<16} {r['service']:<4} {r['document'][:20]:<20} {r['sender'][:14]:<14}"
            f" {r['state']:<9} {r['expected']:>8} {r['received'] if r['received'] is not None else '-':>8}"
            f" {r['missing'] if r['missing'] is not None else '-':>7}"
        )
    return 0


def cmd_delivery(args: argparse.Namespace) -> int:
    """One delivery: its summary and each unit's notification state; refuse what did not come (ÜTS)."""
    from station.central import deliveries

    config, ledger = _ledger(args)
    found = deliveries.get(ledger, args.id)
    if found is None:
        print(f"station-submitter: no delivery {args.id}", file=sys.stderr)
        return 2
    delivery, site, summary = found
    units = deliveries.unit_states(ledger, args.id)
    if args.refuse_missing:
        return _refuse_missing(config, ledger, delivery, summary)
    body = {
        "id": delivery.id,
        "site": site,
        "service": delivery.service,
        "document": delivery.document,
        "sender": delivery.sender,
        "state": delivery.state,
        "expected": deliveries.units_of(delivery),
        "summary": summary.as_dict() if summary else None,
        "units": [
            dict(zip(("station", "di", "gtin", "serial", "batch", "state", "code", "message"), u, strict=True))
            for u in units
        ],
    }
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
        return 0
    print(f"delivery {delivery.id} ({delivery.state}) site {site}: waybill {delivery.document} from {delivery.sender}")
    print(f"expected {body['expected']} unit(s)")
    if summary is not None:
        print(
            f"closed at {summary.station} {summary.closed_at} ({summary.closed_by}): {summary.received} received,"
            f" {summary.missing} missing, {summary.unexpected} unexpected"
        )
        for m in summary.missing_units:
            print(
                f"  missing     {m.di} {m.serial or 'lot ' + (m.batch or '-')} x{m.quantity} carrier {m.carrier or '-'}"
            )
        for x in summary.unexpected_units:
            print(f"  unexpected  {x.di} {x.serial or x.batch or '-'} (event seq {x.seq}): waits for a person")
    print("station          unit                                  state      code")
    for station, di, g, serial, batch, state, code, _message in units:
        print(f"{station:<16} {(g or di or '-')} {serial or batch or '-':<22} {state:<10} {code or '-'}")
    return 0


def _refuse_missing(config: Any, ledger: Any, delivery: Any, summary: Any) -> int:
    """ÜTS "almak istemiyorum" for what did not come, per verme (recorded before it is sent)."""
    from station.central import deliveries
    from station.central.services import uts
    from station.central.services.http import ServiceError
    from station.central.services.uts import UtsClient

    if delivery.service != "uts" or summary is None or config.uts is None:
        print("station-submitter: only a closed ÜTS delivery's missing units can be refused", file=sys.stderr)
        return 2
    refs = deliveries.line_refs(delivery)
    client = UtsClient(config.uts.base_url, config.uts.secret.read("ÜTS system token"), config.timeout_seconds)
    failed = 0
    for m in summary.missing_units:
        vbi = refs.get((m.di, m.serial or m.batch or ""))
        if not vbi:
            continue
        call = uts.alma_red(vbi, None if m.serial else m.quantity, f"Teslim alınmadı: irsaliye {delivery.document}")
        request_id = ledger.prepare("uts", None, call.path, call.body)
        try:
            answer = client.send(call)
        except ServiceError as e:
            ledger.in_doubt(request_id, str(e))
            print(f"{vbi}: no definite answer ({e})", file=sys.stderr)
            failed += 1
            continue
        ledger.answer(request_id, 200, answer.raw, [])
        print(f"{vbi}: {'refused (almak istemiyorum)' if answer.ok else 'not refused: ' + answer.text}")
        failed += not answer.ok
    return 1 if failed else 0


def cmd_order(args: argparse.Namespace) -> int:
    """Send an order to a conveyor station (what the warehouse system does through the same ledger)."""
    from station.central import orders

    config, ledger = _ledger(args)
    site = config.site_of(args.station)
    if site is None:
        print(f"station-submitter: station {args.station} is in no [sites.*] table", file=sys.stderr)
        return 2
    lines = []
    for item in args.line or []:
        gtin, _, qty = item.partition("=")
        if not gtin or not qty.isdigit() or int(qty) < 1:
            print(f"station-submitter: --line {item!r}: write GTIN=QUANTITY", file=sys.stderr)
            return 2
        lines.append((gtin.zfill(14) if gtin.isdigit() else gtin, int(qty)))
    order = orders.add(ledger, site, args.station, args.buyer, args.document, lines)
    print(f"order {order.id} version {order.version} for {args.buyer} ({len(lines)} line(s)) queued to {args.station}")
    return 0


def cmd_orders(args: argparse.Namespace) -> int:
    from station.central import orders

    _, ledger = _ledger(args)
    rows = orders.listing(ledger)
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    print(f"{'id':<21} {'station':<16} {'buyer':<14} {'document':<20} {'state':<7} sent notified package")
    for r in rows:
        print(
            f"{r['id']:<21} {r['station']:<16} {r['buyer']:<14} {r['document'][:20]:<20} {r['state']:<7}"
            f" {r['sent'] if r['sent'] is not None else '-':>4} {r['notified']:>8} {r['package_request'] or '-'}"
        )
    return 0


def cmd_recall(args: argparse.Namespace) -> int:
    """The recall list every station rejects from, offline too."""
    from station.central import recalls

    _, ledger = _ledger(args)
    if args.action == "list":
        rows = recalls.listing(ledger)
        for r in rows:
            if args.json:
                print(json.dumps(r, ensure_ascii=False))
            else:
                print(f"{r['gtin']:<16} batch {r['batch']:<20} serial {r['serial']:<20} {r['source']:<14} {r['note']}")
        if not rows and not args.json:
            print("the recall list is empty")
        return 0
    if not args.gtin:
        print("station-submitter: recall add/remove: a GTIN is needed", file=sys.stderr)
        return 2
    gtin = args.gtin.zfill(14) if args.gtin.isdigit() else args.gtin
    if args.action == "add":
        added = recalls.add(ledger, gtin, args.batch, args.serial, args.note)
        print(
            f"{'added' if added else 'already on the list'}: {gtin} batch {args.batch} serial {args.serial}"
            f" (list version {recalls.version(ledger)}, sent to every station)"
        )
        return 0
    removed = recalls.remove(ledger, gtin, args.batch, args.serial)
    print(f"{'removed' if removed else 'not on the list'}: {gtin} batch {args.batch} serial {args.serial}")
    return 0 if removed else 1


#: The export's columns: (CSV header, SQL expression). One list for both, so they cannot drift.
EXPORT = [
    ("event_id", "j.event_id"),
    ("station", "j.station"),
    ("site", "j.site"),
    ("service", "j.service"),
    ("operation", "j.operation"),
    ("gtin", "j.gtin"),
    ("serial", "j.serial"),
    ("batch", "j.batch"),
    ("expiry", "j.expiry"),
    ("scanned_at", "e.at"),
    ("state", "j.state"),
    ("ok", "j.ok"),
    ("code", "j.code"),
    ("message", "j.message"),
    ("reference", "j.reference"),
    ("attempts", "j.attempts"),
    ("updated_at", "j.updated_at"),
]


def cmd_export(args: argparse.Namespace) -> int:
    _, ledger = _ledger(args)
    start = datetime.fromisoformat(args.date_from).timestamp()
    end = datetime.fromisoformat(args.date_to).timestamp() + (86400 if len(args.date_to) == 10 else 0)
    rows = ledger.query(
        f"SELECT {', '.join(sql for _, sql in EXPORT)} FROM jobs j JOIN events e ON e.id = j.event_id"
        " WHERE j.created_at >= ? AND j.created_at < ? ORDER BY j.created_at",
        (start, end),
    )
    out = csv.writer(sys.stdout)
    out.writerow([name for name, _ in EXPORT])
    ok, updated = [name for name, _ in EXPORT].index("ok"), len(EXPORT) - 1
    for r in rows:
        row = list(r)
        row[ok] = "" if row[ok] is None else bool(row[ok])
        row[updated] = datetime.fromtimestamp(row[updated]).isoformat(timespec="seconds")
        out.writerow(row)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="station-submitter", description="Karekod Station central submitter: events to ÜTS and İTS."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
        return p

    p = with_config(sub.add_parser("run", help="run the submitter"))
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("sandbox", help="serve local stand-ins for ÜTS and İTS")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--seed", metavar="FILE", help="JSON with users, institutions, units and vermes")
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--error-rate", type=float, default=0.0, help="share of calls failing before they take effect")
    p.add_argument("--lost-answer-rate", type=float, default=0.0, help="share of calls whose answer is lost")
    p.set_defaults(func=cmd_sandbox)
    p = with_config(sub.add_parser("check", help="check a configuration file"))
    p.set_defaults(func=cmd_check)
    p = with_config(sub.add_parser("status", help="stations and services at a glance"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = with_config(sub.add_parser("failures", help="units refused, failed or in doubt"))
    p.add_argument("--last", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_failures)
    p = with_config(sub.add_parser("retry", help="send failed or refused units again"))
    p.add_argument("ids", nargs="+", metavar="EVENT_ID")
    p.set_defaults(func=cmd_retry)
    p = with_config(sub.add_parser("cancel", help="cancel notified units (ÜTS verme/kullanım, İTS satış)"))
    p.add_argument("ids", nargs="+", metavar="EVENT_ID")
    p.set_defaults(func=cmd_cancel)
    p = with_config(sub.add_parser("deliveries", help="incoming deliveries and how far each has come"))
    which = p.add_mutually_exclusive_group()
    which.add_argument("--open", action="store_true")
    which.add_argument("--closed", action="store_true")
    p.add_argument("--fetch", action="store_true", help="ask ÜTS and İTS for new deliveries first")
    p.add_argument("--site", help="with --fetch: only this site")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deliveries)
    p = with_config(sub.add_parser("delivery", help="one delivery: its summary and each unit's notification state"))
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.add_argument("--refuse-missing", action="store_true", help="ÜTS: refuse what did not come (almak istemiyorum)")
    p.set_defaults(func=cmd_delivery)
    p = with_config(sub.add_parser("order", help="send an order to a conveyor station"))
    p.add_argument("--station", required=True)
    p.add_argument("--buyer", required=True, help="İTS: the buyer's GLN; ÜTS: its institution number")
    p.add_argument("--document", required=True, help="the order's document number (the tote label)")
    p.add_argument("--line", action="append", metavar="GTIN=QUANTITY", help="what the order wants (repeat)")
    p.set_defaults(func=cmd_order)
    p = with_config(sub.add_parser("orders", help="orders, what was sent in each, and their PTS packages"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_orders)
    p = with_config(sub.add_parser("recall", help="the recall list: add, remove, list"))
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("gtin", nargs="?")
    p.add_argument("--batch", default="*", help="a batch, or * (every batch: the whole product)")
    p.add_argument("--serial", default="*", help="a single unit's serial, or *")
    p.add_argument("--note", default="", help="why (the authority's reference)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recall)
    p = with_config(sub.add_parser("export", help="CSV of notifications and outcomes for a date range"))
    p.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:

    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
