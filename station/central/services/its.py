"""İTS (İlaç Takip Sistemi, medicines) REST services on its2: a token call, then ``Authorization:
Bearer``; a new token when a call answers 401. Units travel in ``productList`` and come back one by
one with a 5-digit ``uc`` (``00000`` = success).

Reference: shared/reference/uts-its-api.md §3.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from station.central.services.http import AuthFailed, Call, Http, InDoubt, ServiceError
from station.wire import Operation

SUCCESS = "00000"

# -- paths and bodies: the one place each call is written (client, notifier and sandbox use these) --

TOKEN = "/token/app/token/"
ACCEPT = "/common/app/accept/"
DISPATCH = "/wholesale/app/dispatch/"
DISPATCH_CANCEL = "/wholesale/app/dispatchcancel/"
RETURN = "/common/app/return/"
DEACTIVATION = "/common/app/deactivation/"
CONSUME = "/consume/app/consume/"
CHECK_STATUS = "/reference/app/check_status/"
ERROR_CODES = "/reference/app/errorcode/"
PTS_SEARCH = "/pts/app/search/"
PTS_GET = "/pts/app/GetPackage/"
PTS_SEND = "/pts/app/SendPackage/"

PATHS: dict[Operation, str] = {
    Operation.RECEIPT: ACCEPT,
    Operation.DISPATCH: DISPATCH,
    Operation.RETURN: RETURN,
    Operation.DEACTIVATION: DEACTIVATION,
    Operation.USE: CONSUME,
}
"""The notification each station operation makes (mal alım, satış, iade, deaktivasyon, sarf)."""
CHANGES = {**{path: op.value for op, path in PATHS.items()}, DISPATCH_CANCEL: "dispatch_cancel"}
"""Every path that changes a unit's state, by what it does."""


@dataclass(frozen=True)
class Unit:
    gtin: str
    serial: str
    batch: str | None = None
    expiry: str | None = None
    """YYYY-MM-DD."""

    @property
    def key(self) -> tuple[str, str]:
        return self.gtin.zfill(14), self.serial


def product(gtin: str, sn: str, bn: str | None = None, xd: str | None = None) -> dict[str, str]:
    """A ``productList`` item: GTIN as 14 digits, serial and batch exactly as printed, expiry YYYY-MM-DD."""
    item = {"gtin": gtin.zfill(14), "sn": sn}
    if bn:
        item["bn"] = bn
    if xd:
        item["xd"] = xd
    return item


def products(units: Sequence[Unit]) -> list[dict[str, str]]:
    return [product(u.gtin, u.serial, u.batch, u.expiry) for u in units]


def units_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(GTIN as 14 digits, serial) of each ``productList`` item of a body: the sandbox reads requests with it."""
    items = body.get("productList") or []
    return [(str(p.get("gtin", "")).zfill(14), str(p.get("sn", ""))) for p in items if isinstance(p, dict)]


def token(username: str, password: str) -> Call:
    return Call(TOKEN, {"username": username, "password": password})


def notification(
    operation: Operation,
    units: Sequence[Unit],
    *,
    institution: str,
    counterpart: str = "",
    deactivation_reason: str = "",
    document_number: str = "",
    document_date: str = "",
    description: str = "",
) -> Call:
    """The İTS notification for ``operation`` of ``units`` by ``institution`` (its GLN).

    Dispatch and return go to ``counterpart`` (``togln``); deactivation carries its reason
    (``ds``) and document; sarf (use) names the institution (the REST body of sarf is not
    confirmed by two sources).
    """
    items = products(units)
    if operation in (Operation.DISPATCH, Operation.RETURN):
        return Call(PATHS[operation], {"togln": counterpart, "productList": items})
    if operation is Operation.DEACTIVATION:
        body = {
            "dt": "D",
            "frGln": institution,
            "ds": deactivation_reason,
            "description": description,
            "document": {"dd": document_date, "dn": document_number},
            "productList": items,
        }
        return Call(PATHS[operation], body)
    if operation is Operation.USE:
        return Call(PATHS[operation], {"dt": "D", "fr": institution, "productList": items})
    return Call(PATHS[operation], {"productList": items})


def dispatch_cancel(units: Sequence[Unit]) -> Call:
    """Satış iptal."""
    return Call(DISPATCH_CANCEL, {"productList": products(units)})


def check_status(units: Sequence[Unit]) -> Call:
    return Call(CHECK_STATUS, {"productList": [{"gtin": u.gtin.zfill(14), "sn": u.serial} for u in units]})


def error_codes() -> Call:
    return Call(ERROR_CODES, {})


def pts_search(receiver: str, start: str, end: str, sender: str = "") -> Call:
    """PTS packages sent to ``receiver`` (a GLN) between two dates (YYYY-MM-DD), received or not."""
    body = {"sourceGln": sender, "destinationGln": receiver, "bringNotReceivedTransferInfo": 0}
    return Call(PTS_SEARCH, {**body, "startDate": start, "endDate": end})


def pts_get(transfer_id: str) -> Call:
    """One PTS package: ``fileStream``, a base64 zip."""
    return Call(PTS_GET, {"transferId": int(transfer_id) if transfer_id.isdigit() else transfer_id})


def pts_send(receiver: str, zipped: bytes) -> Call:
    return Call(PTS_SEND, {"receiver": receiver, "file": base64.b64encode(zipped).decode()})


def unit_codes(answer: ItsAnswer) -> dict[tuple[str, str], str]:
    """Each unit's ``uc`` in an answer, by (GTIN as 14 digits, serial)."""
    return {(str(u.get("gtin", "")).zfill(14), str(u.get("sn", ""))): str(u.get("uc", "")) for u in answer.units}


