"""Local stand-ins for ÜTS and İTS: the same paths, fields, envelopes and codes, with rules.

For tests, benchmarks, the README's demo, and integrators without a test-environment token. Not
the services themselves: behaviour follows shared/reference/uts-its-api.md where it is known.
Codes the reference does not give are marked "sandbox" in their message.

Rules: units belong to an institution (ÜTS kurum / İTS GLN); only the holder may dispatch, use or
deactivate; a receipt needs a verme (ÜTS) or a dispatch (İTS) addressed to the receiver; sold,
recalled, deactivated and unknown units are refused with their codes; a bad token answers 401.
``latency_ms`` delays every call, ``error_rate`` fails calls before they take effect (503), and
``lost_answer_rate`` lets a call take effect and then loses the answer (502): the case a
submitter must resolve by asking the service.

Admin: ``GET /_sandbox/effects`` lists every notification that took effect; ``GET /_sandbox/calls``
counts calls per path; ``POST /_sandbox/seed`` adds units, vermes and users; ``POST
/_sandbox/config`` changes latency and error rates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from station.central.services import its, pts, uts
from station.gs1.reader import Profile, read
from station.wire import Carrier, DeliveryLine

ITS_CODES = {
    "00000": "İşlem başarılı.",
    "10001": "Ürün sistemde bulunamadı. (sandbox)",
    "10204": "Ürün satılmış.",
    "10211": "İptal edilecek bildirim bulunamadı. (sandbox)",
    "40004": "Ürün tarafınızdan satılmıştır.",
    "60000": "Ürün deaktif.",
    "60002": "Ürün GLN1 üzerinde kayıtlı.",
    "60004": "Ürün eczane tarafından satılmış.",
    "60006": "Ürün sarf edilmiş.",
    "60007": "Ürün geri çekilmiş.",
    "60014": "Ürün üzerinize kayıtlıdır.",
    "20008": "Transfer bulunamadı. (sandbox)",
    "21012": "Bir paket en fazla 10 kez indirilebilir.",
}
PTS_FETCH_LIMIT = 10
STATE_CODES = {"deactivated": "60000", "recalled": "60007", "consumed": "60006", "sold": "10204"}
UTS_MESSAGES = {
    "UTS-H002": "Tekil ürün bulunamadı.",
    "UTS-H005": "Kurum sadece kendine ait bildirimleri iptal edebilir.",
    "UTS-H008": "Alınan adet, verme bildiriminde gönderilen adetten fazla olamaz.",
    "UTS-H011": "İlgili işlem için stokta yeteri kadar ürün bulunmamaktadır.",
    "UTS-H018": "Geri toplatılmış tekil ürün için bildirim yapılamaz.",
    "UTS-H022": "Adet sıfırdan büyük olmalıdır.",
    "UTS-H030": "Verme bildirimi bulunamadı veya size ait değil. (sandbox)",
    "UTS-H031": "Bu verme bildirimi daha önce alınmış. (sandbox)",
    "UTS-H040": "Eşsiz kimlik okunamadı. (sandbox)",
}


ITS_OPS = {
    its.ACCEPT: "accept",
    its.DISPATCH: "dispatch",
    its.DISPATCH_CANCEL: "dispatchcancel",
    its.RETURN: "return",
    its.DEACTIVATION: "deactivation",
    its.CONSUME: "consume",
}
"""The İTS paths that change a unit, by the sandbox's name for the effect."""


