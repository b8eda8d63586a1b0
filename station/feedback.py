"""Feedback: green, amber and red LEDs and a buzzer, one pattern per signal, via gpiozero.

The scan path only calls :meth:`Feedback.show`, which returns at once: gpiozero runs blinks and
beeps in its own background threads, and a new signal cuts the previous one short (a conveyor
reads ten boxes a second; the newest box is the one the operator looks at).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from station.config import FeedbackConfig, Pattern
from station.reasons import Reason
from station.verdict import Verdict

log = logging.getLogger(__name__)


class Signal(StrEnum):
    """What the operator is told. Distinct at a glance and by ear."""

    ACCEPT = "accept"
    REJECT = "reject"
    DUPLICATE = "duplicate"
    REFUSED_LATER = "refused_later"
    """Accepted here, but the national service refused it later."""
    FAULT = "fault"
    """The station itself is unwell (storage, scanner)."""


def signal_for(verdict: Verdict) -> Signal:
    if verdict.ok:
        return Signal.ACCEPT
    if verdict.reason is Reason.DUPLICATE:
        return Signal.DUPLICATE
    return Signal.REJECT


class Feedback(Protocol):
    def show(self, signal: Signal) -> None: ...

    def close(self) -> None: ...


class NoFeedback:
    """For tools that must not touch pins."""

    def show(self, signal: Signal) -> None:
        pass

    def close(self) -> None:
        pass


def simulated_pin_factory(on_change: Callable[[int, float], None] | None = None) -> Any:
    """gpiozero's MockFactory whose pins report every change: how ``--simulate`` shows the lights."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    class EchoPin(MockPWMPin):  # type: ignore[misc]
        def _change_state(self, value: float) -> bool:
            changed: bool = super()._change_state(value)
            if changed and on_change is not None and self._function == "output":
                on_change(self.info.name, value)
            return changed

    return MockFactory(pin_class=EchoPin)


class GpioFeedback:
    """LEDs and buzzer on GPIO pins; any gpiozero pin factory (MockFactory in tests)."""

    def __init__(self, config: FeedbackConfig, pin_factory: Any = None) -> None:
        from gpiozero import LED, Buzzer, TonalBuzzer

        self.config = config
        kw: dict[str, Any] = {"pin_factory": pin_factory, "active_high": config.active_high}
        self.leds = {
            "green": LED(config.green_pin, **kw),
            "amber": LED(config.amber_pin, **kw),
            "red": LED(config.red_pin, **kw),
        }
        self.buzzer: Any
        self.tonal = config.buzzer_type == "tonal"
        if self.tonal:
            self.buzzer = TonalBuzzer(config.buzzer_pin, pin_factory=pin_factory, octaves=3)
        else:
            self.buzzer = Buzzer(config.buzzer_pin, **kw)
        self._tone_stop = threading.Event()
        self._tone_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def show(self, signal: Signal) -> None:
        pattern = self.config.patterns[signal.value]
        with self._lock:
            self._all_off()
            on = pattern.seconds
            off = on if pattern.blinks > 1 else 0.0
            self.leds[pattern.led].blink(on_time=on, off_time=off, n=pattern.blinks, background=True)
            if pattern.beeps and pattern.beep_seconds > 0:
                if self.tonal:
                    self._play_tone(pattern)
                else:
                    self.buzzer.beep(
                        on_time=pattern.beep_seconds, off_time=pattern.beep_seconds, n=pattern.beeps, background=True
                    )

    def _play_tone(self, pattern: Pattern) -> None:
        from gpiozero.tones import Tone

        stop = self._tone_stop = threading.Event()

        def run() -> None:
            for i in range(pattern.beeps):
                if i and stop.wait(pattern.beep_seconds):
                    return
                self.buzzer.play(Tone(pattern.tone))
                stopped = stop.wait(pattern.beep_seconds)
                self.buzzer.stop()
                if stopped:
                    return

        self._tone_thread = threading.Thread(target=run, name="tone", daemon=True)
        self._tone_thread.start()

    def _all_off(self) -> None:
        for led in self.leds.values():
            led.off()
        self._tone_stop.set()
        if self._tone_thread is not None:
            self._tone_thread.join(1.0)
            self._tone_thread = None
        if self.tonal:
            self.buzzer.stop()
        else:
            self.buzzer.off()

    def close(self) -> None:
        """Every output off and released: the station is dark when the daemon is not running."""
        with self._lock:
            self._all_off()
            for device in (*self.leds.values(), self.buzzer):
                device.close()
