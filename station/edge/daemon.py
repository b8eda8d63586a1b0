"""``station run``: wire config, store, pins, scanners and uplink together and run the scan loop.

The scan loop is the one thread that judges scans; it also feeds the systemd watchdog, so a loop
that hangs is restarted, while a loop that merely waits for scans is healthy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from dataclasses import replace
from functools import partial
from types import FrameType
from typing import Any, BinaryIO

from station import runtime
from station.edge.config import Config, ScannerConfig
from station.edge.dock import Dock
from station.edge.events import Scan
from station.edge.health import Health
from station.edge.orders import Orders
from station.edge.outputs import pins
from station.edge.outputs.feedback import GpioFeedback, Signal, simulated_pin_factory
from station.edge.outputs.reject import RejectArm
from station.edge.pipeline import Station, show_result
from station.edge.presence import PhotoEye, Presence
from station.edge.scanners.serial import Scanner, SerialScanner, StreamScanner
from station.edge.store import StorageError, Store
from station.edge.uplink import MqttUplink, NoUplink, Uplink
from station.tomlcheck import ConfigError, read_secret
from station.wire import Operation

log = logging.getLogger("station")


def status_path(config: Config) -> str:
    """Where the daemon leaves its health for ``station status``: beside the station file."""
    return config.storage.path + ".status.json"


def write_status(path: str, body: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".status.", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f)
    os.replace(tmp, path)


PURGE_BATCH = 2000
"""Rows per commit when purging: the scan path waits at most one such commit (a few ms)."""


class Housekeeper:
    """Purges the station file on its own thread and connection, in small batches: after READY and
    daily, never on the scan path and never before READY (start-up does not grow with the file)."""

    def __init__(self, config: Config, stop: threading.Event) -> None:
        self.config = config
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def purge_once(self) -> None:
        store = Store(self.config.storage.path, max_size_mb=self.config.storage.max_size_mb, durable=False)
        try:
            units, events = store.purge(
                self.config.reader.duplicate_retention_days,
                self.config.storage.keep_delivered_days,
                batch=PURGE_BATCH,
                pause=0.02,
            )
            if units or events:
                log.info("purged %d accepted units past retention and %d delivered events", units, events)
        finally:
            store.close()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.purge_once()
            except StorageError as e:
                log.warning("purge skipped: %s", e)
            except Exception:
                log.exception("purge failed")
            self.stop.wait(86400)


def _backlog(store: Store) -> int:
    try:
        return store.backlog()[0]
    except StorageError:
        return 0


def make_scanner(sc: ScannerConfig, stdin: BinaryIO) -> Scanner:
    """One configured scanner; each has its own framing or key state."""
    if sc.type == "serial":
        return SerialScanner(sc.port, sc.baudrate, sc.suffix, sc.idle_ms, sc.max_length, sc.name or sc.port)
    if sc.type == "hid":
        from station.edge.scanners.hid import HidScanner

        return HidScanner(sc.device, sc.layout, sc.gs_key, max(sc.idle_ms, 20), sc.max_length, sc.name or sc.device)
    return StreamScanner(stdin, sc.name or "stdin", sc.max_length)


def make_scanners(config: Config, simulate: bool, stdin: BinaryIO) -> list[Scanner]:
    if simulate:
        return [StreamScanner(stdin, "stdin", config.scanners[0].max_length)]
    if any(sc.type == "stdin" for sc in config.scanners):
        log.warning(
            '[scanner] type = "stdin": scans come from standard input, and the station stops when it '
            'ends; on a Pi set type = "serial" or "hid"'
        )
    return [make_scanner(sc, stdin) for sc in config.scanners]


def open_storage(config: Config) -> Store:
    """The station file, migrated; a failure is logged and every scan refused until it is back."""
    store = Store(config.storage.path, max_size_mb=config.storage.max_size_mb)
    try:
        store.open()
    except StorageError as e:
        log.error("storage unavailable, every scan will be refused until it is back: %s", e)
    return store


def _switched_to(store: Store) -> str | None:
    """The operation a command barcode switched this station to (kept in its file), if any."""
    try:
        return store.meta("operation")
    except StorageError:
        return None


def simulated_pins(config: Config) -> Any:
    """gpiozero's mock pins, each change printed with the output's name."""
    names = {
        config.feedback.green_pin: "green",
        config.feedback.amber_pin: "amber",
        config.feedback.red_pin: "red",
        config.feedback.buzzer_pin: "buzzer",
        config.feedback.stack_green_pin: "stack-green",
        config.feedback.stack_amber_pin: "stack-amber",
        config.feedback.stack_red_pin: "stack-red",
        config.feedback.late_pin: "late-refusal",
        config.presence.pin: "photo-eye",
    }
    if config.reject.enabled:
        names[config.reject.pin] = "reject-arm"
    lights = logging.getLogger("station.lights")

    def echo(pin: Any, value: float) -> None:
        label = names.get(int(str(pin).removeprefix("GPIO")), str(pin))
        lights.info("%-11s %s", label, "on" if value else "off")

    return simulated_pin_factory(echo)


def make_reject_arm(config: Config, pin_factory: Any) -> RejectArm | None:
    if not config.reject.enabled:
        return None
    rc = config.reject
    log.info("reject arm on GPIO%d: %s, %d ms after the scan, %d ms pulse", rc.pin, rc.mode, rc.delay_ms, rc.pulse_ms)
    return RejectArm(rc.pin, rc.delay_ms / 1000, rc.pulse_ms / 1000, rc.mode, rc.active_high, pin_factory)


def start_scanners(
    scanners: list[Scanner], scans: queue.Queue[Scan], stop: threading.Event
) -> tuple[list[threading.Thread], list[str]]:
    """One thread per scanner feeding one queue; returns the threads, and the list a crashed scanner
    adds its name to."""
    crashed: list[str] = []

    def guarded(scanner: Scanner) -> None:
        try:
            scanner.run(scans.put, stop)
        except Exception:
            log.exception("scanner %s crashed", scanner.name)
            crashed.append(scanner.name)

    threads = [
        threading.Thread(target=guarded, args=(scanner,), name=f"scanner-{scanner.name}", daemon=True)
        for scanner in scanners
    ]
    for t in threads:
        t.start()
    return threads, crashed


class ScanLoop:
    """The one thread that judges scans in arrival order, keeps the status file and feeds the watchdog."""

    def __init__(self, config: Config, station: Station, scanners: list[Scanner], feedback: GpioFeedback) -> None:
        self.config = config
        self.station = station
        self.scanners = scanners
        self.feedback = feedback
        self.scans: queue.Queue[Scan] = queue.Queue()
        self.stop = threading.Event()
        self.crashed: list[str] = []
        self.status_file = status_path(config)
        self.next_status = 0.0
        self.next_tick = 0.0
        self.uplink_sick = False

    def run(self) -> int:
        """Until stopped, every input ended (0), or a scanner thread died (1: systemd restarts us)."""
        threads, self.crashed = start_scanners(self.scanners, self.scans, self.stop)
        while not self.stop.is_set():
            presence = self.station.presence
            try:
                scan = self.scans.get(timeout=0.5 if presence is None else presence.window / 4)
            except queue.Empty:
                if not any(t.is_alive() for t in threads):
                    break  # every input has ended
            else:
                self.station.handle(scan)
            if presence is not None:
                for passed_at in presence.due(time.monotonic()):
                    self.station.no_read(passed_at)
            if self.crashed:
                log.error("stopping: a scanner thread died (%s); systemd restarts the station", ", ".join(self.crashed))
                return 1
            self.feed_watchdog()
            self.housekeeping(time.monotonic())
        return 0

    def feed_watchdog(self) -> None:
        """Only a scan loop that goes round, with an uplink whose threads are alive, feeds the
        watchdog: a hung loop or a dead uplink thread gets the station restarted by systemd."""
        if self.station.uplink.healthy:
            runtime.notify("WATCHDOG=1")
            self.uplink_sick = False
        elif not self.uplink_sick:
            log.error("the uplink's threads are dead or hung: not feeding the watchdog (systemd restarts the station)")
            self.uplink_sick = True

    def housekeeping(self, now: float) -> None:
        if now >= self.next_status:
            for scanner in self.scanners:
                was = self.station.health.scanners.get(scanner.name)
                self.station.health.scanners[scanner.name] = scanner.connected
                if was and not scanner.connected:
                    self.feedback.show(Signal.FAULT)  # scanner unplugged: amber, until it is back
            try:
                write_status(self.status_file, self.station.status())
            except OSError as e:
                log.debug("status file not written: %s", e)
            self.next_status = now + min(self.config.mqtt.status_interval_seconds, 5.0)
        if now >= self.next_tick:
            self.station.tick()
            self.next_tick = now + 1.0

    def drain(self, seconds: float) -> None:
        """Judge and store the scans already read, then wait up to ``seconds`` for the backlog's acks."""
        while not self.scans.empty():
            self.station.handle(self.scans.get_nowait())
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline and _backlog(self.station.store):
            self.stop.wait(0.2)


