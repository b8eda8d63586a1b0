"""Outputs on MockFactory pins: the reject arm's timing and fail-safe, the stack light, pin choice."""

from __future__ import annotations

import collections
import time
from datetime import date
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from station.edge.config import Config, FeedbackConfig, StationConfig, StorageConfig, parse
from station.edge.events import Scan
from station.edge.outputs import pins
from station.edge.outputs.feedback import GpioFeedback, Signal
from station.edge.outputs.reject import RejectArm
from station.edge.pipeline import Station
from station.edge.store import Store

GS = "\x1d"


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory(pin_class=MockPWMPin)


def edges(pin: object, since: float) -> list[tuple[float, bool]]:
    """(seconds after ``since``, state) of each change, from the mock pin's history."""
    out = []
    states = pin.states  # type: ignore[attr-defined]
    # MockPin records the time since the previous change; rebuild absolute times from the last one.
    t = pin._last_change  # type: ignore[attr-defined]
    for s in reversed(states):
        out.append((t - since, bool(s.state)))
        t -= s.timestamp
    return list(reversed(out))


def test_pulse_fires_after_the_belt_delay_for_the_pulse_length(factory: MockFactory) -> None:
    arm = RejectArm(24, delay=0.3, pulse=0.1, mode="pulse", pin_factory=factory)
    pin = factory.pin(24)
    scanned = time.monotonic()
    arm.reject(scanned)
    time.sleep(0.55)
    changes = [(round(t, 2), s) for t, s in edges(pin, scanned) if t > 0]
    assert [s for _, s in changes] == [True, False]
    (on_at, _), (off_at, _) = changes
    assert 0.28 <= on_at <= 0.34, changes  # fired at scan time + delay, not at verdict time
    assert 0.08 <= off_at - on_at <= 0.14, changes
    assert arm.fired == 1
    arm.close()
    assert not pin.state


def test_delay_counts_from_the_scan_not_the_verdict(factory: MockFactory) -> None:
    arm = RejectArm(24, delay=0.3, pulse=0.05, mode="pulse", pin_factory=factory)
    scanned = time.monotonic() - 0.2  # the verdict took 200 ms (a slow disk)
    arm.reject(scanned)
    time.sleep(0.2)
    on = [t for t, s in edges(factory.pin(24), scanned) if s]
    assert arm.fired == 1 and 0.28 <= on[0] <= 0.34, on  # 100 ms after the verdict, 300 ms after the scan
    arm.close()


def test_close_rejects_overlap_into_one_pulse(factory: MockFactory) -> None:
    arm = RejectArm(24, delay=0.1, pulse=0.1, mode="pulse", pin_factory=factory)
    now = time.monotonic()
    arm.reject(now)
    arm.reject(now + 0.05)  # the next box, 50 ms behind: one longer push
    time.sleep(0.35)
    assert arm.fired == 1
    changes = [(t, s) for t, s in edges(factory.pin(24), now) if t > 0]
    assert [s for _, s in changes] == [True, False] and 0.13 <= changes[1][0] - changes[0][0] <= 0.19
    arm.close()


def test_hold_to_pass_is_fail_safe(factory: MockFactory) -> None:
    arm = RejectArm(24, delay=0.05, pulse=0.1, mode="hold_to_pass", pin_factory=factory)
    pin = factory.pin(24)
    assert pin.state  # held: boxes pass
    arm.reject(time.monotonic())
    time.sleep(0.1)
    assert not pin.state  # dropped: this box is diverted
    time.sleep(0.1)
    assert pin.state
    arm.close()  # the daemon stops: released, every box is diverted
    assert not pin.state


def test_station_fires_the_arm_for_refusals_only(tmp_path: Path, factory: MockFactory) -> None:
    config = Config(station=StationConfig("line"), storage=StorageConfig(str(tmp_path / "s.db")))
    arm = RejectArm(24, delay=0.05, pulse=0.03, mode="pulse", pin_factory=factory)
    fb = GpioFeedback(config.feedback, factory)
    st = Station(config.station, config.reader, Store(config.storage.path), fb, reject_arm=arm)
    today = date(2026, 1, 1)
    good = f"010869953609012221OK1{GS}1730123110L"
    for i, raw in enumerate([good, "junk", good.replace("OK1", "OK2"), good[3:] + "\r"]):
        st.handle(Scan(raw.encode(), "t", time.time(), time.monotonic() + i * 0.2), today)
    deadline = time.monotonic() + 8
    while arm.fired < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert arm.fired == 2  # the junk scan and the duplicate; the two good boxes pass
    fb.close()
    arm.close()


def test_stack_light_follows_the_leds(factory: MockFactory) -> None:
    fb = GpioFeedback(FeedbackConfig(stack_green_pin=5, stack_amber_pin=6, stack_red_pin=13), factory)
    fb.show(Signal.REJECT)
    time.sleep(0.05)
    assert factory.pin(13).state and factory.pin(22).state and not factory.pin(5).state
    fb.show(Signal.ACCEPT)
    time.sleep(0.05)
    assert factory.pin(5).state and not factory.pin(13).state
    fb.close()
    assert not any(factory.pin(p).state for p in (5, 6, 13, 17, 22, 27))


