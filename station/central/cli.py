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
from dataclasses import asdict
from datetime import datetime
from types import FrameType
from typing import Any

from station import runtime
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

    runtime.setup_logging(args.log_level, args.log_format)
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
    runtime.collect_less()
    central.start()
    threads = [
        threading.Thread(target=central.run, args=(stop,), name="ingest", daemon=True),
        threading.Thread(target=notifier.run, args=(stop,), name="notifier", daemon=True),
    ]
    if config.webhooks:
        from station.central.announce import Webhooks

        threads.append(
            threading.Thread(target=Webhooks(config, ledger).run, args=(stop,), name="webhooks", daemon=True)
        )
    if config.web.enabled:
        from station.central.web import serve

        threads.append(
            threading.Thread(target=serve, args=(config, ledger, stop, notifier.cancel), name="web", daemon=True)
        )
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
    from station.central import console

    config, ledger = _ledger(args)
    views = console.stations(ledger, config, config.web.stale_after_seconds)
    services: dict[str, dict[str, int]] = {}
    for (service, state), n in console.jobs_by_state(ledger).items():
        services.setdefault(service or "-", {})[state] = n
    if args.json:
        body = {
            "submitter": config.id,
            "environment": config.environment,
            "stations": {v.station: {k: x for k, x in asdict(v).items() if k != "station"} for v in views},
            "services": services,
        }
        print(json.dumps(body, ensure_ascii=False))
        return 0
    print(f"submitter {config.id} ({config.environment})")
    print(
        f"{'station':<24} {'site':<16} {'state':<8} {'seen s ago':>10} {'backlog':>8} {'oldest s':>8}"
        f" {'events':>8}  scanner"
    )
    for v in views:
        print(
            f"{v.station:<24} {v.site or '-':<16} {v.liveness:<8} {_dash(v.seen_s_ago):>10} {_dash(v.backlog):>8}"
            f" {_dash(v.oldest_undelivered_s):>8} {v.events:>8}  "
            + ("-" if v.scanner_connected is None else "connected" if v.scanner_connected else "NOT CONNECTED")
        )
    print(f"{'service':<8} states")
    for service, states in sorted(services.items()):
        print(f"{service:<8} " + "  ".join(f"{k} {v}" for k, v in sorted(states.items())))
    return 0


def _dash(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}" if isinstance(value, float) else str(value)


def _filter(args: argparse.Namespace) -> Any:
    """The units a command is about, from --station/--site/--code/--service/--since/--until/--state;
    a bad value is one line and exit 2."""
    from station.central import console

    try:
        return console.Filter(
            station=args.station,
            site=args.site,
            code=args.code,
            service=args.service,
            since=console.parse_time(args.since) if args.since else None,
            until=console.parse_time(args.until, end=True) if args.until else None,
            states=console.states_of(args.state.split(",")) if args.state else console.NEEDS_PERSON,
        )
    except console.FilterError as e:
        print(f"station-submitter: {e}", file=sys.stderr)
        raise SystemExit(2) from None


#: What ``failures`` prints of each unit: (header, Job attribute, width). One list for both.
FAILURE_COLUMNS = [
    ("event_id", "event_id", 0),
    ("station", "station", 16),
    ("service", "service", 4),
    ("state", "state", 9),
    ("code", "code", 18),
    ("gtin", "gtin", 14),
    ("serial/batch", "unit", 20),
    ("message", "message", 0),
]


def cmd_failures(args: argparse.Namespace) -> int:
    from station.central import console

    _, ledger = _ledger(args)
    jobs = console.needing_person(ledger, _filter(args), limit=args.last)
    if args.json:
        for j in jobs:
            print(json.dumps({**asdict(j), "state": str(j.state)}, ensure_ascii=False))
        return 0
    if not jobs:
        print("no units need a person" + (" (with these filters)" if _filter(args).narrowed else ""))
        return 0
    print("  ".join(f"{h:<{w}}" if w else h for h, _, w in FAILURE_COLUMNS))
    for j in jobs:
        values = {**asdict(j), "unit": j.serial or j.batch}
        print("  ".join(f"{values[a] or '-'!s:<{w}}" if w else str(values[a] or "-") for _, a, w in FAILURE_COLUMNS))
    return 0


