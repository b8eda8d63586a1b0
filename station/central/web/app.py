"""The console's pages, its API and ``/metrics`` (see the package's docstring)."""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from station import __version__
from station.central import accounts, console, deliveries, orders
from station.central.config import SubmitterConfig
from station.central.ledger import Job, Ledger
from station.central.web import api
from station.central.web.texts import choose, text

log = logging.getLogger("submitter.web")
HERE = Path(__file__).parent
SESSION_COOKIE = "kk_session"
LANG_COOKIE = "kk_lang"
CancelNotified = Callable[[Job], tuple[bool, str]]


def _when(value: Any) -> str:
    """A Unix time or ISO text as local ``YYYY-MM-DD HH:MM:SS`` (``-`` when there is none)."""
    if value in (None, ""):
        return "-"
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value)).strftime("%Y-%m-%d %H:%M:%S")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    n = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(value)


class Console:
    """What every route needs: the configuration, the ledger, sessions and the templates."""

    def __init__(self, config: SubmitterConfig, ledger: Ledger, cancel_notified: CancelNotified | None) -> None:
        self.config = config
        self.ledger = ledger
        self.sessions = accounts.Sessions.of(ledger, config.web.session_hours)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["when"] = _when
        self.templates.env.filters["bytes"] = _bytes
        self._cancel_notified = cancel_notified
        self._lock = threading.Lock()

    def cancel_notified(self, job: Job) -> tuple[bool, str]:
        """The notifier's cancel at ÜTS/İTS (made on first use when the console serves alone)."""
        with self._lock:
            if self._cancel_notified is None:
                from station.central.notifier import Notifier

                self._cancel_notified = Notifier(self.config, self.ledger).cancel
        return self._cancel_notified(job)

    def operator(self, request: Request) -> str | None:
        """The logged-in operator: the reverse proxy's user (from a trusted proxy only), or the session's."""
        web = self.config.web
        if web.proxy_user_header and request.client and request.client.host in web.trusted_proxies:
            name = request.headers.get(web.proxy_user_header, "").strip()
            if name and accounts.NAME.match(name):
                return name
        return self.sessions.who(request.cookies.get(SESSION_COOKIE))

    def _csrf_key(self, request: Request, who: str) -> str:
        """What the CSRF token is bound to: the operator's session cookie, or for the proxy's user
        (who has none) the name (an attacker cannot sign either without the ledger's key)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie if cookie and self.sessions.who(cookie) == who else f"proxy|{who}"

    def csrf(self, request: Request, who: str | None) -> str:
        """The token this operator's forms carry ("" when nobody is logged in)."""
        return self.sessions.csrf(self._csrf_key(request, who)) if who else ""

    def csrf_ok(self, request: Request, who: str, token: str) -> bool:
        return self.sessions.csrf_ok(self._csrf_key(request, who), token)

    def lang(self, request: Request) -> str:
        return choose(
            request.query_params.get("lang"),
            request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
            self.config.web.language,
        )

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = self.lang(request)
        who = self.operator(request)
        response = self.templates.TemplateResponse(
            request,
            name,
            {
                "t": lambda key: text(lang, key),
                "lang": lang,
                "who": who,
                "csrf": self.csrf(request, who),
                "refresh": self.config.web.refresh_seconds,
                "version": __version__,
                "submitter": self.config.id,
                "environment": self.config.environment,
                "path": request.url.path,
                **context,
            },
            status_code=status,
        )
        if request.query_params.get("lang") in ("tr", "en"):
            response.set_cookie(LANG_COOKIE, lang, samesite="strict", max_age=365 * 86400)
        return response


def _filter(args: dict[str, str]) -> console.Filter:
    """The needs-a-person filter from a form or an address (raises FilterError)."""
    since, until = args.get("since") or "", args.get("until") or ""
    return console.Filter(
        station=args.get("station") or None,
        site=args.get("site") or None,
        code=args.get("code") or None,
        service=args.get("service") or None,
        since=console.parse_time(since) if since else None,
        until=console.parse_time(until, end=True) if until else None,
        states=console.states_of(args["state"].split(",")) if args.get("state") else console.NEEDS_PERSON,
    )


FILTER_FIELDS = ("station", "site", "code", "service", "since", "until", "state")