def test_active_low_outputs_are_lit_by_a_low_pin(factory: MockFactory) -> None:
    """Sinking LEDs (``active_high = false``) and relay boards that switch on low
    (``stack_active_high = false``): the signal's pins are written directly, so "on" must still be
    the low state for each, and "off" (a signal cut short, a pattern's end) the high one."""
    config = FeedbackConfig(active_high=False, stack_active_high=False, stack_green_pin=5, stack_red_pin=13)
    fb = GpioFeedback(config, factory)
    green, red, buzzer, lamp_green, lamp_red = (factory.pin(p) for p in (17, 22, 23, 5, 13))
    assert all(p.state for p in (green, red, buzzer, lamp_green, lamp_red))  # all off: high
    fb.show(Signal.REJECT)
    assert not red.state and not lamp_red.state and not buzzer.state  # on at once: low
    assert green.state and lamp_green.state
    fb.show(Signal.ACCEPT)
    assert not green.state and not lamp_green.state and red.state and lamp_red.state  # the last one off
    time.sleep(0.6)  # the accept's 0.4 s blink and 0.08 s beep are over
    assert all(p.state for p in (green, red, buzzer, lamp_green, lamp_red))
    fb.close()


def test_pin_factory_choice() -> None:
    assert pins.choose("auto", "Raspberry Pi 5 Model B Rev 1.0", {"lgpio", "rpigpio"}) == "lgpio"
    assert pins.choose("auto", "Raspberry Pi 4 Model B Rev 1.4", {"lgpio", "rpigpio"}) == "lgpio"
    assert pins.choose("auto", "Raspberry Pi 3 Model B Plus Rev 1.3", {"rpigpio"}) == "rpigpio"
    assert pins.choose("mock", "", set()) == "mock"
    with pytest.raises(pins.PinFactoryError, match="Pi 5 needs lgpio"):
        pins.choose("auto", "Raspberry Pi 5 Model B Rev 1.0", {"rpigpio"})
    with pytest.raises(pins.PinFactoryError, match="not a Raspberry Pi"):
        pins.choose("auto", "", {"lgpio"})
    with pytest.raises(pins.PinFactoryError, match="no pin library"):
        pins.choose("auto", "Raspberry Pi 4 Model B", set())


def test_config_reject_stack_and_several_scanners() -> None:
    c = parse(
        '[station]\nid = "line-2"\n'
        '[scanner]\ntype = "serial"\nbaudrate = 115200\n'
        '[scanner.upstream]\nport = "/dev/scanner-a"\n'
        '[scanner.hand]\ntype = "hid"\ndevice = "usb:0c2e:0b61"\nlayout = "tr-q"\ngs_key = "KEY_F12"\n'
        '[reject]\nenabled = true\npin = 24\ndelay_ms = 650\nmode = "pulse"\n'
        "[feedback]\nstack_red_pin = 13\n"
    )
    assert [(s.name, s.type, s.baudrate) for s in c.scanners] == [
        ("upstream", "serial", 115200),
        ("hand", "hid", 115200),
    ]
    assert c.scanners[1].layout == "tr-q" and c.reject.delay_ms == 650 and c.feedback.stack_red_pin == 13
    from station.tomlcheck import ConfigError

    with pytest.raises(ConfigError, match=r"device: required"):
        parse('[station]\nid = "x"\n[scanner]\ntype = "hid"\n')
    with pytest.raises(ConfigError, match=r"red_pin = 17: also used by green_pin"):
        parse('[station]\nid = "x"\n[feedback]\nred_pin = 17\n')


def test_simulated_pins_remember_a_bounded_history() -> None:
    """gpiozero's mock pins keep every change; the daemon's simulated ones keep the newest few, so a
    station run with --simulate (or on the mock factory) does not grow with every scan."""
    from station.edge.outputs.feedback import PIN_HISTORY, simulated_pin_factory

    changes: list[tuple[int, float]] = []
    factory = simulated_pin_factory(lambda pin, value: changes.append((pin, value)))
    fb = GpioFeedback(FeedbackConfig(), factory)
    try:
        green = factory.pin(FeedbackConfig().green_pin)
        for _ in range(PIN_HISTORY * 3):
            fb.leds["green"].on()
            fb.leds["green"].off()
        assert len(green.states) == PIN_HISTORY and not green.states[-1].state
        assert len(changes) >= PIN_HISTORY * 6  # every change is still reported as it happens
    finally:
        fb.close()
    mock = pins.make("mock")
    pin = mock.pin(5)
    assert isinstance(pin.states, collections.deque) and pin.states.maxlen == PIN_HISTORY