def _chosen(args: argparse.Namespace, ledger: Any) -> list[Any]:
    """The units ids and filters name; nothing named is exit 2 (an action on every unit needs a filter)."""
    from station.central import console

    where = _filter(args)
    if not args.ids and not where.narrowed:
        print(
            "station-submitter: name the units: event ids, or a filter (--station, --site, --code, --service,"
            " --since, --until)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    missing = [i for i in args.ids if not ledger.jobs("event_id = ?", (i,), limit=1)]
    for i in missing:
        print(f"{i}: no such unit", file=sys.stderr)
    return console.select(ledger, args.ids, where if where.narrowed else None)


def _who() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_retry(args: argparse.Namespace) -> int:
    """Queue refused and failed units again; say what was done to each."""
    from station.central import console

    _, ledger = _ledger(args)
    jobs = _chosen(args, ledger)
    report = console.retry(ledger, jobs, _who())
    for line in report.lines():
        print(line)
    print(f"{len(report.done)} retried, {len(report.skipped)} not", file=sys.stderr)
    return 1 if report.skipped or len(jobs) < len(args.ids) else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Withdraw refused and failed units; cancel notified ones at the service (ÜTS verme/kullanım, İTS satış)."""
    from station.central import console
    from station.central.notifier import Notifier

    config, ledger = _ledger(args)
    jobs = _chosen(args, ledger)
    notifier = Notifier(config, ledger)
    try:
        report = console.cancel(ledger, jobs, _who(), notifier.cancel)
    finally:
        notifier.pool.shutdown()
    for line in report.lines():
        print(line)
    print(f"{len(report.done)} cancelled, {len(report.skipped)} not", file=sys.stderr)
    return 1 if report.skipped or len(jobs) < len(args.ids) else 0


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the console, the API and /metrics alone (``run`` serves them too with ``[web] enabled``)."""
    from dataclasses import replace

    from station.central.web import serve

    runtime.setup_logging(args.log_level, args.log_format)
    config, ledger = _ledger(args)
    web = replace(config.web, host=args.host or config.web.host, port=args.port or config.web.port)
    serve(replace(config, web=web), ledger)
    return 0


def cmd_accounts(args: argparse.Namespace) -> int:
    """``operator`` (console operators) and ``token`` (the HBYS's API tokens): add, remove, list."""
    from station.central import accounts, console

    _, ledger = _ledger(args)
    what = args.command
    operator = what == "operator"
    listing = accounts.operators if operator else accounts.tokens
    remove = accounts.remove_operator if operator else accounts.remove_token
    if args.action == "list":
        print(what)
        for name in listing(ledger):
            print(name)
        return 0
    if not args.name:
        print(f"station-submitter: {what} {args.action}: a NAME is needed", file=sys.stderr)
        return 2
    if args.action == "remove":
        removed = remove(ledger, args.name)
        print(f"{args.name}: {'removed' if removed else f'no such {what}'}")
        if removed:
            console.audit(ledger, _who(), f"{what} remove", args.name)
        return 0 if removed else 1
    try:
        if operator:
            accounts.add_operator(ledger, args.name, _password(args))
            print(f"{args.name}: may log in to the console")
        else:
            print(accounts.add_token(ledger, args.name))
            print(f"(the token for {args.name}, shown only now: keep it in the HBYS's secret store)", file=sys.stderr)
    except accounts.AccountError as e:
        print(f"station-submitter: {e}", file=sys.stderr)
        return 2
    console.audit(ledger, _who(), f"{what} add", args.name)
    return 0


def _password(args: argparse.Namespace) -> str:
    """From --password-file, else asked twice on a terminal, else the first line of stdin."""
    import getpass

    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            return f.readline().rstrip("\n")
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            print("station-submitter: the passwords differ", file=sys.stderr)
            raise SystemExit(2)
        return first
    return sys.stdin.readline().rstrip("\n")


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
        if rows and not args.json:
            print(f"{'gtin':<16} {'batch':<26} {'serial':<27} {'source':<14} note")
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
    from station.central import console

    try:
        start, end = console.parse_time(args.date_from), console.parse_time(args.date_to, end=True)
    except console.FilterError as e:
        print(f"station-submitter: {e}", file=sys.stderr)
        return 2
    _, ledger = _ledger(args)
    rows = ledger.stream(
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
    parser = runtime.Parser(
        prog="station-submitter", description="Karekod Station central submitter: events to ÜTS and İTS."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
        return p

    p = with_config(sub.add_parser("run", help="run the submitter"))
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", choices=runtime.LOG_FORMATS, default="text", help="json: one object per line")
    p.set_defaults(func=cmd_run)
    p = with_config(sub.add_parser("web", help="serve the console, the HBYS API and /metrics"))
    p.add_argument("--host", help="default: [web] host (127.0.0.1)")
    p.add_argument("--port", type=int, help="default: [web] port (8090)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", choices=runtime.LOG_FORMATS, default="text")
    p.set_defaults(func=cmd_web)
    for what, text in (
        ("operator", "console operators: add (or a new password), remove, list"),
        ("token", "API tokens for the HBYS/ERP: add (printed once), remove, list"),
    ):
        p = with_config(sub.add_parser(what, help=text))
        p.add_argument("action", choices=["add", "remove", "list"])
        p.add_argument("name", nargs="?", metavar="NAME")
        if what == "operator":
            p.add_argument("--password-file", help="read the password from this file (else asked, or stdin)")
        p.set_defaults(func=cmd_accounts)
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

    def with_filters(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--station")
        p.add_argument("--site")
        p.add_argument("--code", help="the service's code (60002, UTS-H008...) or ours (TRANSPORT...)")
        p.add_argument("--service", choices=["uts", "its"])
        p.add_argument("--since", metavar="DATE", help="YYYY-MM-DD or ISO 8601, on the unit's arrival")
        p.add_argument("--until", metavar="DATE", help="YYYY-MM-DD (the whole day) or ISO 8601")
        p.add_argument("--state", help="comma-separated (default: refused,failed,in_doubt)")
        return p

    p = with_filters(with_config(sub.add_parser("failures", help="units refused, failed or in doubt")))
    p.add_argument("--last", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_failures)
    p = with_filters(with_config(sub.add_parser("retry", help="send failed or refused units again")))
    p.add_argument("ids", nargs="*", metavar="EVENT_ID")
    p.set_defaults(func=cmd_retry)
    p = with_filters(
        with_config(sub.add_parser("cancel", help="withdraw refused units; cancel notified ones at ÜTS/İTS"))
    )
    p.add_argument("ids", nargs="*", metavar="EVENT_ID")
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
