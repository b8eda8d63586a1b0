"""İTS (İlaç Takip Sistemi, medicines) REST services on its2: a token call, then ``Authorization:
Bearer``; a new token when a call answers 401. Units travel in ``productList`` and come back one by
one with a 5-digit ``uc`` (``00000`` = success).

Reference: shared/reference/uts-its-api.md §3.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from station.central.services.http import AuthFailed, Http, InDoubt

SUCCESS = "00000"


@dataclass(frozen=True)
class ItsAnswer:
    notification_id: str
    units: list[dict[str, Any]]
    """Each ``{gtin, sn, uc}``."""
    raw: str


def product(gtin: str, sn: str, bn: str | None = None, xd: str | None = None) -> dict[str, str]:
    """A ``productList`` item: GTIN as 14 digits, serial and batch exactly as printed, expiry YYYY-MM-DD."""
    item = {"gtin": gtin.zfill(14), "sn": sn}
    if bn:
        item["bn"] = bn
    if xd:
        item["xd"] = xd
    return item


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
            status, body, _ = self.http.post(
                "/token/app/token/", {"username": self._username, "password": self._password}, {}
            )
            token = body.get("token") if isinstance(body, dict) else None
            if not token:
                raise AuthFailed(f"İTS token call answered HTTP {status} without a token")
            self._token = str(token)
            return self._token

    def call(self, path: str, body: dict[str, Any]) -> tuple[Any, str]:
        token = self._token or self._login()
        try:
            _, parsed, raw = self.http.post(path, body, {"Authorization": f"Bearer {token}"})
        except AuthFailed:
            # An expired token is refused before anything is processed: log in again, send once more.
            token = self._login()
            _, parsed, raw = self.http.post(path, body, {"Authorization": f"Bearer {token}"})
        return parsed, raw

    def notify(self, path: str, body: dict[str, Any]) -> ItsAnswer:
        parsed, raw = self.call(path, body)
        if not isinstance(parsed, dict) or "productList" not in parsed:
            if isinstance(parsed, dict) and "fc" in parsed:
                code = str(parsed.get("fc"))
                units = [{**p, "uc": code} for p in body.get("productList", [])]
                return ItsAnswer("", units, raw)  # a fault for the whole call: every unit gets its code
            raise InDoubt(f"İTS {path}: answer without productList")
        nid = parsed.get("notificationId") or parsed.get("notificationid") or parsed.get("notification_id") or ""
        return ItsAnswer(str(nid), list(parsed["productList"]), raw)

    def accept(self, products: list[dict[str, str]]) -> ItsAnswer:
        """Mal alım."""
        return self.notify("/common/app/accept/", {"productList": products})

    def dispatch(self, togln: str, products: list[dict[str, str]]) -> ItsAnswer:
        """Satış from a depot to a buyer."""
        return self.notify("/wholesale/app/dispatch/", {"togln": togln, "productList": products})

    def dispatch_cancel(self, products: list[dict[str, str]]) -> ItsAnswer:
        return self.notify("/wholesale/app/dispatchcancel/", {"productList": products})

    def return_(self, togln: str, products: list[dict[str, str]]) -> ItsAnswer:
        """Mal iade to the supplier."""
        return self.notify("/common/app/return/", {"togln": togln, "productList": products})

    def deactivation(
        self,
        fr_gln: str,
        ds: str,
        products: list[dict[str, str]],
        document_date: str,
        document_number: str = "",
        description: str = "",
    ) -> ItsAnswer:
        body = {
            "dt": "D",
            "frGln": fr_gln,
            "ds": ds,
            "description": description,
            "document": {"dd": document_date, "dn": document_number},
            "productList": products,
        }
        return self.notify("/common/app/deactivation/", body)

    def consume(self, fr_gln: str, products: list[dict[str, str]]) -> ItsAnswer:
        """Hospital sarf (the REST body is not confirmed by two sources; see the reference §6)."""
        return self.notify("/consume/app/consume/", {"dt": "D", "fr": fr_gln, "productList": products})

    def check_status(self, products: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Who holds each unit (``gln1``, ``gln2``) and its state (``uc``). Restricted: use sparingly."""
        parsed, _ = self.call(
            "/reference/app/check_status/", {"productList": [{"gtin": p["gtin"], "sn": p["sn"]} for p in products]}
        )
        if not isinstance(parsed, dict):
            raise InDoubt("İTS check_status: unreadable answer")
        return list(parsed.get("responseObjectList") or [])

    def error_codes(self) -> dict[str, str]:
        """The service's code list, fetched once."""
        if self._codes is None:
            parsed, _ = self.call("/reference/app/errorcode/", {})
            items = parsed.get("errorCodeList", []) if isinstance(parsed, dict) else []
            self._codes = {str(i.get("code")): str(i.get("message", "")) for i in items}
            if self._on_codes is not None and self._codes:
                self._on_codes(self._codes)
        return self._codes

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
