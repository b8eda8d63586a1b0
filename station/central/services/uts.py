"""ÜTS (Ürün Takip Sistemi, medical devices) web services: REST, POST only, ``utsToken`` header, and
the ``{SNC, MSJ}`` envelope whose messages are BILGI, UYARI or HATA. Field names are ÜTS's own
three-letter codes (UNO product, SNO serial, LNO lot, VBI the verme being accepted, ...).

Reference: shared/reference/uts-its-api.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from station.central.services.http import Call, Http, InDoubt
from station.wire import Operation

REST = "/UTS/uh/rest"

# -- paths and bodies: the one place each call is written (client, notifier and sandbox use these) --

PENDING = "bildirim/alma/bekleyenler/sorgula/offset"
ALMA = "bildirim/alma/ekle"
ALMA_RED = "bildirim/alma/red"
"""Refusing a verme ("almak istemiyorum"); one source only (reference §2.4.1)."""
VERME = "bildirim/verme/ekle"
VERME_IPTAL = "bildirim/verme/iptal"
KULLANIM = "bildirim/kullanim/ekle"
KULLANIM_IPTAL = "bildirim/kullanim/iptal"
TEKIL_URUN = "tekilUrun/sorgula"
ESSIZ_KIMLIK = "/essizKimlik"
"""Each notification's variant that names the unit by its whole identifier (``UDI``) instead of
``UNO``/``LNO``/``SNO``: how HIBCC, ICCBBA and IFA units are sent (reference §2.4)."""

PATHS: dict[Operation, str] = {Operation.RECEIPT: ALMA, Operation.DISPATCH: VERME, Operation.USE: KULLANIM}
"""The notification each station operation makes (alma, verme, kullanım)."""
CANCELS: dict[Operation, str] = {Operation.DISPATCH: VERME_IPTAL, Operation.USE: KULLANIM_IPTAL}
"""ÜTS has no alma cancel: the supplier cancels its verme instead."""


def uno_key(uno: str) -> str:
    """ÜTS keeps GS1 product numbers as 14 digits (a GTIN-13 gets its leading zero); other
    agencies' device identifiers stay as they are."""
    return uno.zfill(14) if uno.isdigit() else uno


def _unit(body: dict[str, Any], sno: str | None, lno: str | None, adt: int | None) -> dict[str, Any]:
    """A serial unit is named by SNO alone; a lot-tracked one by LNO and a quantity (ADT)."""
    if sno:
        body["SNO"] = sno
        return body
    if lno:
        body["LNO"] = lno
    body["ADT"] = adt or 1
    return body


def pending(gkk: str | None = None, uno: str | None = None, offset: str | None = None, page: int = 500) -> Call:
    """The vermes addressed to this institution and not yet accepted (one page; ``OFF`` is the cursor)."""
    body: dict[str, Any] = {"ADT": page}
    if gkk:
        body["GKK"] = int(gkk)
    if uno:
        body["UNO"] = uno
    if offset:
        body["OFF"] = offset
    return Call(PENDING, body)


def alma(vbi: str | None, adt: int | None = None) -> Call:
    """Accept a pending verme by its id; ``ADT`` only for a lot-tracked unit (never with a serial).
    ``vbi`` None: the verme is not chosen yet (what a claim records before the pending list is read)."""
    body: dict[str, Any] = {"VBI": vbi}
    if adt is not None:
        body["ADT"] = adt
    return Call(ALMA, body)


def alma_red(vbi: str, adt: int | None, why: str) -> Call:
    """Refuse (what is left of) a verme: the units that did not come."""
    body: dict[str, Any] = {"VBI": vbi, "ACIKLAMA": why[:200]}
    if adt is not None:
        body["ADT"] = adt
    return Call(ALMA_RED, body)