def make_app(config: SubmitterConfig, ledger: Ledger, cancel_notified: CancelNotified | None = None) -> FastAPI:
    """The console, the API (``/api/v1``, described at ``/api/v1/openapi.json``) and ``/metrics``."""
    app = FastAPI(
        title="Karekod Station central API",
        version=__version__,
        description=api.DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    c = Console(config, ledger, cancel_notified)
    app.state.console = c
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router(c))

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
            )
        return response

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/stations", 303)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        ledger.query("SELECT 1")
        return PlainTextResponse("ok\n")

    @app.get("/metrics", include_in_schema=False)
    def metrics_page() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from station.central import metrics

        return Response(generate_latest(metrics.registry(config, ledger)), media_type=CONTENT_TYPE_LATEST)

    # -- pages --

    @app.get("/stations", include_in_schema=False)
    def stations_page(request: Request, partial: bool = False) -> HTMLResponse:
        views = console.stations(ledger, config, config.web.stale_after_seconds)
        return c.page(request, "_stations.html" if partial else "stations.html", stations=views)

    @app.get("/stations/{station}", include_in_schema=False)
    def station_page(request: Request, station: str, partial: bool = False) -> HTMLResponse:
        views = [v for v in console.stations(ledger, config, config.web.stale_after_seconds) if v.station == station]
        if not views:
            return c.page(request, "error.html", 404, message=f"{text(c.lang(request), 'not_found')}: {station}")
        rows = console.station_events(ledger, station)
        return c.page(request, "_station_events.html" if partial else "station.html", view=views[0], rows=rows)

    @app.get("/deliveries", include_in_schema=False)
    def deliveries_page(request: Request, partial: bool = False) -> HTMLResponse:
        rows = deliveries.listing(ledger)
        order_rows = orders.listing(ledger)
        return c.page(request, "_deliveries.html" if partial else "deliveries.html", rows=rows, orders=order_rows)

    @app.get("/deliveries/{ident}", include_in_schema=False)
    def delivery_page(request: Request, ident: str, partial: bool = False) -> HTMLResponse:
        found = deliveries.get(ledger, ident)
        if found is None:
            return c.page(request, "error.html", 404, message=f"{text(c.lang(request), 'not_found')}: {ident}")
        delivery, site, summary = found
        row = next(iter(deliveries.listing(ledger, ident=ident)), {})
        units = deliveries.unit_states(ledger, ident)
        return c.page(
            request,
            "_delivery.html" if partial else "delivery.html",
            delivery=delivery,
            site=site,
            summary=summary,
            row=row,
            units=units,
        )

    @app.get("/deliveries/{ident}/summary.csv", include_in_schema=False)
    def delivery_csv(ident: str) -> Response:
        found = deliveries.get(ledger, ident)
        if found is None:
            raise HTTPException(404, f"no delivery {ident}")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([name for name, _ in SUMMARY_CSV])
        for row in summary_rows(ledger, ident):
            writer.writerow([row.get(name, "") for name, _ in SUMMARY_CSV])
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{ident}.csv"'},
        )

    @app.get("/problems", include_in_schema=False)
    def problems_page(request: Request, notice: str = "") -> HTMLResponse:
        args = {k: request.query_params.get(k, "") for k in FILTER_FIELDS}
        try:
            where = _filter(args)
        except console.FilterError as e:
            return c.page(request, "error.html", 400, message=f"{text(c.lang(request), 'bad_filter')}: {e}")
        jobs = console.needing_person(ledger, where)
        return c.page(
            request,
            "problems.html",
            jobs=jobs,
            args=args,
            query=urlencode({k: v for k, v in args.items() if v}),
            codes=console.codes(ledger),
            sites=sorted(config.sites),
            stations=sorted({s for site in config.sites.values() for s in site.stations}),
            notice=notice,
        )

    def act(request: Request, action: str, form: dict[str, Any]) -> Response:
        lang = c.lang(request)
        who = c.operator(request)
        if who is None:
            return c.page(request, "error.html", 403, message=text(lang, "action_needs_login"))
        if not c.csrf_ok(request, who, str(form.get("csrf", ""))):
            return c.page(request, "error.html", 403, message=text(lang, "bad_csrf"))
        ids = [str(i) for i in form.get("ids", [])]
        args = {k: str(form.get(k, "")) for k in FILTER_FIELDS}
        try:
            where = _filter(args) if form.get("all_matching") else None
        except console.FilterError as e:
            return c.page(request, "error.html", 400, message=f"{text(lang, 'bad_filter')}: {e}")
        jobs = console.select(ledger, ids, where)
        if not jobs:
            notice = text(lang, "nothing_chosen")
        else:
            report = (
                console.retry(ledger, jobs, who)
                if action == "retry"
                else console.cancel(ledger, jobs, who, c.cancel_notified)
            )
            log.info("%s %s %d unit(s), skipped %d", who, report.action, len(report.done), len(report.skipped))
            notice = "; ".join(report.lines()[:20]) + (" …" if len(report.lines()) > 20 else "")
        back = urlencode({**{k: v for k, v in args.items() if v}, "notice": notice})
        return RedirectResponse(f"/problems?{back}", 303)

    @app.post("/problems/retry", include_in_schema=False)
    async def retry_action(request: Request) -> Response:
        form = await request.form()
        return act(request, "retry", {**form, "ids": form.getlist("ids")})

    @app.post("/problems/cancel", include_in_schema=False)
    async def cancel_action(request: Request) -> Response:
        form = await request.form()
        return act(request, "cancel", {**form, "ids": form.getlist("ids")})

    @app.get("/units", include_in_schema=False)
    def units_page(request: Request, q: str = "") -> HTMLResponse:
        key = console.unit_key(q) if q else None
        history = console.unit_history(ledger, key[0], key[1]) if key else None
        return c.page(request, "units.html", q=q, history=history)

    @app.get("/audit", include_in_schema=False)
    def audit_page(request: Request) -> HTMLResponse:
        return c.page(request, "audit.html", rows=console.audit_log(ledger, 200))

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, failed: bool = False) -> HTMLResponse:
        return c.page(request, "login.html", failed=failed)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, name: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "") -> Response:
        if not accounts.login(ledger, name, password):
            log.warning(
                "console: failed login for %r from %s", name[:64], request.client.host if request.client else "?"
            )
            return RedirectResponse("/login?failed=1", 303)
        console.audit(ledger, name, "login", "console", request.client.host if request.client else "")
        response = RedirectResponse("/problems", 303)
        response.set_cookie(
            SESSION_COOKIE,
            c.sessions.issue(name),
            max_age=int(config.web.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=config.web.secure_cookies,
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/stations", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    return app


#: The delivery summary's CSV columns: (header, where the value comes from). One list for both.
SUMMARY_CSV = [
    ("status", "received / missing / unexpected"),
    ("station", "the station that scanned it"),
    ("di", "GTIN or device identifier"),
    ("serial", ""),
    ("batch", ""),
    ("quantity", "a lot line: how many"),
    ("carrier", "SSCC"),
    ("notification", "the unit's notification state"),
    ("code", "the service's code"),
    ("message", "the service's message"),
]


def summary_rows(ledger: Ledger, ident: str) -> list[dict[str, Any]]:
    """A delivery's units for its CSV: each received one with its notification, then what the
    station's summary says was missing and unexpected."""
    found = deliveries.get(ledger, ident)
    rows: list[dict[str, Any]] = []
    for station, di, gtin, serial, batch, state, code, message in deliveries.unit_states(ledger, ident):
        rows.append(
            {
                "status": "received",
                "station": station,
                "di": di or gtin,
                "serial": serial,
                "batch": batch,
                "quantity": 1,
                "notification": state,
                "code": code,
                "message": message,
            }
        )
    summary = found[2] if found else None
    if summary is not None:
        for m in summary.missing_units:
            rows.append(
                {
                    "status": "missing",
                    "station": summary.station,
                    "di": m.di,
                    "serial": m.serial,
                    "batch": m.batch,
                    "quantity": m.quantity,
                    "carrier": m.carrier,
                }
            )
        for x in summary.unexpected_units:
            rows.append(
                {"status": "unexpected", "station": summary.station, "di": x.di, "serial": x.serial, "batch": x.batch}
            )
    return rows


def serve(
    config: SubmitterConfig,
    ledger: Ledger,
    stop: threading.Event | None = None,
    cancel_notified: CancelNotified | None = None,
    port: int | None = None,
) -> None:
    """Serve until ``stop`` is set (or the process is signalled, when ``stop`` is None)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            make_app(config, ledger, cancel_notified),
            host=config.web.host,
            port=config.web.port if port is None else port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
        )
    )
    if stop is not None:
        # uvicorn installs its signal handlers only in the main thread: in a thread, ``stop`` rules.
        def watch() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=watch, name="web-stop", daemon=True).start()
    log.info("console on http://%s:%d", config.web.host, config.web.port if port is None else port)
    server.run()
