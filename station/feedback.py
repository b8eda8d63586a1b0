"""Feedback: green, amber and red LEDs and a buzzer, one pattern per signal, via gpiozero.

The scan path only calls :meth:`Feedback.show`, which returns at once; a player thread switches
the pins, and a new signal cuts the previous one short (a conveyor reads ten boxes a second; the
newest box is the one the operator looks at).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from gpiozero.tones import Tone

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
    """LEDs and buzzer on GPIO pins; any gpiozero pin factory (MockFactory in tests).

    One player thread runs the patterns. :meth:`show` only hands it the new pattern, so the scan
    path pays microseconds, not a thread start per blink as gpiozero's own ``blink()`` would.
    """

    def __init__(self, config: FeedbackConfig, pin_factory: Any = None) -> None:
        from gpiozero import LED, Buzzer, TonalBuzzer

        self.config = config
        kw: dict[str, Any] = {"pin_factory": pin_factory, "active_high": config.active_high}
        self.leds = {
            "green": LED(config.green_pin, **kw),
            "amber": LED(config.amber_pin, **kw),
            "red": LED(config.red_pin, **kw),
        }
        stack_kw: dict[str, Any] = {"pin_factory": pin_factory, "active_high": config.stack_active_high}
        self.stack = {
            colour: LED(pin, **stack_kw)
            for colour, pin in (
                ("green", config.stack_green_pin),
                ("amber", config.stack_amber_pin),
                ("red", config.stack_red_pin),
            )
            if pin >= 0
        }
        """The stack light's lamps, through relays: they follow the LEDs."""
        self.buzzer: Any
        self.tonal = config.buzzer_type == "tonal"
        if self.tonal:
            self.buzzer = TonalBuzzer(config.buzzer_pin, pin_factory=pin_factory, octaves=3)
        else:
            self.buzzer = Buzzer(config.buzzer_pin, **kw)
        self._cond = threading.Condition()
        self._next: Pattern | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._play, name="feedback", daemon=True)
        self._thread.start()

    def show(self, signal: Signal) -> None:
        with self._cond:
            self._next = self.config.patterns[signal.value]
            self._cond.notify()

    def _play(self) -> None:
        while True:
            with self._cond:
                while self._next is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                pattern, self._next = self._next, None
            assert pattern is not None
            self._run(pattern)

    def _interrupted(self, seconds: float) -> bool:
        """Wait, unless a newer pattern (or close) arrives first."""
        with self._cond:
            if self._next is None and not self._closing:
                self._cond.wait(seconds)
            return self._next is not None or self._closing

    def _run(self, pattern: Pattern) -> None:
        """Blink the LED and beep the buzzer side by side, on one timeline of on/off edges."""
        edges: list[tuple[float, str, bool]] = []
        for i in range(pattern.blinks):
            edges += [(2 * i * pattern.seconds, "led", True), ((2 * i + 1) * pattern.seconds, "led", False)]
        if pattern.beep_seconds > 0:
            for i in range(pattern.beeps):
                t = 2 * i * pattern.beep_seconds
                edges += [(t, "buzzer", True), (t + pattern.beep_seconds, "buzzer", False)]
        edges.sort(key=lambda e: (e[0], e[2]))  # at the same instant: off before on
        self._all_off()
        led = self.leds[pattern.led]
        lamp = self.stack.get(pattern.led)
        start = time.monotonic()
        for at, what, on in edges:
            delay = start + at - time.monotonic()
            if delay > 0 and self._interrupted(delay):
                break
            if what == "led":
                led.value = on
                if lamp is not None:
                    lamp.value = on
            elif self.tonal:
                self.buzzer.play(Tone(pattern.tone)) if on else self.buzzer.stop()
            else:
                self.buzzer.value = on
        self._all_off()

    def _all_off(self) -> None:
        for led in (*self.leds.values(), *self.stack.values()):
            led.off()
        if self.tonal:
            self.buzzer.stop()
        else:
            self.buzzer.off()

    def close(self) -> None:
        """Every output off and released: the station is dark when the daemon is not running."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(5)
        self._all_off()
        for device in (*self.leds.values(), *self.stack.values(), self.buzzer):
            device.close()
