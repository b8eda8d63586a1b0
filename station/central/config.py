"""The submitter's configuration: which station is which site, and how to reach ÜTS and İTS.

Credentials are never in this file: it names files or environment variables that hold them,
separately for the test and the production environment. They are read when a client is built,
never logged, never sent over MQTT and never stored on stations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.tomlcheck import (
    STATION_ID,
    Check,
    ConfigError,
    at_least,
    one_of,
    port,
    read_file,
    read_secret,
    read_toml,
    topic_prefix,
    typed,
)
from station.wire import Operation, Service

UTS_URLS = {"test": "https://utstest.saglik.gov.tr", "production": "https://utsuygulama.saglik.gov.tr"}
ITS_URLS = {"test": "https://itstest2.saglik.gov.tr", "production": "https://its2.saglik.gov.tr"}
OPERATIONS = {
    "uts": ("receipt", "dispatch", "use"),
    "its": ("receipt", "dispatch", "return", "deactivation", "use"),
}
ITS_DEACTIVATION_REASONS = ("10", "20", "30", "40", "50", "60")


@dataclass(frozen=True)
class Secret:
    """Where a credential lives: a file (first line) or an environment variable."""

    file: str = ""
    env: str = ""

    def read(self, what: str) -> str:
        if self.file:
            return read_secret(self.file, what)
        if self.env:
            value = os.environ.get(self.env)
            if value:
                return value
            raise ConfigError("", [f"{what}: environment variable {self.env} is not set"])
        raise ConfigError("", [f"{what}: no file or environment variable configured"])


@dataclass(frozen=True)
class Site:
    """Where a station stands: the institution, what it does, and with whom."""

    name: str
    service: Service
    """``uts`` or ``its``."""
    institution: str
    """ÜTS kurum numarası, or the İTS GLN."""
    operation: Operation
    stations: tuple[str, ...]
    counterpart: str = ""
    """Dispatch/return: the buyer's GLN (İTS ``togln``) or ÜTS institution (``KUN``). Receipt: the
    expected supplier's ÜTS institution (``GKK``), optional."""
    document_number: str = ""
    """ÜTS ``BNO`` / İTS document number for dispatch and deactivation."""
    deactivation_reason: str = "40"
    """İTS ``ds``: 10 removal, 20 production scrap, 30 recall, 40 expiry, 50 revision, 60 consumption."""
    use_tur: str = "KIMLIGI_BELIRSIZ"
    send_pts: bool = False
    """İTS dispatch: send each ended order's buyer a PTS package of the boxes dispatched in it."""
    switchable: tuple[Operation, ...] = ()
    """Other operations its stations may switch to by a command barcode (``operations``)."""

    @property
    def operations(self) -> tuple[Operation, ...]:
        return (self.operation, *self.switchable)

    """ÜTS kullanım ``TUR`` when a station does not know the patient."""


@dataclass(frozen=True)
class ServiceConfig:
    base_url: str
    secret: Secret
    """The ÜTS system token, or the İTS password."""
    username: str = ""
    """İTS user name (usually the GLN); not a secret."""


@dataclass(frozen=True)
class WebConfig:
    """The console and the HBYS API (``[web]``; station.central.web)."""

    enabled: bool = False
    """Serve it inside ``station-submitter run`` (``station-submitter web`` serves it alone either way)."""
    host: str = "127.0.0.1"
    port: int = 8090
    language: str = "tr"
    """The texts' language when the browser asks for neither (``tr`` or ``en``)."""
    refresh_seconds: float = 5.0
    stale_after_seconds: float = 60.0
    """A station online by its last word but silent this long is shown stale."""
    proxy_user_header: str = ""
    """Trust this header (``X-Remote-User``) for the operator's name, from ``trusted_proxies`` only."""
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    session_hours: float = 12.0
    secure_cookies: bool = False
    """Mark the session cookie Secure (set it when the console is reached over HTTPS)."""


@dataclass(frozen=True)
class Webhook:
    """Where announcements are POSTed (``[[webhooks]]``; station.central.announce)."""

    url: str
    secret: Secret = Secret()
    """Signs each body (``X-Karekod-Signature: sha256=<hex>``) when set."""
    kinds: tuple[str, ...] = ()
    """Which announcements (empty: all)."""


