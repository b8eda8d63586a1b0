"""Station configuration: one TOML file, checked key by key with the line each problem is on.

``station config check FILE`` and the daemon share :func:`load`, so a file the check passes is a
file the daemon starts with, and a bad one is refused with the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from station.gs1.reader import Profile
from station.gs1.verdict import Policy
from station.tomlcheck import (
    STATION_ID,
    Check,
    ConfigError,
    at_least,
    line_of,
    one_of,
    port,
    read_file,
    read_toml,
    secret_file,
    topic_prefix,
    typed,
)
from station.wire import Operation


class ScannerType(StrEnum):
    STDIN = "stdin"
    SERIAL = "serial"
    HID = "hid"


class Suffix(StrEnum):
    """What ends a scan on a serial line (``auto``: CR, LF, CRLF or Tab; ``none``: the idle gap only)."""

    AUTO = "auto"
    CR = "cr"
    LF = "lf"
    CRLF = "crlf"
    TAB = "tab"
    NONE = "none"


class Layout(StrEnum):
    """A USB-HID scanner's keyboard layout (``station.edge.scanners.keymaps``)."""

    US = "us"
    TR_Q = "tr-q"
    TR_F = "tr-f"
    DE = "de"
    FR = "fr"


class BuzzerType(StrEnum):
    ACTIVE = "active"
    TONAL = "tonal"


class PinFactory(StrEnum):
    AUTO = "auto"
    LGPIO = "lgpio"
    RPIGPIO = "rpigpio"
    MOCK = "mock"


class RejectMode(StrEnum):
    PULSE = "pulse"
    HOLD_TO_PASS = "hold_to_pass"


@dataclass(frozen=True)
class choice:
    """A check: a string that is one of ``enum``'s values; :func:`converted` makes it the member."""

    enum: type[StrEnum]

    def __call__(self, value: Any) -> str | None:
        return typed(str, one_of(*self.enum))(value)


def converted(check: Check, value: Any, key: str) -> Any:
    """A checked value as the configuration holds it: an enum member, a float for seconds."""
    if isinstance(check, choice):
        return check.enum(value)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) and "seconds" in key else value


LEDS = ("green", "amber", "red")


@dataclass(frozen=True)
class Pattern:
    """How one signal looks and sounds: an LED blinked ``blinks`` times, a buzzer beeped."""

    led: str
    seconds: float
    blinks: int
    beeps: int
    beep_seconds: float
    tone: str = "A5"
    """Note for a passive (tonal) buzzer."""


DEFAULT_PATTERNS = {
    "accept": Pattern("green", 0.4, 1, 1, 0.08, "C6"),
    "reject": Pattern("red", 1.5, 1, 1, 1.0, "A4"),
    "duplicate": Pattern("amber", 0.2, 3, 3, 0.1, "E5"),
    "refused_later": Pattern("red", 0.15, 6, 2, 0.4, "C5"),
    "fault": Pattern("amber", 1.0, 1, 0, 0.0, "A4"),
    "rescan": Pattern("amber", 0.3, 2, 2, 0.15, "G5"),
    "not_expected": Pattern("red", 0.25, 3, 3, 0.2, "F4"),
    "no_delivery": Pattern("amber", 1.0, 1, 2, 0.4, "D4"),
    "delivery_open": Pattern("green", 0.15, 2, 2, 0.08, "E6"),
    "delivery_closed": Pattern("green", 1.2, 1, 3, 0.1, "G6"),
    "case_received": Pattern("green", 0.1, 4, 4, 0.05, "A6"),
    "not_in_order": Pattern("red", 0.25, 2, 2, 0.25, "E4"),
    "no_order": Pattern("amber", 1.0, 1, 2, 0.4, "D4"),
    "order_open": Pattern("green", 0.15, 2, 2, 0.08, "E6"),
    "order_end": Pattern("green", 1.2, 1, 3, 0.1, "G6"),
    "recalled": Pattern("red", 0.1, 8, 3, 0.3, "B4"),
    "no_read": Pattern("red", 0.3, 2, 0, 0.0, "A4"),
}