class Sandbox:
    """The services' state, shared by all request threads."""

    def __init__(
        self,
        latency_ms: float = 0,
        error_rate: float = 0.0,
        lost_answer_rate: float = 0.0,
        token_ttl: float = 3600.0,
        seed: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self.lost_answer_rate = lost_answer_rate
        self.token_ttl = token_ttl
        self.random = random.Random(seed)
        self.its_users: dict[str, dict[str, str]] = {}
        self.its_tokens: dict[str, tuple[str, float]] = {}
        self.its_units: dict[tuple[str, str], dict[str, Any]] = {}
        self.uts_tokens: dict[str, str] = {}
        self.uts_units: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.uts_vermes: dict[str, dict[str, Any]] = {}
        self.uts_notifications: dict[str, dict[str, Any]] = {}
        self.pts_packages: dict[str, dict[str, Any]] = {}
        """transfer id -> {to, from, date, file (base64 zip), fetched}."""
        self.effects: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()

    # -- seeding --

    def seed(self, data: dict[str, Any]) -> None:
        with self.lock:
            its = data.get("its", {})
            for u in its.get("users", []):
                self.its_users[str(u["username"])] = {"password": str(u["password"]), "gln": str(u["gln"])}
            for p in its.get("units", []):
                self.its_units[(str(p["gtin"]).zfill(14), str(p["sn"]))] = {
                    "owner": str(p["owner"]),
                    "from": str(p.get("from", "")),
                    "state": p.get("state", "active"),
                    "bn": p.get("bn"),
                    "xd": p.get("xd"),
                }
            for p in its.get("packages", []):
                self._seed_package(p)
            uts = data.get("uts", {})
            for i in uts.get("institutions", []):
                self.uts_tokens[str(i["token"])] = str(i["kurum"])
            for u in uts.get("units", []):
                self._uts_add_unit(
                    str(u["owner"]),
                    str(u["uno"]),
                    u.get("sno"),
                    u.get("lno"),
                    int(u.get("adt", 1)),
                    u.get("state", "stock"),
                )
            for v in uts.get("vermes", []):
                bid = str(v.get("bid") or uuid.uuid4())
                self.uts_vermes[bid] = {
                    "from": str(v["from"]),
                    "to": str(v["to"]),
                    "uno": str(v["uno"]),
                    "sno": v.get("sno"),
                    "lno": v.get("lno"),
                    "adt": int(v.get("adt", 1)),
                    "bno": v.get("bno", ""),
                    "state": "pending",
                    "recalled": v.get("recalled"),
                }

    def _seed_package(self, p: dict[str, Any]) -> None:
        """A PTS package addressed to a GLN: given as ``file`` (base64 zip, taken as it is, even
        when broken), or as ``sender``, ``receiver``, ``document``, ``carriers`` and ``lines``
        (built here; its units become dispatched from the sender to the receiver)."""
        transfer_id = str(p.get("transfer_id") or self.random.randrange(10**11, 10**12))
        if "file" in p:
            to, sender, zipped = str(p["to"]), str(p.get("from", "")), str(p["file"])
        else:
            package = pts.Package(
                sender=str(p["sender"]),
                receiver=str(p["receiver"]),
                document=str(p["document"]),
                document_date=p.get("date"),
                carriers=tuple(Carrier.from_dict(c) for c in p.get("carriers", [])),
                lines=tuple(DeliveryLine.from_dict(line) for line in p.get("lines", [])),
            )
            to, sender = package.receiver, package.sender
            zipped = base64.b64encode(pts.package_zip(package)).decode()
            for line in package.lines:
                for sn in line.serials:
                    unit = {"owner": to, "from": sender, "state": "active", "bn": line.batch, "xd": line.expiry}
                    self.its_units.setdefault((line.di, sn), unit)
        self.pts_packages[transfer_id] = {
            "to": to,
            "from": sender,
            "date": str(p.get("date") or time.strftime("%Y-%m-%d")),
            "file": zipped,
            "fetched": 0,
        }

    def _uts_add_unit(self, owner: str, uno: str, sno: str | None, lno: str | None, adt: int, state: str) -> None:
        key = (uno, sno or "", "" if sno else (lno or ""))
        unit = self.uts_units.setdefault(key, {"owner": owner, "lno": lno, "adt": 0, "state": state})
        unit.update(owner=owner, state=state)
        unit["adt"] = unit["adt"] + adt if not sno else 1

    def effect(self, service: str, op: str, by: str, **unit: Any) -> None:
        self.effects.append({"service": service, "op": op, "by": by, "at": time.time(), **unit})

    # -- İTS --

    def its_token(self, body: dict[str, Any]) -> tuple[int, Any]:
        user = self.its_users.get(str(body.get("username")))
        if not user or user["password"] != body.get("password"):
            return 401, {"fc": "401", "fm": "Kullanıcı adı veya şifre hatalı."}
        token = uuid.uuid4().hex
        self.its_tokens[token] = (user["gln"], time.time() + self.token_ttl)
        return 200, {"token": token}

    def its_caller(self, headers: Any) -> str | None:
        auth = headers.get("Authorization", "")
        entry = self.its_tokens.get(auth.removeprefix("Bearer ").strip())
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    def its(self, path: str, gln: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == its.PTS_SEARCH:
            start, end = str(body.get("startDate", "")), str(body.get("endDate", "9999"))
            found = [
                {"transferId": int(t) if t.isdigit() else t, "sourceGln": p["from"], "transferDate": p["date"]}
                for t, p in self.pts_packages.items()
                if p["to"] == str(body.get("destinationGln")) == gln and start <= p["date"] <= end
            ]
            return 200, {"transferDetails": found}
        if path == its.PTS_GET:
            p = self.pts_packages.get(str(body.get("transferId")))
            if p is None or gln not in (p["to"], p["from"]):
                return 200, {"fc": "20008", "fm": ITS_CODES["20008"]}
            if p["fetched"] >= PTS_FETCH_LIMIT:
                return 200, {"fc": "21012", "fm": ITS_CODES["21012"]}
            p["fetched"] += 1
            return 200, {"fileStream": p["file"], "streamMD5checksum": hashlib.md5(p["file"].encode()).hexdigest()}
        if path == its.PTS_SEND:
            try:
                data = pts.decode_file_stream(body.get("file"))
                package = pts.read_package(data)
            except pts.PackageError as e:
                return 200, {"fc": "20007", "fm": f"Dosya formatı desteklenmiyor: {e.reason} (sandbox)"}
            if package.sender != gln:
                return 200, {"fc": "20001", "fm": "Kaynak GLN geçersiz."}
            transfer_id = str(self.random.randrange(10**11, 10**12))
            self.pts_packages[transfer_id] = {
                "to": str(body.get("receiver")),
                "from": gln,
                "date": time.strftime("%Y-%m-%d"),
                "file": str(body.get("file")),
                "fetched": 0,
            }
            self.effect("its", "pts_send", gln, transfer=transfer_id, to=str(body.get("receiver")), units=package.units)
            return 200, {"transferId": int(transfer_id)}
        if path == its.ERROR_CODES:
            return 200, {"errorCodeList": [{"code": c, "message": m} for c, m in ITS_CODES.items()]}
        if path == its.CHECK_STATUS:
            out = []
            for gtin, sn in its.units_of(body):
                u = self.its_units.get((gtin, sn))
                if u is None:
                    out.append({"gtin": gtin, "sn": sn, "uc": "10001", "gln1": "", "gln2": ""})
                else:
                    uc = STATE_CODES.get(u["state"], "60014" if u["owner"] == gln and not u["from"] else "60002")
                    out.append({"gtin": gtin, "sn": sn, "uc": uc, "gln1": u["owner"], "gln2": u["from"]})
            return 200, {"responseObjectList": out}
        op = ITS_OPS.get(path)
        if op is None:
            return 404, {"fc": "404", "fm": f"Bilinmeyen servis {path}"}
        togln = str(body.get("togln", ""))
        if op in ("dispatch", "return") and not togln:
            return 400, {"fc": "20001", "fm": "togln eksik."}
        results = []
        for gtin, sn in its.units_of(body):
            uc = self._its_unit(op, gln, togln, gtin, sn)
            if uc == "00000":
                self.effect("its", op, gln, gtin=gtin, sn=sn, togln=togln or None)
            results.append({"gtin": gtin, "sn": sn, "uc": uc})
        return 200, {"notificationId": uuid.uuid4().hex[:16], "productList": results}

    def _its_unit(self, op: str, gln: str, togln: str, gtin: str, sn: str) -> str:
        u = self.its_units.get((gtin, sn))
        if u is None:
            return "10001"
        if op == "dispatchcancel":
            if u["from"] == gln and u["state"] == "active":
                u["owner"], u["from"] = gln, ""
                return "00000"
            return "10211"
        if u["state"] in STATE_CODES:
            return STATE_CODES[u["state"]]
        if op == "accept":
            if u["owner"] == gln:
                if u["from"]:
                    u["from"] = ""
                    return "00000"
                return "60014"
            return "60002"
        if u["owner"] == togln and u["from"] == gln:
            return "40004"  # already sold (returned) to this buyer by you
        if u["owner"] != gln or u["from"]:
            return "60002"
        if op in ("dispatch", "return"):
            u["owner"], u["from"] = togln, gln
        elif op == "deactivation":
            u["state"] = "deactivated"
        elif op == "consume":
            u["state"] = "consumed"
        return "00000"

    # -- ÜTS --

    def uts(self, path: str, kurum: str, body: dict[str, Any]) -> tuple[int, Any]:
        route = path.removeprefix(uts.REST + "/")
        if route.endswith(uts.ESSIZ_KIMLIK):  # the unit named by its whole identifier: read it as ÜTS would
            route = route.removesuffix(uts.ESSIZ_KIMLIK)
            reading = read(str(body.get("UDI", "")), Profile.UTS)
            k = reading.karekod
            if k is None or k.di is None or (k.serial is None and k.batch is None):
                return 200, {"SNC": None, "MSJ": [{"TIP": "HATA", "KOD": "UTS-H040", "MET": UTS_MESSAGES["UTS-H040"]}]}
            unit = {"UNO": k.di.zfill(14) if k.di.isdigit() else k.di, "SNO": k.serial}
            if not k.serial:
                unit["LNO"] = k.batch
            body = {**{key: v for key, v in body.items() if key != "UDI"}, **unit}
        if route == uts.PENDING:
            rows = [
                {
                    "GKK": int(v["from"]),
                    "UNO": v["uno"],
                    "LNO": v["lno"],
                    "SNO": v["sno"],
                    "ADT": v["adt"] - v.get("taken", 0),
                    "BID": bid,
                    "BNO": v["bno"],
                    "BTI": "VERME",
                    "GKU": f"Kurum {v['from']}",
                }
                for bid, v in self.uts_vermes.items()
                if v["to"] == kurum
                and v["state"] == "pending"
                and (not body.get("GKK") or str(body["GKK"]) == v["from"])
                and (not body.get("UNO") or body["UNO"] == v["uno"])
                and (not body.get("BNO") or body["BNO"] == v["bno"])
            ]
            start = int(body.get("OFF") or 0)
            size = int(body.get("ADT") or 100)
            page = rows[start : start + size]
            more = start + size < len(rows)
            return 200, {"SNC": {"LST": page, "OFF": str(start + size) if more else None}, "MSJ": []}
        if route == uts.TEKIL_URUN:
            out = [
                {"UTP": "TIBBI_CIHAZ", "UNO": uno, "SNO": sno or None, "LNO": u["lno"], "ADT": u["adt"]}
                for (uno, sno, _lot), u in self.uts_units.items()
                if u["owner"] == kurum
                and u["state"] == "stock"
                and u["adt"] > 0
                and uno == body.get("UNO")
                and (not body.get("SNO") or body["SNO"] == sno)
                and (not body.get("LNO") or body["LNO"] == u["lno"])
            ]
            return 200, {"SNC": out, "MSJ": []}
        handler = {
            uts.ALMA: self._alma,
            uts.ALMA_RED: self._alma_red,
            uts.VERME: self._verme,
            uts.VERME_IPTAL: self._verme_iptal,
            uts.KULLANIM: self._kullanim,
            uts.KULLANIM_IPTAL: self._kullanim_iptal,
        }.get(route)
        if handler is None:
            return 404, {"SNC": None, "MSJ": [{"TIP": "HATA", "KOD": "404", "MET": f"Bilinmeyen servis {route}"}]}
        code, snc = handler(kurum, body)
        if code:
            return 200, {"SNC": None, "MSJ": [{"TIP": "HATA", "KOD": code, "MET": UTS_MESSAGES[code], "MPA": []}]}
        ok = {"TIP": "BILGI", "KOD": "UTS-B001", "MET": "Bildirim başarıyla alındı. ({0})", "MPA": [snc]}
        return 200, {"SNC": snc, "MSJ": [ok]}

    def _unit(self, uno: str, sno: str | None, lno: str | None) -> dict[str, Any] | None:
        return self.uts_units.get((uno, sno or "", "" if sno else (lno or "")))

    def _verme_for(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """The verme an alma (or its refusal) takes: by ``VBI``, or by product as the reference
        documents it (``GKK``, ``UNO``, ``SNO`` or ``LNO``)."""
        if body.get("VBI"):
            v = self.uts_vermes.get(str(body["VBI"]))
        else:
            v = next(
                (
                    v
                    for v in self.uts_vermes.values()
                    if v["to"] == kurum
                    and v["state"] == "pending"
                    and str(v["from"]) == str(body.get("GKK"))
                    and v["uno"] == body.get("UNO")
                    and (v["sno"] == body["SNO"] if body.get("SNO") else v["lno"] == body.get("LNO"))
                ),
                None,
            )
        if v is None or v["to"] != kurum or v["state"] in ("cancelled", "refused"):
            return "UTS-H030", None
        if v["state"] == "accepted":
            return "UTS-H031", None
        return None, v

    def _alma(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, Any]:
        """Take a verme in: a serial unit whole; a lot for ``ADT`` of what is left (partial
        receipts leave the rest pending), never more (UTS-H008)."""
        code, v = self._verme_for(kurum, body)
        if code or v is None:
            return code, None
        if v.get("recalled"):
            return "UTS-H018", None
        left = v["adt"] - v.get("taken", 0)
        adt = 1 if v["sno"] else int(body.get("ADT") or left)
        if adt <= 0:
            return "UTS-H022", None
        if adt > left:
            return "UTS-H008", None
        v["taken"] = v.get("taken", 0) + adt
        if v["taken"] >= v["adt"]:
            v["state"] = "accepted"
        self._uts_add_unit(kurum, v["uno"], v["sno"], v["lno"], adt, "stock")
        self.effect("uts", "alma", kurum, uno=v["uno"], sno=v["sno"], lno=v["lno"], vbi=body.get("VBI"), adt=adt)
        return None, str(uuid.uuid4())

    def _alma_red(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, Any]:
        """ "Almak istemiyorum": the receiver refuses what is left of a verme."""
        code, v = self._verme_for(kurum, body)
        if code or v is None:
            return code, None
        v["state"] = "refused"
        self.effect("uts", "alma_red", kurum, uno=v["uno"], sno=v["sno"], lno=v["lno"], vbi=body.get("VBI"))
        return None, str(uuid.uuid4())

    def _take(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        u = self._unit(str(body.get("UNO")), body.get("SNO"), body.get("LNO"))
        if u is None or u["owner"] != kurum:
            return "UTS-H002", None
        if u["state"] == "recalled":
            return "UTS-H018", None
        need = 1 if body.get("SNO") else int(body.get("ADT") or 1)
        if u["state"] != "stock" or u["adt"] < need:
            return "UTS-H011", None
        return None, u

    def _verme(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, Any]:
        code, u = self._take(kurum, body)
        if code or u is None:
            return code, None
        bid = str(uuid.uuid4())
        adt = 1 if body.get("SNO") else int(body.get("ADT") or 1)
        if body.get("SNO"):
            u["state"] = "askida"
        else:
            u["adt"] -= adt
        self.uts_vermes[bid] = {
            "from": kurum,
            "to": str(body.get("KUN")),
            "uno": body["UNO"],
            "sno": body.get("SNO"),
            "lno": body.get("LNO"),
            "adt": adt,
            "bno": body.get("BNO", ""),
            "state": "pending",
        }
        self.effect(
            "uts", "verme", kurum, uno=body["UNO"], sno=body.get("SNO"), lno=body.get("LNO"), kun=str(body.get("KUN"))
        )
        return None, bid

    def _verme_iptal(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, Any]:
        v = self.uts_vermes.get(str(body.get("BID")))
        if v is None or v["from"] != kurum or v["state"] != "pending":
            return "UTS-H005", None
        v["state"] = "cancelled"
        u = self._unit(v["uno"], v["sno"], v["lno"])
        if u is not None:
            if v["sno"]:
                u["state"] = "stock"
            else:
                u["adt"] += v["adt"]
        self.effect("uts", "verme_iptal", kurum, uno=v["uno"], sno=v["sno"], lno=v["lno"])
        return None, body.get("BID")

    def _kullanim(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, Any]:
        code, u = self._take(kurum, body)
        if code or u is None:
            return code, None
        bid = str(uuid.uuid4())
        if body.get("SNO"):
            u["state"] = "used"
        else:
            u["adt"] -= int(body.get("ADT") or 1)
        self.uts_notifications[bid] = {
            "kurum": kurum,
            "uno": body["UNO"],
            "sno": body.get("SNO"),
            "lno": body.get("LNO"),
            "adt": int(body.get("ADT") or 1),
        }
        self.effect("uts", "kullanim", kurum, uno=body["UNO"], sno=body.get("SNO"), lno=body.get("LNO"))
        return None, bid

    def _kullanim_iptal(self, kurum: str, body: dict[str, Any]) -> tuple[str | None, Any]:
        n = self.uts_notifications.pop(str(body.get("BID")), None)
        if n is None or n["kurum"] != kurum:
            return "UTS-H005", None
        u = self._unit(n["uno"], n["sno"], n["lno"])
        if u is not None:
            if n["sno"]:
                u["state"] = "stock"
            else:
                u["adt"] += n["adt"]
        self.effect("uts", "kullanim_iptal", kurum, uno=n["uno"], sno=n["sno"], lno=n["lno"])
        return None, body.get("BID")

    # -- HTTP --

    def handle(self, path: str, headers: Any, body: dict[str, Any]) -> tuple[int, Any]:
        """One call: latency, injected failures, authentication, then the service's rule."""
        if path.startswith("/_sandbox/"):
            return self.admin(path, body)
        with self.lock:
            self.calls[path] += 1
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        with self.lock:
            if self.error_rate and self.random.random() < self.error_rate:
                return 503, {"fc": "503", "fm": "Servis geçici olarak kullanılamıyor. (sandbox)"}
            if path.startswith(uts.REST + "/"):
                kurum = self.uts_tokens.get(headers.get("utsToken", ""))
                if kurum is None:
                    return 401, {"SNC": None, "MSJ": [{"TIP": "HATA", "KOD": "401", "MET": "Geçersiz token."}]}
                status, answer = self.uts(path, kurum, body)
            elif path.rstrip("/") == its.TOKEN.rstrip("/"):
                return self.its_token(body)
            else:
                gln = self.its_caller(headers)
                if gln is None:
                    return 401, {"fc": "401", "fm": "Yetkisiz erişim."}
                status, answer = self.its(path.rstrip("/") + "/", gln, body)
            if self.lost_answer_rate and self.random.random() < self.lost_answer_rate:
                return 502, None  # it happened; the answer is lost on the way back
            return status, answer

    def admin(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            if path == "/_sandbox/effects":
                return 200, {"effects": self.effects}
            if path == "/_sandbox/calls":
                return 200, {"calls": dict(self.calls)}
            if path == "/_sandbox/seed":
                self.seed(body)
                return 200, {"ok": True}
            if path == "/_sandbox/config":
                for key in ("latency_ms", "error_rate", "lost_answer_rate", "token_ttl"):
                    if key in body:
                        setattr(self, key, float(body[key]))
                return 200, {"ok": True}
        return 404, {"error": "unknown"}


def make_server(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = None
            if not isinstance(body, dict):
                status, answer = 400, {"fc": "400", "fm": "JSON bekleniyor."}
            else:
                status, answer = sandbox.handle(self.path, self.headers, body)
            data = b"<html>Bad Gateway</html>" if answer is None else json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if answer is None else "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = _serve
        do_GET = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