@dataclass(frozen=True)
class SubmitterConfig:
    id: str = "submitter"
    environment: str = "test"
    ledger: str = "sqlite:///var/lib/karekod-submitter/ledger.db"
    mqtt_host: str = "localhost"
    mqtt_port: int = 1883
    mqtt_prefix: str = "karekod/v1"
    mqtt_username: str = ""
    mqtt_password: Secret = Secret()
    mqtt_tls: bool = False
    mqtt_ca_file: str = ""
    mqtt_cert_file: str = ""
    """The submitter's own client certificate (with ``use_identity_as_username`` on the broker)."""
    mqtt_key_file: str = ""
    shared_subscription: bool = False
    its_batch_size: int = 50
    its_batch_wait_ms: int = 500
    uts_concurrency: int = 16
    timeout_seconds: float = 20.0
    max_attempts: int = 8
    delivery_fetch_minutes: float = 5.0
    """How often receipt sites' incoming deliveries are fetched (ÜTS pending vermes, PTS packages);
    0: only on request (``station-submitter deliveries fetch``)."""
    delivery_days: int = 14
    """PTS packages sent this many days back are looked for."""
    uts: ServiceConfig | None = None
    its: ServiceConfig | None = None
    sites: dict[str, Site] = field(default_factory=dict)
    web: WebConfig = WebConfig()
    webhooks: tuple[Webhook, ...] = ()
    path: str = ""

    def site_of(self, station: str) -> Site | None:
        for site in self.sites.values():
            if station in site.stations:
                return site
        return None


SCHEMA: dict[str, dict[str, Check]] = {
    "submitter": {
        "id": typed(str, lambda v: None if STATION_ID.fullmatch(v) else "must be letters, digits, - or _"),
        "environment": typed(str, one_of("test", "production")),
        "ledger": typed(
            str,
            lambda v: (
                None
                if v.startswith(("sqlite:", "postgresql://", "postgres://"))
                else "must be sqlite:///PATH or postgresql://..."
            ),
        ),
        "timeout_seconds": typed(float, at_least(1)),
        "max_attempts": typed(int, at_least(1)),
        "delivery_fetch_minutes": typed(float, at_least(0)),
        "delivery_days": typed(int, at_least(1)),
    },
    "mqtt": {
        "host": typed(str),
        "port": port(),
        "prefix": topic_prefix(),
        "username": typed(str),
        "password_file": typed(str),
        "password_env": typed(str),
        "tls": typed(bool),
        "ca_file": typed(str),
        "cert_file": typed(str),
        "key_file": typed(str),
        "shared_subscription": typed(bool),
    },
    "uts": {"concurrency": typed(int, at_least(1))},
    "its": {"batch_size": typed(int, at_least(1)), "batch_wait_ms": typed(int, at_least(0))},
    "web": {
        "enabled": typed(bool),
        "host": typed(str),
        "port": port(),
        "language": typed(str, one_of("tr", "en")),
        "refresh_seconds": typed(float, at_least(1)),
        "stale_after_seconds": typed(float, at_least(1)),
        "proxy_user_header": typed(str),
        "trusted_proxies": typed(list),
        "session_hours": typed(float, at_least(0.1)),
        "secure_cookies": typed(bool),
    },
}
WEBHOOK_KINDS = ("unit.refused", "unit.failed", "delivery.closed")


def _secret(values: dict[str, Any], prefix: str) -> Secret:
    return Secret(str(values.get(f"{prefix}_file", "")), str(values.get(f"{prefix}_env", "")))