@dataclass(frozen=True)
class StationConfig:
    id: str
    site: str = ""
    operation: Operation = Operation.RECEIPT


@dataclass(frozen=True)
class ReaderConfig:
    profile: Profile = Profile.ITS
    min_shelf_life_days: int = 0
    debounce_seconds: float = 1.0
    duplicate_retention_days: int = 730

    @property
    def policy(self) -> Policy:
        return Policy(self.profile, self.min_shelf_life_days or None)


@dataclass(frozen=True)
class ScannerConfig:
    name: str = ""
    type: ScannerType = ScannerType.STDIN
    port: str = "/dev/scanner"
    """Serial: the tty (a udev symlink such as /dev/scanner survives re-plugging)."""
    baudrate: int = 9600
    suffix: Suffix = Suffix.AUTO
    idle_ms: int = 50
    max_length: int = 512
    device: str = ""
    """HID: /dev/input/by-id/... path, usb:VVVV:PPPP, or the device name."""
    layout: Layout = Layout.US
    gs_key: str = ""


@dataclass(frozen=True)
class StorageConfig:
    path: str = "/var/lib/karekod-station/station.db"
    max_size_mb: int = 0
    keep_delivered_days: int = 90


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = True
    host: str = "localhost"
    port: int = 1883
    prefix: str = "karekod/v1"
    client_id: str = ""
    username: str = ""
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive: int = 30
    ack_timeout_seconds: float = 30.0
    status_interval_seconds: float = 15.0
    window: int = 1000
    wait_for_central: bool = True


@dataclass(frozen=True)
class FeedbackConfig:
    green_pin: int = 17
    amber_pin: int = 27
    red_pin: int = 22
    buzzer_pin: int = 23
    buzzer_type: BuzzerType = BuzzerType.ACTIVE
    active_high: bool = True
    stack_green_pin: int = -1
    """A three-colour stack light (through a relay board) mirrors the LEDs; -1: none fitted."""
    stack_amber_pin: int = -1
    stack_red_pin: int = -1
    stack_active_high: bool = True
    late_pin: int = -1
    """An output of its own for a late refusal (a beacon, a stack-light colour, a divert at the end
    of the line): on for ``late_seconds`` when the national service refuses a unit accepted here."""
    late_seconds: float = 10.0
    pin_factory: PinFactory = PinFactory.AUTO
    patterns: dict[str, Pattern] = field(default_factory=lambda: dict(DEFAULT_PATTERNS))


@dataclass(frozen=True)
class RejectConfig:
    enabled: bool = False
    pin: int = 24
    delay_ms: int = 800
    """From the scan to the box reaching the arm: belt distance / belt speed - actuator latency."""
    pulse_ms: int = 150
    mode: RejectMode = RejectMode.HOLD_TO_PASS
    active_high: bool = True


@dataclass(frozen=True)
class DeliveryConfig:
    """The dock's delivery sessions (station.edge.dock)."""

    require: bool = False
    """A unit scanned with no delivery open is refused (``no_delivery``)."""
    close_barcode: str = ""
    """The text of the command barcode that closes the open delivery ("": none; then idle time or
    ``station delivery --close``)."""
    idle_close_minutes: float = 0.0
    """Close the open delivery after this long without a scan (0: never)."""
    receive_cases: bool = False
    """Scanning a case's (or pallet's) SSCC in its open delivery receives every unit in it."""


@dataclass(frozen=True)
class CommandsConfig:
    """Command barcodes (station.edge.commands)."""

    secret_file: str = ""
    """A file whose contents key the command barcodes' MACs ("": the station id, station-specific only)."""
    operations: tuple[Operation, ...] = ()
    """Other operations a command barcode may switch this station to (its site must allow them too)."""


