"""ÜTS (Ürün Takip Sistemi, medical devices) web services: REST, POST only, ``utsToken`` header, and
the ``{SNC, MSJ}`` envelope whose messages are BILGI, UYARI or HATA. Field names are ÜTS's own
three-letter codes (UNO product, SNO serial, LNO lot, VBI the verme being accepted, ...).

Reference: shared/reference/uts-its-api.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from station.central.services.http import Http, InDoubt

REST = "/UTS/uh/rest"


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

    def call(self, path: str, body: dict[str, Any]) -> UtsAnswer:
        status, parsed, raw = self.http.post(f"{REST}/{path}", body, {"utsToken": self._token})
        if not isinstance(parsed, dict) or ("MSJ" not in parsed and "SNC" not in parsed):
            raise InDoubt(f"ÜTS {path}: HTTP {status} without the SNC/MSJ envelope")
        return UtsAnswer(parsed.get("SNC"), list(parsed.get("MSJ") or []), raw)

    # -- receipt (alma) --

    def pending(self, gkk: str | None = None, uno: str | None = None, page: int = 500) -> list[dict[str, Any]]:
        """Every verme addressed to this institution and not yet accepted, all pages (``OFF`` cursor)."""
        rows: list[dict[str, Any]] = []
        offset: str | None = None
        while True:
            body: dict[str, Any] = {"ADT": page}
            if gkk:
                body["GKK"] = int(gkk)
            if uno:
                body["UNO"] = uno
            if offset:
                body["OFF"] = offset
            answer = self.call("bildirim/alma/bekleyenler/sorgula/offset", body)
            snc = answer.snc or {}
            batch = list(snc.get("LST") or [])
            rows += batch
            offset = snc.get("OFF")
            if not batch or not offset or len(batch) < page:
                return rows

    def alma(self, vbi: str, adt: int | None = None) -> UtsAnswer:
        body: dict[str, Any] = {"VBI": vbi}
        if adt is not None:
            body["ADT"] = adt  # lot-tracked only; never with a serial
        return self.call("bildirim/alma/ekle", body)

    # -- dispatch (verme) --

    def verme(
        self,
        uno: str,
        kun: str,
        bno: str,
        sno: str | None = None,
        lno: str | None = None,
        adt: int | None = None,
        git: str | None = None,
    ) -> UtsAnswer:
        body: dict[str, Any] = {"UNO": uno, "KUN": int(kun), "BNO": bno}
        if sno:
            body["SNO"] = sno
        if lno:
            body["LNO"] = lno
        if not sno and adt:
            body["ADT"] = adt
        if git:
            body["GIT"] = git
        return self.call("bildirim/verme/ekle", body)

    def verme_iptal(self, bid: str) -> UtsAnswer:
        return self.call("bildirim/verme/iptal", {"BID": bid})

    # -- use on a patient (kullanım) --

    def kullanim(
        self,
        uno: str,
        git: str,
        tur: str,
        sno: str | None = None,
        lno: str | None = None,
        adt: int | None = None,
        **identity: Any,
    ) -> UtsAnswer:
        body: dict[str, Any] = {"UNO": uno, "GIT": git, "TUR": tur, **identity}
        if sno:
            body["SNO"] = sno
        if lno:
            body["LNO"] = lno
        if not sno:
            body["ADT"] = adt or 1
        return self.call("bildirim/kullanim/ekle", body)

    def kullanim_iptal(self, bid: str) -> UtsAnswer:
        return self.call("bildirim/kullanim/iptal", {"BID": bid})

    # -- queries --

    def tekil_urun(self, uno: str, lno: str | None = None, sno: str | None = None) -> list[dict[str, Any]]:
        """Units of this product the institution holds."""
        body: dict[str, Any] = {"UNO": uno}
        if lno:
            body["LNO"] = lno
        if sno:
            body["SNO"] = sno
        return list(self.call("tekilUrun/sorgula", body).snc or [])