def parse(text: str, path: str = "<submitter config>") -> SubmitterConfig:
    """Build a :class:`SubmitterConfig`, naming every bad key with its line."""
    data, where = read_toml(text, path)
    problems: list[str] = []

    for table in data:
        if table not in ("submitter", "mqtt", "uts", "its", "sites", "web", "webhooks"):
            problems.append(f"{where(table)}: [{table}]: unknown table")
    for table, schema in SCHEMA.items():
        values = data.get(table, {})
        for key, value in values.items() if isinstance(values, dict) else ():
            if isinstance(value, dict) and table in ("uts", "its"):
                continue  # [uts.test], [its.production]: checked below
            check = schema.get(key)
            wrong = "unknown key" if check is None else check(value)
            if wrong:
                shown = "" if check is None else f" = {value!r}"
                problems.append(f"{where(table, key)}: [{table}] {key}{shown}: {wrong}")
    webhooks = _webhooks(data.get("webhooks", []), where, problems)
    if problems:
        raise ConfigError(path, problems)
    sub = data.get("submitter", {})
    mqtt = data.get("mqtt", {})
    env = str(sub.get("environment", "test"))
    services: dict[str, ServiceConfig] = {}
    for name, urls, cred in (("uts", UTS_URLS, "token"), ("its", ITS_URLS, "password")):
        service_table = data.get(name)
        if not isinstance(service_table, dict):
            continue
        section = service_table.get(env, {})
        if not isinstance(section, dict):
            problems.append(f"{where(f'{name}.{env}')}: [{name}.{env}] must be a table")
            continue
        secret = _secret(section, cred)
        if not (secret.file or secret.env):
            problems.append(
                f"{where(f'{name}.{env}')}: [{name}.{env}] {cred}_file or {cred}_env: required "
                "(credentials are never written in this file)"
            )
        if cred in section:
            problems.append(
                f"{where(f'{name}.{env}', cred)}: [{name}.{env}] {cred}: never put the credential "
                f"here; name a file ({cred}_file) or an environment variable ({cred}_env)"
            )
        username = str(section.get("username", ""))
        if name == "its" and not username:
            problems.append(f"{where(f'{name}.{env}')}: [{name}.{env}] username: required (usually the GLN)")
        services[name] = ServiceConfig(str(section.get("base_url", urls[env])).rstrip("/"), secret, username)
    sites: dict[str, Site] = {}
    seen: dict[str, str] = {}
    for name, values in data.get("sites", {}).items():
        table = f"sites.{name}"
        service = values.get("service")
        if service not in OPERATIONS:
            problems.append(f"{where(table, 'service')}: [{table}] service = {service!r}: must be uts or its")
            continue
        if service not in services:
            problems.append(f"{where(table, 'service')}: [{table}] service = {service!r}: no [{service}.{env}] table")
        op = values.get("operation", "receipt")
        if op not in OPERATIONS[service]:
            problems.append(
                f"{where(table, 'operation')}: [{table}] operation = {op!r}: "
                f"{service} supports {', '.join(OPERATIONS[service])}"
            )
        stations = values.get("stations", [])
        if not isinstance(stations, list) or not stations or not all(isinstance(s, str) for s in stations):
            problems.append(f"{where(table, 'stations')}: [{table}] stations: a list of station ids")
            stations = []
        for st in stations:
            if st in seen:
                problems.append(f"{where(table, 'stations')}: [{table}] station {st!r} is also in [sites.{seen[st]}]")
            seen[st] = name
        institution = str(values.get("institution", ""))
        if not institution.isdigit():
            problems.append(
                f"{where(table, 'institution')}: [{table}] institution: the ÜTS kurum numarası or İTS GLN (digits)"
            )
        counterpart = str(values.get("counterpart", ""))
        if op in ("dispatch", "return") and not counterpart.isdigit():
            problems.append(
                f"{where(table, 'counterpart')}: [{table}] counterpart: {op} needs the other party's "
                f"{'GLN' if service == 'its' else 'ÜTS kurum numarası'}"
            )
        ds = str(values.get("deactivation_reason", "40"))
        if ds not in ITS_DEACTIVATION_REASONS:
            problems.append(
                f"{where(table, 'deactivation_reason')}: [{table}] deactivation_reason = {ds!r}: one of "
                f"{', '.join(ITS_DEACTIVATION_REASONS)}"
            )
        others = values.get("operations", [])
        if not isinstance(others, list) or any(o not in OPERATIONS.get(service, ()) for o in others):
            problems.append(
                f"{where(table, 'operations')}: [{table}] operations: a list of the other operations its stations"
                f" may switch to, of {', '.join(OPERATIONS.get(service, ()))}"
            )
            others = []
        if service not in OPERATIONS or op not in OPERATIONS[service]:
            continue  # named above
        sites[name] = Site(
            name,
            Service(service),
            institution,
            Operation(op),
            tuple(stations),
            counterpart,
            str(values.get("document_number", "")),
            ds,
            str(values.get("use_tur", "KIMLIGI_BELIRSIZ")),
            bool(values.get("send_pts", False)),
            tuple(Operation(o) for o in others if o != op),
        )
    if problems:
        raise ConfigError(path, problems)
    web = data.get("web", {})
    return SubmitterConfig(
        id=str(sub.get("id", "submitter")),
        environment=env,
        ledger=str(sub.get("ledger", SubmitterConfig.ledger)),
        mqtt_host=str(mqtt.get("host", "localhost")),
        mqtt_port=int(mqtt.get("port", 1883)),
        mqtt_prefix=str(mqtt.get("prefix", "karekod/v1")),
        mqtt_username=str(mqtt.get("username", "")),
        mqtt_password=_secret(mqtt, "password"),
        mqtt_tls=bool(mqtt.get("tls", False)),
        mqtt_ca_file=str(mqtt.get("ca_file", "")),
        mqtt_cert_file=str(mqtt.get("cert_file", "")),
        mqtt_key_file=str(mqtt.get("key_file", "")),
        shared_subscription=bool(mqtt.get("shared_subscription", False)),
        its_batch_size=int(data.get("its", {}).get("batch_size", 50)),
        its_batch_wait_ms=int(data.get("its", {}).get("batch_wait_ms", 500)),
        uts_concurrency=int(data.get("uts", {}).get("concurrency", 16)),
        timeout_seconds=float(sub.get("timeout_seconds", 20.0)),
        max_attempts=int(sub.get("max_attempts", 8)),
        delivery_fetch_minutes=float(sub.get("delivery_fetch_minutes", 5.0)),
        delivery_days=int(sub.get("delivery_days", 14)),
        uts=services.get("uts"),
        its=services.get("its"),
        sites=sites,
        web=WebConfig(
            enabled=bool(web.get("enabled", False)),
            host=str(web.get("host", WebConfig.host)),
            port=int(web.get("port", WebConfig.port)),
            language=str(web.get("language", WebConfig.language)),
            refresh_seconds=float(web.get("refresh_seconds", WebConfig.refresh_seconds)),
            stale_after_seconds=float(web.get("stale_after_seconds", WebConfig.stale_after_seconds)),
            proxy_user_header=str(web.get("proxy_user_header", "")),
            trusted_proxies=tuple(str(p) for p in web.get("trusted_proxies", WebConfig.trusted_proxies)),
            session_hours=float(web.get("session_hours", WebConfig.session_hours)),
            secure_cookies=bool(web.get("secure_cookies", False)),
        ),
        webhooks=webhooks,
        path=path,
    )


