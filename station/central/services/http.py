"""What both national-service clients share: one HTTP session per thread, and the three kinds of failure
that decide whether a call may be sent again."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class Call:
    """One request to a national service: its path (for ÜTS, under ``REST``) and JSON body.

    ``its`` and ``uts`` build every call they make as one of these, with pure functions the
    client, the notifier and the sandbox all use.
    """

    path: str
    body: dict[str, Any]


class ServiceError(Exception):
    """A call did not give a definite answer."""


class Unreachable(ServiceError):
    """The request never reached the service (no connection): safe to send again."""


class InDoubt(ServiceError):
    """The request may have been processed (timeout, 5xx, an unreadable answer): ask before resending."""


class AuthFailed(ServiceError):
    """The service refused the credentials (HTTP 401/403): nothing was processed."""


class Http:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def post(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, str]:
        """POST JSON; returns (status, parsed body or None, raw text). Raises Unreachable/InDoubt."""
        url = f"{self.base_url}{path}"
        try:
            r = self.session.post(
                url,
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8", **headers},
                timeout=self.timeout,
            )
        except requests.ConnectionError as e:
            if (
                isinstance(e, requests.ConnectTimeout)
                or "Connection refused" in str(e)
                or "Failed to establish" in str(e)
            ):
                raise Unreachable(f"{url}: {type(e).__name__}") from None
            raise InDoubt(f"{url}: connection broken: {type(e).__name__}") from None
        except requests.Timeout:
            raise InDoubt(f"{url}: no answer in {self.timeout:.0f} s") from None
        except requests.RequestException as e:
            raise InDoubt(f"{url}: {type(e).__name__}") from None
        if r.status_code in (401, 403):
            raise AuthFailed(f"{url}: HTTP {r.status_code}")
        try:
            parsed = r.json()
        except ValueError:
            parsed = None
        if r.status_code >= 500 or parsed is None:
            raise InDoubt(f"{url}: HTTP {r.status_code}, {'unreadable answer' if parsed is None else 'server error'}")
        return r.status_code, parsed, r.text