@dataclass(frozen=True)
class PresenceConfig:
    """A photo-eye at the scanner (station.edge.presence): a box that passes unread is rejected."""

    pin: int = -1
    """BCM GPIO of the eye's (opto-isolated) output; -1: none fitted."""
    window_ms: int = 150
    """A box's read may come this long before or after it breaks the beam; less than the arm's delay."""
    active_high: bool = True


@dataclass(frozen=True)
class OrderConfig:
    """Orders on a dispatch conveyor (station.edge.orders)."""

    require: bool = False
    """A box scanned with no order open is refused (``no_order``) and the reject arm takes it."""
    end_barcode: str = ""
    """The text of the command barcode that ends the open order ("": the next order label ends it)."""


@dataclass(frozen=True)
class Config:
    station: StationConfig
    reader: ReaderConfig = ReaderConfig()
    scanners: tuple[ScannerConfig, ...] = (ScannerConfig(),)
    storage: StorageConfig = StorageConfig()
    mqtt: MqttConfig = MqttConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    reject: RejectConfig = RejectConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    order: OrderConfig = OrderConfig()
    presence: PresenceConfig = PresenceConfig()
    commands: CommandsConfig = CommandsConfig()
    path: str = ""


# -- checking ---------------------------------------------------------------------------------


def _pin(v: int) -> str | None:
    return None if 0 <= v <= 27 else "must be a BCM GPIO number from 0 to 27"


SCHEMA: dict[str, dict[str, Check]] = {
    "station": {
        "id": typed(str, lambda v: None if STATION_ID.fullmatch(v) else "must be 1-64 letters, digits, - or _"),
        "site": typed(str),
        "operation": choice(Operation),
    },
    "reader": {
        "profile": choice(Profile),
        "min_shelf_life_days": typed(int, at_least(0)),
        "debounce_seconds": typed(float, at_least(0)),
        "duplicate_retention_days": typed(int, at_least(1)),
    },
    "scanner": {
        "type": choice(ScannerType),
        "port": typed(str),
        "baudrate": typed(int, at_least(300)),
        "suffix": choice(Suffix),
        "idle_ms": typed(int, at_least(5)),
        "max_length": typed(int, lambda v: None if 64 <= v <= 8192 else "must be from 64 to 8192 bytes"),
        "device": typed(str),
        "layout": choice(Layout),
        "gs_key": typed(
            str,
            lambda v: (
                None if not v or re.fullmatch(r"KEY_[A-Z0-9]+|\d+", v) else "must be an evdev key name such as KEY_F12"
            ),
        ),
    },
    "storage": {
        "path": typed(str, lambda v: None if v else "must not be empty"),
        "max_size_mb": typed(int, at_least(0)),
        "keep_delivered_days": typed(int, at_least(1)),
    },
    "mqtt": {
        "enabled": typed(bool),
        "host": typed(str),
        "port": port(),
        "prefix": topic_prefix(),
        "client_id": typed(str),
        "username": typed(str),
        "password_file": typed(str),
        "tls": typed(bool),
        "ca_file": typed(str),
        "cert_file": typed(str),
        "key_file": typed(str),
        "keepalive": typed(int, at_least(5)),
        "ack_timeout_seconds": typed(float, at_least(1)),
        "status_interval_seconds": typed(float, at_least(1)),
        "window": typed(int, at_least(1)),
        "wait_for_central": typed(bool),
    },
    "feedback": {
        "green_pin": typed(int, _pin),
        "amber_pin": typed(int, _pin),
        "red_pin": typed(int, _pin),
        "buzzer_pin": typed(int, _pin),
        "buzzer_type": choice(BuzzerType),
        "active_high": typed(bool),
        "stack_green_pin": typed(int, lambda v: None if v == -1 else _pin(v)),
        "stack_amber_pin": typed(int, lambda v: None if v == -1 else _pin(v)),
        "stack_red_pin": typed(int, lambda v: None if v == -1 else _pin(v)),
        "stack_active_high": typed(bool),
        "late_pin": typed(int, lambda v: None if v == -1 else _pin(v)),
        "late_seconds": typed(float, at_least(0.1)),
        "pin_factory": choice(PinFactory),
    },
    "delivery": {
        "require": typed(bool),
        "close_barcode": typed(str, lambda v: None if len(v) <= 100 and v.isprintable() else "printable, at most 100"),
        "idle_close_minutes": typed(float, at_least(0)),
        "receive_cases": typed(bool),
    },
    "commands": {
        "secret_file": typed(str),
        "operations": typed(
            list,
            lambda v: None if all(o in set(Operation) for o in v) else f"a list of {', '.join(Operation)}",
        ),
    },
    "presence": {
        "pin": typed(int, lambda v: None if v == -1 else _pin(v)),
        "window_ms": typed(int, at_least(10)),
        "active_high": typed(bool),
    },
    "order": {
        "require": typed(bool),
        "end_barcode": typed(str, lambda v: None if len(v) <= 100 and v.isprintable() else "printable, at most 100"),
    },
    "reject": {
        "enabled": typed(bool),
        "pin": typed(int, _pin),
        "delay_ms": typed(int, at_least(0)),
        "pulse_ms": typed(int, at_least(10)),
        "mode": choice(RejectMode),
        "active_high": typed(bool),
    },
}
PATTERN_SCHEMA: dict[str, Check] = {
    "led": typed(str, one_of(*LEDS)),
    "seconds": typed(float, at_least(0.01)),
    "blinks": typed(int, at_least(1)),
    "beeps": typed(int, at_least(0)),
    "beep_seconds": typed(float, at_least(0)),
    "tone": typed(str, lambda v: None if re.fullmatch(r"[A-G][#b]?[0-8]", v) else "must be a note such as A4"),
}