def _webhooks(values: Any, where: Any, problems: list[str]) -> tuple[Webhook, ...]:
    """``[[webhooks]]``: url (http or https), secret_file or secret_env, kinds."""
    if not isinstance(values, list):
        problems.append(f"{where('webhooks')}: webhooks: write [[webhooks]] tables")
        return ()
    out = []
    for n, hook in enumerate(values, 1):
        table = f"[[webhooks]] #{n}"
        if not isinstance(hook, dict):
            problems.append(f"{where('webhooks')}: {table}: must be a table")
            continue
        for key in hook:
            if key not in ("url", "secret_file", "secret_env", "kinds"):
                problems.append(f"{where('webhooks')}: {table} {key}: unknown key")
        url = hook.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(f"{where('webhooks')}: {table} url = {url!r}: an http:// or https:// address")
            continue
        kinds = hook.get("kinds", [])
        if not isinstance(kinds, list) or any(k not in WEBHOOK_KINDS for k in kinds):
            problems.append(f"{where('webhooks')}: {table} kinds = {kinds!r}: a list of {', '.join(WEBHOOK_KINDS)}")
            continue
        out.append(Webhook(url, _secret(hook, "secret"), tuple(kinds)))
    return tuple(out)


def load(path: str | Path) -> SubmitterConfig:
    return parse(read_file(path), str(path))
