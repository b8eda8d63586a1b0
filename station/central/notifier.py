"""Turning ledger jobs into ÜTS and İTS notifications, each unit exactly once.

Every call is recorded in the ledger (``requests``, state ``prepared``) in the same commit that
claims its units, before a byte is sent; its answer is recorded in one commit with every unit's
outcome. Whatever happens in between — a crash, a timeout, a lost answer — leaves the units
``in_doubt``, and nothing is sent for them again until the service has been asked whether the
call took effect (İTS check_status; ÜTS the pending list and the institution's units). A definite
answer is never sent again; a call that never left (connection refused) is. Transport errors and
5xx retry with backoff; business refusals do not.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from functools import partial
from typing import Any

from station.central import deliveries, orders, recalls
from station.central.config import Site, SubmitterConfig
from station.central.ledger import Job, JobState, Ledger, Outcome
from station.central.services import its, pts, uts
from station.central.services.http import AuthFailed, Call, ServiceError, Unreachable
from station.central.services.its import ItsClient
from station.central.services.uts import UtsClient, uno_key
from station.wire import Operation, Service

log = logging.getLogger("submitter.notify")


RESULT_RESEND_SECONDS = 60.0
"""A result the station has not acked is sent again after this long (and when it comes online)."""

UNSENT_RETRY_SECONDS = 5.0
"""A result the broker did not take (the submitter was cut off from it) is tried again after this
long (a station's ack comes within milliseconds; waiting for it, RESULT_RESEND_SECONDS)."""

SWEEP_SECONDS = 60.0
"""How often a running notifier looks for requests left ``prepared`` past their stale time (any
submitter's: one that could not write its answer, or died): their units are put in doubt."""


def its_unit(job: Job) -> its.Unit:
    return its.Unit(job.gtin or "", job.serial or "", job.batch, job.expiry)


def acting(site: Site, job: Job) -> Site:
    """The site as this unit's notification sees it: with the operation its station was doing (a
    station may switch between the operations its site allows, ``[sites.X] operations``)."""
    if job.operation and job.operation != site.operation and job.operation in site.operations:
        return replace(site, operation=Operation(job.operation))
    return site


def backoff(attempts: int) -> float:
    return float(min(300.0, 2.0 ** min(attempts, 9)) * random.uniform(0.8, 1.2))


def uts_uno(job: Job) -> str:
    """The ``UNO`` of a unit: its GTIN as 14 digits, or the HIBCC/ICCBBA/IFA device identifier."""
    return uno_key(job.gtin or "") if job.gs1 or not job.di else job.di


class PendingIndex:
    """The vermes addressed to one ÜTS institution, refreshed when a scanned unit is not in it."""

    def __init__(self, client: UtsClient, gkk: str | None) -> None:
        self.client = client
        self.gkk = gkk
        self.lock = threading.Lock()
        self.refreshed = 0.0
        self.by_serial: dict[tuple[str, str], str] = {}
        self.by_lot: dict[tuple[str, str], list[str]] = {}
        self.used: set[str] = set()

    def find(self, uno: str, sno: str | None, lno: str | None) -> str | None:
        with self.lock:
            bid = self._lookup(uno, sno, lno)
            if bid is None and time.monotonic() - self.refreshed > 1.0:
                rows = self.client.pending(self.gkk)
                self.by_serial, self.by_lot = {}, {}
                for r in rows:
                    if r.get("SNO"):
                        self.by_serial[(uno_key(str(r["UNO"])), str(r["SNO"]))] = str(r["BID"])
                    elif r.get("LNO"):
                        self.by_lot.setdefault((uno_key(str(r["UNO"])), str(r["LNO"])), []).append(str(r["BID"]))
                self.refreshed = time.monotonic()
                self.used &= {str(r["BID"]) for r in rows}  # accepted vermes leave the list: forget them
                bid = self._lookup(uno, sno, lno)
            if bid is not None:
                self.used.add(bid)
            return bid

    def _lookup(self, uno: str, sno: str | None, lno: str | None) -> str | None:
        if sno:
            bid = self.by_serial.get((uno, sno))
            return bid if bid and bid not in self.used else None
        for bid in self.by_lot.get((uno, lno or ""), []):
            if bid not in self.used:
                return bid
        return None

    def forget(self, bid: str) -> None:
        with self.lock:
            self.used.discard(bid)


class Notifier:
    def __init__(
        self,
        config: SubmitterConfig,
        ledger: Ledger,
        publish: Callable[[list[Job]], list[str]] | None = None,
        uts: UtsClient | None = None,
        its: ItsClient | None = None,
        publish_deliveries: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.publish = publish
        self.publish_deliveries = publish_deliveries
        self.fetched_at = 0.0
        self.uts = uts
        self.its = its
        if self.uts is None and config.uts is not None:
            self.uts = UtsClient(
                config.uts.base_url, config.uts.secret.read("ÜTS system token"), config.timeout_seconds
            )
        if self.its is None and config.its is not None:
            kept = ledger.meta("its_error_codes")  # fetched once, kept across restarts
            self.its = ItsClient(
                config.its.base_url,
                config.its.username,
                config.its.secret.read("İTS password"),
                config.timeout_seconds,
                codes=json.loads(kept) if kept else None,
                on_codes=lambda codes: ledger.set_meta("its_error_codes", json.dumps(codes, ensure_ascii=False)),
            )
        self.pending: dict[str, PendingIndex] = {}
        self.pool = ThreadPoolExecutor(max_workers=config.uts_concurrency + 4, thread_name_prefix="notify")
        self.busy: dict[str, int] = {"uts": 0, "its": 0, "doubt": 0, "fetch": 0}
        self.busy_lock = threading.Lock()
        self.auth_blocked_until: dict[str, float] = {}
        self.stale_after = config.timeout_seconds * 3 + 30
        """How old a request still ``prepared`` may be before it counts as cut off: longer than
        any call of any submitter can take."""

    # -- the loop --

    def run(self, stop: threading.Event) -> None:
        n = self.ledger.recover(stale_after=self.stale_after)
        if n:
            log.warning("%d request(s) were cut off by a stop; their units are in doubt until checked", n)
        last_publish = 0.0
        swept = time.monotonic()
        while not stop.is_set():
            try:
                self.tick()
                if time.monotonic() - swept > SWEEP_SECONDS:
                    swept = time.monotonic()
                    n = self.ledger.recover(stale_after=self.stale_after, mine=False)
                    if n:
                        log.warning("%d request(s) went stale with no answer written; their units are in doubt", n)
                if self.publish is not None and time.monotonic() - last_publish > 0.2:
                    self.publish_results()
                    if self.publish_deliveries is not None:
                        self.publish_deliveries()
                    if self._busy("fetch") == 0:
                        self._submit("fetch", self.send_packages)
                    last_publish = time.monotonic()
                every = self.config.delivery_fetch_minutes * 60
                if every and time.monotonic() - self.fetched_at > every and self._busy("fetch") == 0:
                    self.fetched_at = time.monotonic()
                    self._submit("fetch", self._fetch_round)
            except Exception:
                log.exception("notifier: unexpected error")
                stop.wait(1)
            stop.wait(0.05)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def tick(self) -> None:
        now = time.time()
        if self.its is not None and self.auth_blocked_until.get("its", 0) < now:
            for site_name, count, oldest in self.ledger.oldest_queued("its"):
                if self._busy("its") >= 2:
                    break
                site = self.config.sites.get(site_name)
                ready = count >= self.config.its_batch_size or now - oldest >= self.config.its_batch_wait_ms / 1000
                if site is not None and ready:
                    claimed = self.ledger.claim(
                        "its", site.name, self.config.its_batch_size, partial(self.its_call, site)
                    )
                    if claimed is not None:
                        self._submit("its", self._its_send, site, *claimed)
        if self.uts is not None and self.auth_blocked_until.get("uts", 0) < now:
            free = self.config.uts_concurrency - self._busy("uts")
            for site_name, _count, _oldest in self.ledger.oldest_queued("uts"):
                site = self.config.sites.get(site_name)
                while site is not None and free > 0:
                    claimed = self.ledger.claim("uts", site.name, 1, partial(self.uts_first, site), whole_lot=True)
                    if claimed is None:
                        break
                    free -= 1
                    self._submit("uts", self._uts_one, site, claimed)
        if self._busy("doubt") == 0:
            doubtful = self.ledger.jobs(f"state = '{JobState.IN_DOUBT}' AND next_at <= ?", (now,), limit=200)
            if doubtful:
                self._submit("doubt", self._resolve, doubtful)

    def _busy(self, kind: str) -> int:
        with self.busy_lock:
            return self.busy[kind]

    def _submit(self, kind: str, fn: Callable[..., None], *args: Any) -> None:
        with self.busy_lock:
            self.busy[kind] += 1

        def done(_: Future[None]) -> None:
            with self.busy_lock:
                self.busy[kind] -= 1

        fut = self.pool.submit(self._guard, fn, *args)
        fut.add_done_callback(done)

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("notifier: %s failed", fn.__name__)

    # -- deliveries: what is coming to each receipt site --

    def _fetch_round(self) -> None:
        self.fetch_deliveries()

    def fetch_deliveries(self, only: str | None = None) -> list[deliveries.FetchReport]:
        """Fetch every receipt site's incoming deliveries (or one site's); a site whose service
        cannot be reached is reported and tried again at the next round."""
        reports = []
        for site in self.config.sites.values():
            if not deliveries.is_receipt(site) or (only and site.name != only):
                continue
            try:
                report = deliveries.fetch(self.ledger, site, self.uts, self.its, self.config.delivery_days)
            except ServiceError as e:
                report = deliveries.FetchReport(site.name, problems=(f"cannot fetch deliveries: {e}",))
                log.warning("site %s: cannot fetch deliveries: %s", site.name, e)
            if report.new or report.changed or report.withdrawn:
                log.info(
                    "site %s: %d new, %d changed, %d withdrawn deliveries",
                    site.name,
                    report.new,
                    report.changed,
                    report.withdrawn,
                )
            reports.append(report)
        return reports

    # -- İTS: batches --

    def its_call(self, site: Site, jobs: list[Job]) -> Call:
        """The İTS notification for a site's batch of units."""
        site = acting(site, jobs[0])
        return its.notification(
            site.operation,
            [its_unit(j) for j in jobs],
            institution=site.institution,
            counterpart=jobs[0].counterpart or site.counterpart,
            deactivation_reason=site.deactivation_reason,
            document_number=jobs[0].document or site.document_number,
            document_date=date.today().isoformat(),
        )

    def _its_send(self, site: Site, request_id: str, jobs: list[Job]) -> None:
        site = acting(site, jobs[0])
        assert self.its is not None
        stored = self.ledger.request(request_id)
        assert stored is not None
        try:
            answer = self.its.notify(Call(stored[2], json.loads(stored[3])))
        except Unreachable as e:
            self._not_sent(request_id, jobs, str(e))
            return
        except AuthFailed as e:
            self._auth_failed("its", request_id, jobs, str(e))
            return
        except ServiceError as e:
            log.warning("İTS %s: %s; %d unit(s) in doubt", site.name, e, len(jobs))
            self.ledger.in_doubt(request_id, str(e))
            return
        by_unit = its.unit_codes(answer)
        outcomes = []
        for j in jobs:
            uc = by_unit.get(its_unit(j).key, "")
            if not uc:
                outcomes.append(
                    Outcome(j.event_id, False, "NO_ANSWER", "İTS gave no result for this unit.", answer.notification_id)
                )
            else:
                done = uc == its.SUCCESS
                outcomes.append(Outcome(j.event_id, done, uc, self.its.message(uc), answer.notification_id))
        outcomes = self._fill_holders(jobs, outcomes)
        self.ledger.answer(request_id, 200, answer.raw, outcomes)
        self._note_recalls(jobs, outcomes)
        ok = sum(o.ok for o in outcomes)
        log.info("İTS %s %s: %d unit(s), %d ok, %d refused", site.name, site.operation, len(jobs), ok, len(jobs) - ok)

    def _fill_holders(self, jobs: list[Job], outcomes: list[Outcome]) -> list[Outcome]:
        """İTS texts name the unit's holder as ``GLN1``/``GLN2`` (``60002 Ürün GLN1 üzerinde
        kayıtlı.``); a notification's answer does not say who, check_status does. Asked once per
        call, only for refused units whose text has a placeholder (the service is restricted); if it
        cannot answer, the text stays as the service wrote it."""
        holes = [o for o in outcomes if not o.ok and ("GLN1" in o.message or "GLN2" in o.message)]
        if not holes or self.its is None:
            return outcomes
        by_id = {j.event_id: j for j in jobs}
        try:
            states = self.its.check_status([its_unit(by_id[o.event_id]) for o in holes])
        except ServiceError as e:
            log.info("İTS: who holds %d refused unit(s) is not known (%s); texts keep GLN1/GLN2", len(holes), e)
            return outcomes
        holders = {(str(x.get("gtin", "")).zfill(14), str(x.get("sn", ""))): x for x in states}
        filled = []
        for o in outcomes:
            j = by_id[o.event_id]
            x = holders.get(((j.gtin or "").zfill(14), j.serial or "")) if o in holes else None
            if x is not None:
                o = replace(o, message=self.its.message(o.code, str(x.get("gln1") or ""), str(x.get("gln2") or "")))
            filled.append(o)
        return filled

    def _note_recalls(self, jobs: list[Job], outcomes: list[Outcome]) -> None:
        """A service said a unit is recalled: every station learns it (station.central.recalls)."""
        by_id = {j.event_id: j for j in jobs}
        for o in outcomes:
            j = by_id.get(o.event_id)
            if (
                not o.ok
                and j is not None
                and recalls.from_answer(self.ledger, o.code, j.di or j.gtin, j.batch, j.serial)
            ):
                log.warning(
                    "recall list: %s batch %s added (%s on serial %s)", j.gtin, j.batch or "*", o.code, j.serial
                )

    # -- PTS packages of ended orders --

    def send_packages(self) -> None:
        """Each ended order of an İTS site with ``send_pts``, once all its units are final: a PTS
        package of exactly the boxes dispatched, to the buyer. Recorded before it is sent."""
        if self.its is None:
            return
        for ident, site_name, buyer, document in orders.ready_for_package(self.ledger):
            site = self.config.sites.get(site_name)
            if site is None or site.service is not Service.ITS or not site.send_pts:
                continue
            pkg = orders.package(self.ledger, ident, site.institution, buyer, document)
            if not pkg.lines:
                orders.packaged(self.ledger, ident, "-")
                continue
            call = its.pts_send(buyer, pts.package_zip(pkg))
            request_id = self.ledger.prepare("its", site.name, call.path, {"receiver": buyer, "units": pkg.units})
            orders.packaged(self.ledger, ident, request_id)
            try:
                parsed, raw = self.its.call(call)
            except ServiceError as e:
                self.ledger.in_doubt(request_id, str(e))
                log.warning(
                    "PTS package of order %s to %s: %s (in doubt: check before sending again)", document, buyer, e
                )
                continue
            self.ledger.answer(request_id, 200, raw, [])
            transfer = parsed.get("transferId") if isinstance(parsed, dict) else None
            log.info(
                "PTS package of order %s (%d unit(s)) sent to %s: transfer %s", document, pkg.units, buyer, transfer
            )

    # -- ÜTS: one unit per call --

    def uts_first(self, site: Site, jobs: list[Job]) -> Call:
        """What a claim records: the whole call when the verme is known (a delivery's units), else
        a receipt's alma without its verme, filled in from the pending list before sending."""
        return self.uts_call(site, jobs[0], jobs[0].line, len(jobs))

    def uts_call(self, site: Site, job: Job, vbi: str | None, count: int = 1) -> Call:
        """The ÜTS notification for one unit (or ``count`` units of one lot): alma of the verme
        ``vbi``, verme or kullanım."""
        site = acting(site, job)
        uno = uts_uno(job)
        sno, lno = job.serial or None, None if job.serial else job.batch
        today = date.today().isoformat()
        if site.operation is Operation.RECEIPT:
            return uts.alma(vbi, None if job.serial else count)
        if site.operation is Operation.DISPATCH:
            kun, bno = job.counterpart or site.counterpart, job.document or site.document_number or job.event_id[:20]
            call = uts.verme(uno, kun, bno, sno, lno, 1, today)
        else:
            identity = json.loads(job.patient) if job.patient else {"TUR": site.use_tur}
            call = uts.kullanim(uno, today, identity.pop("TUR"), sno, lno, 1, **identity)
        if not job.gs1 and job.udi:
            return uts.by_udi(call, job.udi, bool(job.serial))
        return call

    def _index(self, site: Site) -> PendingIndex:
        assert self.uts is not None
        if site.name not in self.pending:
            self.pending[site.name] = PendingIndex(self.uts, site.counterpart or None)
        return self.pending[site.name]

    def _uts_one(self, site: Site, claimed: tuple[str, list[Job]]) -> None:
        assert self.uts is not None
        request_id, jobs = claimed
        job = jobs[0]
        site = acting(site, job)
        uno = uts_uno(job)
        call = self.uts_call(site, job, job.line, len(jobs))
        if site.operation is Operation.RECEIPT and not job.line:
            try:
                vbi = self._index(site).find(uno, job.serial, job.batch)
            except ServiceError as e:
                self._not_sent(request_id, [job], f"pending list: {e}")  # a query: nothing was notified
                return
            if vbi is None:
                what = f"serial {job.serial}" if job.serial else f"lot {job.batch}"
                self.ledger.answer(
                    request_id,
                    None,
                    "",
                    [
                        Outcome(
                            job.event_id,
                            False,
                            "NO_PENDING_VERME",
                            f"No verme addressed to kurum {site.institution} is pending for {uno} {what}.",
                        )
                    ],
                )
                return
            call = self.uts_call(site, job, vbi)
            with self.ledger.tx() as c:  # the real body is on disk before it is sent
                c.execute("UPDATE requests SET body = ? WHERE id = ?", (json.dumps(call.body), request_id))
        try:
            answer = self.uts.send(call)
        except Unreachable as e:
            if site.operation is Operation.RECEIPT and not job.line:
                self._index(site).forget(str(call.body.get("VBI")))
            self._not_sent(request_id, jobs, str(e))
            return
        except AuthFailed as e:
            self._auth_failed("uts", request_id, jobs, str(e))
            return
        except ServiceError as e:
            log.warning("ÜTS %s: %s; %d unit(s) from %s in doubt", site.name, e, len(jobs), job.event_id)
            self.ledger.in_doubt(request_id, str(e))
            return
        reference = str(answer.snc) if answer.ok and isinstance(answer.snc, str) else ""
        code = "OK" if answer.ok else answer.code
        self._note_recalls(jobs, [Outcome(j.event_id, answer.ok, code, "") for j in jobs])
        self.ledger.answer(
            request_id, 200, answer.raw, [Outcome(j.event_id, answer.ok, code, answer.text, reference) for j in jobs]
        )
        log.info(
            "ÜTS %s %s %s %s%s: %s",
            site.name,
            site.operation,
            uno,
            job.serial or job.batch,
            f" ×{len(jobs)}" if len(jobs) > 1 else "",
            "ok" if answer.ok else f"refused {answer.code}",
        )

    # -- failures --

    def _not_sent(self, request_id: str, jobs: list[Job], why: str) -> None:
        attempts = max(j.attempts for j in jobs)
        log.warning("not sent (%s); retry in about %.0f s", why, backoff(attempts))
        self.ledger.not_sent(request_id, why, backoff(attempts), self.config.max_attempts)

    def _auth_failed(self, service: str, request_id: str, jobs: list[Job], why: str) -> None:
        log.error(
            "%s refused our credentials (%s): check the token/password; holding %s for 60 s",
            service.upper(),
            why,
            service.upper(),
        )
        self.auth_blocked_until[service] = time.time() + 60
        self.ledger.not_sent(request_id, why, 60.0, self.config.max_attempts + 100)

    # -- in doubt: ask the service whether the call took effect --

    def _resolve(self, jobs: list[Job]) -> None:
        by_request: dict[str | None, list[Job]] = {}
        for j in jobs:
            by_request.setdefault(j.request_id, []).append(j)
        for request_id, group in by_request.items():
            site = self.config.sites.get(group[0].site or "")
            site = acting(site, group[0]) if site is not None else None
            if site is None:
                for j in group:
                    self.ledger.give_up(j.event_id, "NO_SITE", "In doubt, and its site is no longer configured.")
                continue
            try:
                if site.service == "its":
                    self._resolve_its(site, group)
                elif group[0].line and not group[0].serial:
                    self._resolve_uts_lot(site, group, request_id)
                else:
                    for j in group:
                        self._resolve_uts(site, j, request_id)
            except ServiceError as e:
                log.warning("cannot check %d unit(s) in doubt yet: %s", len(group), e)
                for j in group:
                    with self.ledger.tx() as c:
                        c.execute(
                            "UPDATE jobs SET next_at = ? WHERE event_id = ?",
                            (time.time() + backoff(j.attempts), j.event_id),
                        )

    def _resolve_its(self, site: Site, jobs: list[Job]) -> None:
        assert self.its is not None
        states = self.its.check_status([its_unit(j) for j in jobs])
        by_unit = {(str(s.get("gtin", "")).zfill(14), str(s.get("sn", ""))): s for s in states}
        for j in jobs:
            s = by_unit.get(((j.gtin or "").zfill(14), j.serial or ""), {})
            gln1, gln2, uc = str(s.get("gln1") or ""), str(s.get("gln2") or ""), str(s.get("uc") or "")
            me = site.institution
            took = {
                "receipt": gln1 == me and not gln2,
                "dispatch": gln1 == site.counterpart and gln2 in (me, ""),
                "return": gln1 == site.counterpart and gln2 in (me, ""),
                "deactivation": uc == "60000",
                "use": uc == "60006",
            }[site.operation]
            note = f"checked after a lost answer: uc {uc}, gln1 {gln1 or '-'}, gln2 {gln2 or '-'}"
            self.ledger.resolved(j.event_id, took, note, 0.0, self.config.max_attempts)
            log.info("İTS unit %s %s in doubt: %s", j.gtin, j.serial, "took effect" if took else "send again")

    def _resolve_uts_lot(self, site: Site, jobs: list[Job], request_id: str | None) -> None:
        """An alma of part of a lot whose answer was lost: the verme stays pending either way, so
        what is left of it tells. Left before = the delivery's quantity less what the ledger has
        done for that verme; left now = the pending list's ``ADT``. Less by what we sent: it took
        effect; unchanged: send again; anything else (someone else received from it meanwhile):
        a person looks."""
        assert self.uts is not None
        if request_id:  # the whole call, not only the units whose next check is due
            jobs = self.ledger.jobs(f"request_id = ? AND state = '{JobState.IN_DOUBT}'", (request_id,)) or jobs
        head = jobs[0]
        stored = self.ledger.request(request_id) if request_id else None
        body = json.loads(stored[3]) if stored else {}
        vbi, sent = str(body.get("VBI") or head.line), int(body.get("ADT") or len(jobs))
        if sent != len(jobs):
            for j in jobs:
                why = f"An alma of {sent} for {len(jobs)} unit(s) in doubt: check the ÜTS portal."
                self.ledger.give_up(j.event_id, "IN_DOUBT", why)
            return
        found = deliveries.get(self.ledger, head.delivery or "")
        quantity = next((line.quantity for line in found[0].lines if line.ref == vbi), None) if found else None
        done = self.ledger.query(
            f"SELECT count(*) FROM jobs WHERE line = ? AND state = '{JobState.DONE}' AND request_id <> ?",
            (vbi, request_id or ""),
        )[0][0]
        pending = self.uts.pending(site.counterpart or None, uts_uno(head))
        row = next((r for r in pending if str(r.get("BID")) == vbi), None)
        left_now = int(row.get("ADT") or 0) if row else 0
        before = None if quantity is None else quantity - int(done)
        if before is not None and left_now == before - sent:
            took, note = True, f"checked: the verme has {left_now} left, {sent} fewer than before the call"
        elif before is not None and row is not None and left_now == before:
            took, note = False, f"checked: the verme still has all {left_now} left"
        else:
            for j in jobs:
                self.ledger.give_up(
                    j.event_id,
                    "IN_DOUBT",
                    f"The lot's verme {vbi} has {left_now} left, which this alma of {sent} does not explain:"
                    " check the ÜTS portal, then retry or leave.",
                )
            return
        for j in jobs:
            self.ledger.resolved(j.event_id, took, note, 0.0, self.config.max_attempts)

    def _resolve_uts(self, site: Site, job: Job, request_id: str | None) -> None:
        assert self.uts is not None
        uno = uts_uno(job)
        stored = self.ledger.request(request_id) if request_id else None
        body = json.loads(stored[3]) if stored else {}
        held = self.uts.tekil_urun(uno, sno=job.serial) if job.serial else self.uts.tekil_urun(uno, lno=job.batch)
        if site.operation == "receipt":
            vbi = body.get("VBI")
            pending = self.uts.pending(site.counterpart or None, uno) if vbi else []
            still_pending = any(str(r.get("BID")) == vbi for r in pending)
            if not vbi or still_pending:
                if vbi:
                    self._index(site).forget(vbi)
                self.ledger.resolved(
                    job.event_id, False, "checked: the verme is still pending", 0.0, self.config.max_attempts
                )
            elif held:
                self.ledger.resolved(
                    job.event_id,
                    True,
                    "checked: the unit is in this institution's stock",
                    0.0,
                    self.config.max_attempts,
                )
            else:
                self.ledger.give_up(
                    job.event_id,
                    "IN_DOUBT",
                    "The verme is no longer pending but the unit is not in stock: check the ÜTS portal.",
                )
            return
        if not job.serial:
            self.ledger.give_up(
                job.event_id,
                "IN_DOUBT",
                "Lot quantities cannot be checked automatically: check the ÜTS portal, then retry or leave.",
            )
            return
        # verme and kullanım take the unit out of this institution's stock
        note = "checked: " + ("still in stock" if held else "no longer in stock")
        self.ledger.resolved(job.event_id, not held, note, 0.0, self.config.max_attempts)

    # -- an operator's cancel --

    def cancel(self, job: Job) -> tuple[bool, str]:
        """Cancel a unit's notification: ÜTS verme and kullanım by their BID, İTS dispatch (satış iptal).

        ÜTS has no alma cancel (the supplier cancels its verme instead). The request is recorded
        before it is sent, like every other call.
        """
        site = self.config.sites.get(job.site or "")
        site = acting(site, job) if site is not None else None
        if job.state != JobState.DONE or site is None:
            return False, f"only a notified unit can be cancelled (this one is {job.state})"
        call: Call
        if site.service is Service.UTS:
            if site.operation not in uts.CANCELS:
                return False, "ÜTS has no alma cancel: the supplier must cancel its verme"
            if not job.reference:
                return False, "the ÜTS notification id (BID) of this unit is not known"
            call = uts.cancel(site.operation, job.reference)
        elif site.operation is Operation.DISPATCH:
            call = its.dispatch_cancel([its_unit(job)])
        else:
            return False, f"cancelling an İTS {site.operation} is not supported here"
        request_id = self.ledger.prepare(site.service, site.name, call.path, call.body)
        try:
            if site.service is Service.UTS:
                assert self.uts is not None
                answer = self.uts.send(call)
                ok, message, raw = answer.ok, answer.text, answer.raw
            else:
                assert self.its is not None
                its_answer = self.its.notify(call)
                uc = str(its_answer.units[0].get("uc", "")) if its_answer.units else ""
                ok, message, raw = uc == its.SUCCESS, f"{uc} {self.its.message(uc)}", its_answer.raw
        except ServiceError as e:
            self.ledger.in_doubt(request_id, str(e))
            return False, f"no definite answer ({e}); check before trying again"
        self.ledger.cancelled(job.event_id, request_id, raw, ok, message)
        return ok, message

    # -- results back to the stations --

    def publish_results(self) -> None:
        """Results not yet acked by their station: new ones, and ones sent ``RESULT_RESEND_SECONDS``
        ago without an ack (or sent again at once when the station comes back online)."""
        assert self.publish is not None
        jobs = self.ledger.take_results(RESULT_RESEND_SECONDS)
        if jobs:
            sent = set(self.publish(jobs))
            again_at = time.time() - RESULT_RESEND_SECONDS + UNSENT_RETRY_SECONDS
            self.ledger.results_unsent((j.event_id for j in jobs if j.event_id not in sent), again_at)