def run(config: Config, simulate: bool = False, stdin: BinaryIO | None = None, drain_seconds: float = 0.0) -> int:
    """Run until SIGTERM/SIGINT, or until every scanner's input has ended (stdin at EOF).

    When the input ends, wait up to ``drain_seconds`` for the central side to ack the backlog.
    """
    store = open_storage(config)
    try:
        pin_factory = simulated_pins(config) if simulate else pins.make(config.feedback.pin_factory)
    except pins.PinFactoryError as e:
        log.error("cannot drive the lights: %s", e)
        return 3
    feedback = GpioFeedback(config.feedback, pin_factory)
    arm = make_reject_arm(config, pin_factory)
    health = Health(config.station.id)
    uplink: Uplink = NoUplink()
    dock = Dock(store, config.delivery, config.station.id)
    operations = {config.station.operation, *config.commands.operations}
    orders = Orders(store, config.order, config.station.id) if operations - {Operation.RECEIPT} else None

    def lists_changed() -> None:
        dock.changed()
        if orders is not None:
            orders.changed()

    if config.mqtt.enabled:
        on_result = partial(show_result, feedback)
        try:
            uplink = MqttUplink(
                config.mqtt,
                config.station.id,
                config.storage.path,
                health.status,
                on_result,
                on_delivery=lists_changed,
            )
        except ConfigError as e:  # the password file changed since the configuration was checked
            log.error("cannot connect to the broker: %s", e)
            feedback.close()
            return 2
    presence = eye = None
    if config.presence.pin >= 0:
        presence = Presence(config.presence.window_ms / 1000)
        eye = PhotoEye(config.presence.pin, presence, time.monotonic, config.presence.active_high, pin_factory)
        log.info(
            "photo-eye on GPIO%d: a box unread within %d ms is rejected", config.presence.pin, config.presence.window_ms
        )
    secret = b""
    if config.commands.secret_file:
        try:
            secret = read_secret(config.commands.secret_file, "[commands] secret_file").encode()
        except ConfigError as e:
            log.error("command barcodes: %s", e)
            feedback.close()
            return 2
    identity = config.station
    switched = _switched_to(store)
    if switched and switched in config.commands.operations:
        identity = replace(identity, operation=Operation(switched))
        log.info("operation %s (switched by a command barcode; configured: %s)", switched, config.station.operation)
    station = Station(
        identity,
        config.reader,
        store,
        feedback,
        uplink,
        arm,
        health,
        dock,
        orders,
        presence,
        secret,
        tuple(config.commands.operations),
    )
    loop = ScanLoop(config, station, make_scanners(config, simulate, stdin or sys.stdin.buffer), feedback)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        loop.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    uplink.start()
    runtime.notify("READY=1")
    Housekeeper(config, loop.stop).start()
    log.info(
        "station %s ready: %s, profile %s, storage %s, mqtt %s",
        config.station.id,
        config.station.operation,
        config.reader.profile.value,
        config.storage.path,
        f"{config.mqtt.host}:{config.mqtt.port}" if config.mqtt.enabled else "off",
    )
    exit_code = 0
    try:
        exit_code = loop.run()
        if not exit_code:
            loop.drain(drain_seconds)
    finally:
        runtime.notify("STOPPING=1")
        loop.stop.set()
        uplink.stop()
        feedback.close()
        if arm is not None:
            arm.close()
        if eye is not None:
            eye.close()
        with contextlib.suppress(OSError):
            write_status(loop.status_file, {**station.status(), "state": "stopped"})
        store.close()
        log.info("station %s stopped", config.station.id)
    return exit_code
