"""The console's words in Turkish and English: one table, one key per text.

A key missing from a language falls back to English, then to the key itself, so a page never
breaks on a missing word (``tests/test_web.py`` checks both languages have every key).
"""

from __future__ import annotations

LANGUAGES = ("tr", "en")

TEXTS: dict[str, dict[str, str]] = {
    "title": {"tr": "Karekod İstasyon Konsolu", "en": "Karekod Station console"},
    "stations": {"tr": "İstasyonlar", "en": "Stations"},
    "station": {"tr": "İstasyon", "en": "Station"},
    "deliveries": {"tr": "Teslimatlar", "en": "Deliveries"},
    "delivery": {"tr": "Teslimat", "en": "Delivery"},
    "orders": {"tr": "Siparişler", "en": "Orders"},
    "order": {"tr": "Sipariş", "en": "Order"},
    "problems": {"tr": "Bakılması gerekenler", "en": "Needs a person"},
    "lookup": {"tr": "Ürün sorgula", "en": "Unit lookup"},
    "audit": {"tr": "İşlem kaydı", "en": "Audit"},
    "login": {"tr": "Giriş", "en": "Log in"},
    "logout": {"tr": "Çıkış", "en": "Log out"},
    "logged_in_as": {"tr": "Operatör", "en": "Operator"},
    "read_only": {"tr": "Salt okunur: işlem için giriş yapın", "en": "Read-only: log in to act"},
    "name": {"tr": "Kullanıcı adı", "en": "Name"},
    "password": {"tr": "Parola", "en": "Password"},
    "bad_login": {"tr": "Kullanıcı adı veya parola yanlış.", "en": "Wrong name or password."},
    "online": {"tr": "çevrimiçi", "en": "online"},
    "offline": {"tr": "çevrimdışı", "en": "offline"},
    "stale": {"tr": "sessiz", "en": "stale"},
    "unknown": {"tr": "hiç görülmedi", "en": "never seen"},
    "site": {"tr": "Saha", "en": "Site"},
    "state": {"tr": "Durum", "en": "State"},
    "scanner": {"tr": "Okuyucu", "en": "Scanner"},
    "connected": {"tr": "bağlı", "en": "connected"},
    "disconnected": {"tr": "bağlı değil", "en": "not connected"},
    "backlog": {"tr": "Bekleyen", "en": "Backlog"},
    "oldest": {"tr": "En eski (sn)", "en": "Oldest (s)"},
    "last_scan": {"tr": "Son okuma", "en": "Last scan"},
    "last_seen": {"tr": "Son haber (sn önce)", "en": "Last heard (s ago)"},
    "disk_free": {"tr": "Boş disk", "en": "Disk free"},
    "version": {"tr": "Sürüm", "en": "Version"},
    "events": {"tr": "Olaylar", "en": "Events"},
    "last_events": {"tr": "Son olaylar ve sonuçları", "en": "Last events and their results"},
    "time": {"tr": "Zaman", "en": "Time"},
    "unit": {"tr": "Ürün", "en": "Unit"},
    "verdict": {"tr": "Okuma", "en": "Verdict"},
    "accepted": {"tr": "kabul", "en": "accepted"},
    "rejected": {"tr": "ret", "en": "rejected"},
    "notification": {"tr": "Bildirim", "en": "Notification"},
    "code": {"tr": "Kod", "en": "Code"},
    "message": {"tr": "Mesaj", "en": "Message"},
    "service": {"tr": "Servis", "en": "Service"},
    "waybill": {"tr": "İrsaliye", "en": "Waybill"},
    "sender": {"tr": "Gönderen", "en": "Sender"},
    "buyer": {"tr": "Alıcı", "en": "Buyer"},
    "document": {"tr": "Belge", "en": "Document"},
    "expected": {"tr": "beklenen", "en": "expected"},
    "received": {"tr": "gelen", "en": "received"},
    "missing": {"tr": "eksik", "en": "missing"},
    "unexpected": {"tr": "beklenmeyen", "en": "unexpected"},
    "notified": {"tr": "bildirilen", "en": "notified"},
    "refused": {"tr": "reddedilen", "en": "refused"},
    "ordered": {"tr": "sipariş", "en": "ordered"},
    "sent": {"tr": "gönderilen", "en": "sent"},
    "progress": {"tr": "İlerleme", "en": "Progress"},
    "summary_csv": {"tr": "Özet (CSV)", "en": "Summary (CSV)"},
    "units": {"tr": "Ürünler", "en": "Units"},
    "none": {"tr": "Kayıt yok.", "en": "Nothing here."},
    "filter": {"tr": "Süz", "en": "Filter"},
    "since": {"tr": "Başlangıç", "en": "Since"},
    "until": {"tr": "Bitiş", "en": "Until"},
    "any": {"tr": "hepsi", "en": "any"},
    "retry": {"tr": "Yeniden gönder", "en": "Retry"},
    "cancel": {"tr": "İptal", "en": "Cancel"},
    "retry_all": {"tr": "Süzülenlerin hepsini yeniden gönder", "en": "Retry every unit shown by the filter"},
    "attempts": {"tr": "Deneme", "en": "Attempts"},
    "action_needs_login": {
        "tr": "Bu işlem için operatör girişi gerekir.",
        "en": "Log in as an operator to do this.",
    },
    "bad_csrf": {
        "tr": "Form süresi doldu veya başka bir siteden geldi; sayfayı yenileyip tekrar deneyin.",
        "en": "The form expired or came from another site; reload the page and try again.",
    },
    "nothing_chosen": {"tr": "Hiçbir ürün seçilmedi.", "en": "No unit was chosen."},
    "lookup_hint": {
        "tr": "GTIN ve seri no (boşlukla), ya da okutulan/yapıştırılan karekod",
        "en": "GTIN and serial (space between), or a scanned or pasted code",
    },
    "search": {"tr": "Ara", "en": "Search"},
    "history": {"tr": "Geçmiş", "en": "History"},
    "requests": {"tr": "Servis çağrıları", "en": "Service calls"},
    "who": {"tr": "Kim", "en": "Who"},
    "action": {"tr": "İşlem", "en": "Action"},
    "target": {"tr": "Hedef", "en": "Target"},
    "detail": {"tr": "Ayrıntı", "en": "Detail"},
    "not_found": {"tr": "Bulunamadı", "en": "Not found"},
    "bad_filter": {"tr": "Geçersiz süzgeç", "en": "Bad filter"},
    "language": {"tr": "English", "en": "Türkçe"},
}


def text(lang: str, key: str) -> str:
    entry = TEXTS.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry.get("en") or key


def choose(asked: str | None, cookie: str | None, accept: str | None, default: str) -> str:
    """The language: asked in the address, else the cookie, else the browser's first tr/en, else ``default``.

    >>> choose(None, None, "en-GB,en;q=0.9,tr;q=0.8", "tr")
    'en'
    >>> choose("tr", "en", "en", "en")
    'tr'
    """
    for candidate in (asked, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    for part in (accept or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default