def by_udi(call: Call, udi: str, serial: bool) -> Call:
    """The ``/essizKimlik`` form of a notification: ``UDI`` instead of ``UNO``/``LNO``/``SNO``, and
    ``ADT`` only for a unit without a serial."""
    body = {k: v for k, v in call.body.items() if k not in ("UNO", "LNO", "SNO", "ADT")}
    body["UDI"] = udi
    if not serial:
        body["ADT"] = call.body.get("ADT") or 1
    return Call(call.path + ESSIZ_KIMLIK, body)


def verme(
    uno: str, kun: str, bno: str, sno: str | None = None, lno: str | None = None, adt: int | None = None, git: str = ""
) -> Call:
    """Give units to institution ``kun`` under document (waybill) ``bno``."""
    body: dict[str, Any] = {"UNO": uno, "KUN": int(kun), "BNO": bno}
    if git:
        body["GIT"] = git
    return Call(VERME, _unit(body, sno, lno, adt))


def kullanim(
    uno: str,
    git: str,
    tur: str,
    sno: str | None = None,
    lno: str | None = None,
    adt: int | None = None,
    **identity: Any,
) -> Call:
    """Use on a patient: ``TUR`` and the identity fields the service asks for."""
    return Call(KULLANIM, _unit({"UNO": uno, "GIT": git, "TUR": tur, **identity}, sno, lno, adt))


def cancel(operation: Operation, bid: str) -> Call:
    return Call(CANCELS[operation], {"BID": bid})


def tekil_urun(uno: str, lno: str | None = None, sno: str | None = None) -> Call:
    """Units of this product the institution holds."""
    body: dict[str, Any] = {"UNO": uno}
    if lno:
        body["LNO"] = lno
    if sno:
        body["SNO"] = sno
    return Call(TEKIL_URUN, body)


@dataclass(frozen=True)
class UtsAnswer:
    """A definite ÜTS answer. ``ok`` unless a message is HATA."""

    snc: Any
    messages: list[dict[str, Any]] = field(default_factory=list)
    raw: str = ""

    @property
    def ok(self) -> bool:
        return not any(m.get("TIP") == "HATA" for m in self.messages)

    @property
    def code(self) -> str:
        errors = [m for m in self.messages if m.get("TIP") == "HATA"]
        return str(errors[0].get("KOD", "HATA")) if errors else ""

    @property
    def text(self) -> str:
        """The messages as ÜTS words them, parameters filled in."""
        out = []
        for m in self.messages:
            text = str(m.get("MET", ""))
            for i, p in enumerate(m.get("MPA") or []):
                text = text.replace("{" + str(i) + "}", str(p))
            out.append(f"{m.get('TIP', '')} {m.get('KOD', '')}: {text}".strip())
        return "; ".join(out)


class UtsClient:
    def __init__(self, base_url: str, token: str, timeout: float = 20.0) -> None:
        self.http = Http(base_url, timeout)
        self._token = token

    def send(self, call: Call) -> UtsAnswer:
        status, parsed, raw = self.http.post(f"{REST}/{call.path}", call.body, {"utsToken": self._token})
        if not isinstance(parsed, dict) or ("MSJ" not in parsed and "SNC" not in parsed):
            raise InDoubt(f"ÜTS {call.path}: HTTP {status} without the SNC/MSJ envelope")
        return UtsAnswer(parsed.get("SNC"), list(parsed.get("MSJ") or []), raw)

    def pending(self, gkk: str | None = None, uno: str | None = None, page: int = 500) -> list[dict[str, Any]]:
        """Every verme addressed to this institution and not yet accepted, all pages (``OFF`` cursor)."""
        rows: list[dict[str, Any]] = []
        offset: str | None = None
        while True:
            snc = self.send(pending(gkk, uno, offset, page)).snc or {}
            batch = list(snc.get("LST") or [])
            rows += batch
            offset = snc.get("OFF")
            if not batch or not offset or len(batch) < page:
                return rows

    def tekil_urun(self, uno: str, lno: str | None = None, sno: str | None = None) -> list[dict[str, Any]]:
        return list(self.send(tekil_urun(uno, lno, sno)).snc or [])