@dataclass(frozen=True)
class ItsAnswer:
    notification_id: str
    units: list[dict[str, Any]]
    """Each ``{gtin, sn, uc}``."""
    raw: str


class ItsClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        timeout: float = 20.0,
        codes: dict[str, str] | None = None,
        on_codes: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self.http = Http(base_url, timeout)
        self._username = username
        self._password = password
        self._token: str | None = None
        self._lock = threading.Lock()
        self._codes = codes or None
        self._on_codes = on_codes
        """Called once with the fetched list, so it can be kept (the submitter keeps it in its ledger)."""

    def _login(self) -> str:
        with self._lock:
            call = token(self._username, self._password)
            status, body, _ = self.http.post(call.path, call.body, {})
            got = body.get("token") if isinstance(body, dict) else None
            if not got:
                raise AuthFailed(f"İTS token call answered HTTP {status} without a token")
            self._token = str(got)
            return self._token

    def call(self, call: Call) -> tuple[Any, str]:
        token_ = self._token or self._login()
        try:
            _, parsed, raw = self.http.post(call.path, call.body, {"Authorization": f"Bearer {token_}"})
        except AuthFailed:
            # An expired token is refused before anything is processed: log in again, send once more.
            token_ = self._login()
            _, parsed, raw = self.http.post(call.path, call.body, {"Authorization": f"Bearer {token_}"})
        return parsed, raw

    def notify(self, call: Call) -> ItsAnswer:
        """Send a notification; each unit comes back with its ``uc``."""
        parsed, raw = self.call(call)
        if not isinstance(parsed, dict) or "productList" not in parsed:
            if isinstance(parsed, dict) and "fc" in parsed:
                code = str(parsed.get("fc"))
                units = [{**p, "uc": code} for p in call.body.get("productList", [])]
                return ItsAnswer("", units, raw)  # a fault for the whole call: every unit gets its code
            raise InDoubt(f"İTS {call.path}: answer without productList")
        nid = parsed.get("notificationId") or parsed.get("notificationid") or parsed.get("notification_id") or ""
        return ItsAnswer(str(nid), list(parsed["productList"]), raw)

    def check_status(self, units: Sequence[Unit]) -> list[dict[str, Any]]:
        """Who holds each unit (``gln1``, ``gln2``) and its state (``uc``). Restricted: use sparingly."""
        parsed, _ = self.call(check_status(units))
        if not isinstance(parsed, dict):
            raise InDoubt("İTS check_status: unreadable answer")
        return list(parsed.get("responseObjectList") or [])

    def error_codes(self) -> dict[str, str]:
        """The service's code list, fetched once."""
        if self._codes is None:
            parsed, _ = self.call(error_codes())
            items = parsed.get("errorCodeList", []) if isinstance(parsed, dict) else []
            self._codes = {str(i.get("code")): str(i.get("message", "")) for i in items}
            if self._on_codes is not None and self._codes:
                self._on_codes(self._codes)
        return self._codes

    def pts_search(self, receiver: str, start: str, end: str) -> list[str]:
        """Transfer ids of the PTS packages addressed to ``receiver`` in a date range."""
        parsed, _ = self.call(pts_search(receiver, start, end))
        if not isinstance(parsed, dict):
            raise ServiceError("İTS PTS search: unreadable answer")
        details = parsed.get("transferDetails") or []
        return [str(d["transferId"]) for d in details if isinstance(d, dict) and d.get("transferId") is not None]

    def pts_package(self, transfer_id: str) -> str:
        """A package's ``fileStream`` (base64 zip; read it with station.central.services.pts)."""
        parsed, _ = self.call(pts_get(transfer_id))
        if not isinstance(parsed, dict) or "fileStream" not in parsed:
            fault = parsed.get("fm") or parsed.get("message") if isinstance(parsed, dict) else None
            raise ServiceError(f"İTS PTS package {transfer_id}: {fault or 'answer without fileStream'}")
        return str(parsed["fileStream"])

    def message(self, uc: str, gln1: str = "", gln2: str = "") -> str:
        try:
            text = self.error_codes().get(uc, "")
        except Exception:
            text = ""
        return (
            (text or ("İşlem başarılı" if uc == SUCCESS else f"İTS code {uc}"))
            .replace("GLN1", gln1 or "GLN1")
            .replace("GLN2", gln2 or "GLN2")
        )
