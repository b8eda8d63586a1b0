"""``station run``: wire config, store, pins, scanners and uplink together and run the scan loop.

The scan loop is the one thread that judges scans; it also feeds the systemd watchdog, so a loop
that hangs is restarted, while a loop that merely waits for scans is healthy.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from types import FrameType
from typing import Any, BinaryIO

from station import runtime
from station.edge.config import Config, ScannerConfig
from station.edge.events import Scan
from station.edge.outputs import pins
from station.edge.outputs.feedback import GpioFeedback, Signal, simulated_pin_factory
from station.edge.outputs.reject import RejectArm
from station.edge.pipeline import Station
from station.edge.scanners.serial import Scanner, SerialScanner, StreamScanner
from station.edge.store import StorageError, Store
from station.edge.uplink import MqttUplink, NoUplink, Uplink

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


def purge(store: Store, config: Config) -> None:
    """Forget accepted units past retention and delivered events past keeping: at start and daily."""
    units, events = store.purge(config.reader.duplicate_retention_days, config.storage.keep_delivered_days)
    if units or events:
        log.info("purged %d accepted units past retention and %d delivered events", units, events)


def _backlog(store: Store) -> int:
    try:
        return store.stats().backlog
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


def run(config: Config, simulate: bool = False, stdin: BinaryIO | None = None, drain_seconds: float = 0.0) -> int:
    """Run until SIGTERM/SIGINT, or until every scanner's input has ended (stdin at EOF).

    When the input ends, wait up to ``drain_seconds`` for the central side to ack the backlog.
    """
    stdin = stdin if stdin is not None else sys.stdin.buffer
    store = Store(config.storage.path, max_size_mb=config.storage.max_size_mb)
    try:
        store.open()
        purge(store, config)
    except StorageError as e:
        log.error("storage unavailable, every scan will be refused until it is back: %s", e)

    pin_factory: Any = None
    if simulate:
        names = {
            config.feedback.green_pin: "green",
            config.feedback.amber_pin: "amber",
            config.feedback.red_pin: "red",
            config.feedback.buzzer_pin: "buzzer",
            config.feedback.stack_green_pin: "stack-green",
            config.feedback.stack_amber_pin: "stack-amber",
            config.feedback.stack_red_pin: "stack-red",
        }
        if config.reject.enabled:
            names[config.reject.pin] = "reject-arm"
        lights = logging.getLogger("station.lights")

        def echo(pin: Any, value: float) -> None:
            label = names.get(int(str(pin).removeprefix("GPIO")), str(pin))
            lights.info("%-11s %s", label, "on" if value else "off")

        pin_factory = simulated_pin_factory(echo)
    else:
        try:
            pin_factory = pins.make(config.feedback.pin_factory)
        except pins.PinFactoryError as e:
            log.error("cannot drive the lights: %s", e)
            return 3
    feedback = GpioFeedback(config.feedback, pin_factory)
    arm = None
    if config.reject.enabled:
        rc = config.reject
        arm = RejectArm(rc.pin, rc.delay_ms / 1000, rc.pulse_ms / 1000, rc.mode, rc.active_high, pin_factory)
        log.info(
            "reject arm on GPIO%d: %s, %d ms after the scan, %d ms pulse", rc.pin, rc.mode, rc.delay_ms, rc.pulse_ms
        )
    station = Station(config, store, feedback, reject_arm=arm)
    uplink: Uplink = NoUplink()
    if config.mqtt.enabled:
        uplink = MqttUplink(config.mqtt, config.station.id, config.storage.path, station.status, station.on_result)
    station.uplink = uplink

    stop = threading.Event()
    scans: queue.Queue[Scan] = queue.Queue()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    scanners = make_scanners(config, simulate, stdin)
    crashed: list[str] = []

    def guarded(scanner: Scanner) -> None:
        try:
            scanner.run(scans.put, stop)
        except Exception:
            log.exception("scanner %s crashed", scanner.name)
            crashed.append(scanner.name)

    threads = []
    for scanner in scanners:
        t = threading.Thread(target=guarded, args=(scanner,), name=f"scanner-{scanner.name}", daemon=True)
        t.start()
        threads.append(t)
    uplink.start()
    runtime.notify("READY=1")
    log.info(
        "station %s ready: %s, profile %s, storage %s, mqtt %s",
        config.station.id,
        config.station.operation,
        config.reader.profile.value,
        config.storage.path,
        f"{config.mqtt.host}:{config.mqtt.port}" if config.mqtt.enabled else "off",
    )
    spath = status_path(config)
    next_status = 0.0
    next_purge = 0.0
    exit_code = 0
    try:
        while not stop.is_set():
            try:
                scan = scans.get(timeout=0.5)
            except queue.Empty:
                if not any(t.is_alive() for t in threads):
                    break  # every input has ended
            else:
                station.handle(scan)
            if crashed:
                log.error("stopping: a scanner thread died (%s); systemd restarts the station", ", ".join(crashed))
                exit_code = 1
                break
            runtime.notify("WATCHDOG=1")  # only a scan loop that goes round feeds the watchdog
            now = time.monotonic()
            if now >= next_status:
                for scanner in scanners:
                    was = station.scanners_connected.get(scanner.name)
                    station.scanners_connected[scanner.name] = scanner.connected
                    if was and not scanner.connected:
                        feedback.show(Signal.FAULT)  # scanner unplugged: amber, until it is back
                try:
                    write_status(spath, station.status())
                except OSError as e:
                    log.debug("status file not written: %s", e)
                next_status = now + min(config.mqtt.status_interval_seconds, 5.0)
            if now >= next_purge:
                if next_purge:
                    try:
                        purge(store, config)
                    except StorageError as e:
                        log.warning("daily purge skipped: %s", e)
                next_purge = now + 86400
        while not scans.empty():  # scans already read are judged and stored, not dropped
            station.handle(scans.get_nowait())
        deadline = time.monotonic() + drain_seconds
        while not stop.is_set() and time.monotonic() < deadline and _backlog(store):
            stop.wait(0.2)
    finally:
        runtime.notify("STOPPING=1")
        stop.set()
        uplink.stop()
        feedback.close()
        if arm is not None:
            arm.close()
        try:
            body = station.status()
            body["state"] = "stopped"
            write_status(spath, body)
        except OSError:
            pass
        store.close()
        log.info("station %s stopped", config.station.id)
    return exit_code