def parse(text: str, path: str = "<config>") -> Config:
    """Build a :class:`Config` from TOML text or raise :class:`ConfigError` naming every bad key."""
    data, where = read_toml(text, path)
    problems: list[str] = []

    def check_table(table: str, values: Any, schema: dict[str, Check]) -> dict[str, Any]:
        good: dict[str, Any] = {}
        if not isinstance(values, dict):
            problems.append(f"{where(table, '')}: [{table}] must be a table")
            return good
        for key, value in values.items():
            if isinstance(value, dict) and table in ("feedback", "scanner"):
                continue  # a signal's pattern, a named scanner: checked below
            check = schema.get(key)
            if check is None:
                problems.append(f"{where(table, key)}: [{table}] {key}: unknown key")
                continue
            wrong = check(value)
            if wrong:
                problems.append(f"{where(table, key)}: [{table}] {key} = {value!r}: {wrong}")
            else:
                good[key] = converted(check, value, key)
        return good

    for table in data:
        if table not in SCHEMA:
            problems.append(f"{where(table, '')}: [{table}]: unknown table")
    tables = {table: check_table(table, data.get(table, {}), schema) for table, schema in SCHEMA.items()}
    if "id" not in data.get("station", {}):
        problems.append(f"{where('station', '')}: [station] id: required (the station's name in MQTT topics)")

    patterns = dict(DEFAULT_PATTERNS)
    feedback = data.get("feedback", {})
    if isinstance(feedback, dict):
        for name, values in feedback.items():
            if not isinstance(values, dict):
                continue
            table = f"feedback.{name}"
            if name not in DEFAULT_PATTERNS:
                problems.append(
                    f"{where(table, '')}: [{table}]: unknown signal; signals are {', '.join(DEFAULT_PATTERNS)}"
                )
                continue
            good = check_table(table, values, PATTERN_SCHEMA)
            base = DEFAULT_PATTERNS[name].__dict__
            patterns[name] = Pattern(
                **{**base, **{k: float(v) if k.endswith("seconds") else v for k, v in good.items()}}
            )
    scanners: list[ScannerConfig] = []
    scanner_table = data.get("scanner", {})
    if isinstance(scanner_table, dict):
        named = {k: v for k, v in scanner_table.items() if isinstance(v, dict)}
        for name, values in named.items():
            if not STATION_ID.fullmatch(name):
                at = where(f"scanner.{name}", "")
                problems.append(f"{at}: [scanner.{name}]: name must be letters, digits, - or _")
            good = check_table(f"scanner.{name}", values, SCHEMA["scanner"])
            scanners.append(ScannerConfig(**{**tables["scanner"], **good, "name": name}))
        if not named:
            scanners.append(ScannerConfig(**tables["scanner"]))
    for sc in scanners:
        label = f"scanner.{sc.name}" if sc.name else "scanner"
        if sc.type == "hid" and not sc.device:
            problems.append(
                f"{where(label, '')}: [{label}] device: required for a hid scanner "
                "(a /dev/input/by-id path, usb:VVVV:PPPP or the device name)"
            )
    fb, rj = {**tables["feedback"]}, tables["reject"]
    pins: dict[int, str] = {}
    for key in (
        "green_pin",
        "amber_pin",
        "red_pin",
        "buzzer_pin",
        "stack_green_pin",
        "stack_amber_pin",
        "stack_red_pin",
        "late_pin",
    ):
        pin = fb.get(key, getattr(FeedbackConfig, key))
        if pin != -1:
            if pin in pins:
                problems.append(f"{where('feedback', key)}: [feedback] {key} = {pin}: also used by {pins[pin]}")
            pins[pin] = key
    pr = tables["presence"]
    if pr.get("pin", -1) != -1:
        if pr["pin"] in pins or (rj.get("enabled") and pr["pin"] == rj.get("pin", RejectConfig.pin)):
            problems.append(f"{where('presence', 'pin')}: [presence] pin = {pr['pin']}: also used by another output")
        delay = rj.get("delay_ms", RejectConfig.delay_ms)
        if rj.get("enabled") and pr.get("window_ms", PresenceConfig.window_ms) >= delay:
            problems.append(
                f"{where('presence', 'window_ms')}: [presence] window_ms must be less than [reject] delay_ms ({delay}):"
                " a box left unread must be known before it reaches the arm"
            )
    if rj.get("enabled") and rj.get("pin", RejectConfig.pin) in pins:
        pin = rj.get("pin", RejectConfig.pin)
        problems.append(f"{where('reject', 'pin')}: [reject] pin = {pin}: also used by [feedback] {pins[pin]}")
    mq = tables["mqtt"]
    if mq.get("password_file") and mq.get("enabled", True):
        wrong = secret_file(mq["password_file"], "[mqtt] password_file")
        if wrong:
            problems.append(f"{where('mqtt', 'password_file')}: {wrong}")
    if problems:
        raise ConfigError(path, sorted(problems, key=line_of))
    return Config(
        station=StationConfig(**tables["station"]),
        reader=ReaderConfig(**tables["reader"]),
        scanners=tuple(scanners),
        storage=StorageConfig(**tables["storage"]),
        mqtt=MqttConfig(**tables["mqtt"]),
        feedback=FeedbackConfig(**tables["feedback"], patterns=patterns),
        reject=RejectConfig(**tables["reject"]),
        delivery=DeliveryConfig(**tables["delivery"]),
        order=OrderConfig(**tables["order"]),
        presence=PresenceConfig(**tables["presence"]),
        commands=CommandsConfig(
            **{
                **tables["commands"],
                "operations": tuple(Operation(o) for o in tables["commands"].get("operations", ())),
            }
        ),
        path=path,
    )


def load(path: str | Path) -> Config:
    """Read and check a configuration file."""
    return parse(read_file(path), str(path))
