"""Who may act on the console and call the API: operators, API tokens, sessions and CSRF tokens.

Plain functions over the ledger, in the manner of sqlite-utils. Nothing secret is stored in the
clear: an operator's password is kept as a scrypt hash (RFC 7914, from the standard library), an
API token as its SHA-256 (the tokens are 256 random bits, so a fast hash is enough). A session is a
signed cookie (HMAC-SHA256 with a key kept in the ledger's ``meta``, made on first use), so every
submitter sharing a PostgreSQL ledger accepts the others' sessions; the CSRF token is derived from
the session, so a form from another site cannot carry it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from station.central.ledger import Ledger

NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
"""An operator's or token's name (shown in the audit table)."""
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SESSION_KEY = "web_session_key"


class AccountError(ValueError):
    """A name or password that cannot be used; the message says why."""


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)


def hash_password(password: str) -> str:
    """``scrypt$<salt>$<hash>`` (base64), what the ``operators`` table keeps."""
    if len(password) < 10:
        raise AccountError("a password needs at least 10 characters")
    salt = secrets.token_bytes(16)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(_scrypt(password, salt)).decode()


def check_password(stored: str, password: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        return hmac.compare_digest(_scrypt(password, base64.b64decode(salt)), base64.b64decode(digest))
    except ValueError:
        return False


def _name(name: str) -> str:
    if not NAME.match(name):
        raise AccountError(f"{name!r}: a name is 1-64 letters, digits and . _ @ -")
    return name


def add_operator(ledger: Ledger, name: str, password: str) -> None:
    """Add an operator, or set a new password for one."""
    hashed = hash_password(password)
    with ledger.tx() as c:
        c.execute(
            "INSERT INTO operators (name, hash, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash",
            (_name(name), hashed, time.time()),
        )


def remove_operator(ledger: Ledger, name: str) -> bool:
    with ledger.tx() as c:
        return bool(c.execute("DELETE FROM operators WHERE name = ?", (name,)).rowcount)


def operators(ledger: Ledger) -> list[str]:
    return [str(r[0]) for r in ledger.query("SELECT name FROM operators ORDER BY name")]


def login(ledger: Ledger, name: str, password: str) -> bool:
    """Whether ``name`` and ``password`` are an operator's (the same work is done for a wrong name)."""
    rows = ledger.query("SELECT hash FROM operators WHERE name = ?", (name,))
    stored = str(rows[0][0]) if rows else "scrypt$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    return check_password(stored, password) and bool(rows)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(ledger: Ledger, name: str) -> str:
    """A new API token for ``name`` (an HBYS, an ERP); returned once, only its hash is kept."""
    token = "kk_" + secrets.token_urlsafe(32)
    with ledger.tx() as c:
        c.execute(
            "INSERT INTO api_tokens (name, hash, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
            (_name(name), _token_hash(token), time.time()),
        )
    return token


def remove_token(ledger: Ledger, name: str) -> bool:
    with ledger.tx() as c:
        return bool(c.execute("DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount)


def tokens(ledger: Ledger) -> list[str]:
    return [str(r[0]) for r in ledger.query("SELECT name FROM api_tokens ORDER BY name")]


def token_owner(ledger: Ledger, token: str) -> str | None:
    """Whose token this is, or None."""
    rows = ledger.query("SELECT name FROM api_tokens WHERE hash = ?", (_token_hash(token),))
    return str(rows[0][0]) if rows else None


@dataclass(frozen=True)
class Sessions:
    """Signed session cookies and the CSRF tokens bound to them."""

    key: bytes
    hours: float = 12.0

    @classmethod
    def of(cls, ledger: Ledger, hours: float = 12.0) -> Sessions:
        """The ledger's session key, made on first use (shared by every submitter on the ledger)."""
        key = ledger.meta(SESSION_KEY)
        if key is None:
            with ledger.tx() as c:
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    (SESSION_KEY, secrets.token_hex(32)),
                )
            key = ledger.meta(SESSION_KEY)
        assert key is not None
        return cls(bytes.fromhex(key), hours)

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, who: str, now: float | None = None) -> str:
        """A cookie value naming ``who`` until the session ends."""
        until = int((now or time.time()) + self.hours * 3600)
        body = f"{who}|{until}|{secrets.token_hex(8)}"
        return f"{body}|{self._sign(body)}"

    def who(self, cookie: str | None, now: float | None = None) -> str | None:
        """The operator a cookie names, or None (absent, forged or expired)."""
        if not cookie or cookie.count("|") != 3:
            return None
        body, _, signature = cookie.rpartition("|")
        if not hmac.compare_digest(self._sign(body), signature):
            return None
        who, until, _ = body.split("|")
        if not until.isdigit() or int(until) < (now or time.time()):
            return None
        return who

    def csrf(self, cookie: str) -> str:
        """The token every form and htmx request of this session must carry."""
        return self._sign("csrf|" + cookie)[:32]

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        return bool(cookie and token) and hmac.compare_digest(self.csrf(cookie or ""), token or "")
