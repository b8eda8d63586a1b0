"""Feedback: green, amber and red LEDs and a buzzer, one pattern per signal, via gpiozero.

The scan path only calls :meth:`Feedback.show`, which returns at once; a player thread switches
the pins, and a new signal cuts the previous one short (a conveyor reads ten boxes a second; the
newest box is the one the operator looks at).
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from gpiozero.tones import Tone

from station.edge.config import FeedbackConfig, Pattern
from station.gs1.reasons import Reason
from station.gs1.verdict import Verdict

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
    RESCAN = "rescan"
    """The scan was cut on its way from the scanner: nothing is wrong with the box, scan it again."""
    NOT_EXPECTED = "not_expected"
    """The box is not in the open delivery (or more came than were sent): put it aside."""
    NO_DELIVERY = "no_delivery"
    """No delivery is open: scan the waybill or an SSCC first."""
    DELIVERY_OPEN = "delivery_open"
    DELIVERY_CLOSED = "delivery_closed"
    CASE_RECEIVED = "case_received"
    """Every unit of the scanned case (or pallet) was received at once."""
    NOT_IN_ORDER = "not_in_order"
    """The open order does not want this box (or has enough of it): the arm takes it off."""
    NO_ORDER = "no_order"
    ORDER_OPEN = "order_open"
    ORDER_END = "order_end"
    RECALLED = "recalled"
    """The unit is on the recall list: never ship it."""
    NO_READ = "no_read"
    """A box passed the photo-eye with no read: the arm takes it off."""


def signal_for(verdict: Verdict) -> Signal:
    if verdict.ok:
        return Signal.ACCEPT
    return _SIGNALS.get(verdict.reason, Signal.REJECT) if verdict.reason else Signal.REJECT


_SIGNALS = {
    Reason.DUPLICATE: Signal.DUPLICATE,
    Reason.CUT_SCAN: Signal.RESCAN,
    Reason.NOT_EXPECTED: Signal.NOT_EXPECTED,
    Reason.NO_DELIVERY: Signal.NO_DELIVERY,
    Reason.NOT_IN_ORDER: Signal.NOT_IN_ORDER,
    Reason.NO_ORDER: Signal.NO_ORDER,
    Reason.RECALLED: Signal.RECALLED,
    Reason.NO_READ: Signal.NO_READ,
}
"""Refusals with a signal of their own (every other refusal is ``reject``)."""


class Feedback(Protocol):
    def show(self, signal: Signal) -> None: ...

    def close(self) -> None: ...


class NoFeedback:
    """For tools that must not touch pins."""

    def show(self, signal: Signal) -> None:
        pass

    def close(self) -> None:
        pass


PIN_HISTORY = 256
"""How many state changes a simulated pin remembers. gpiozero's mock pins keep every change in a
list for tests to assert on; a daemon that runs for months must not (100,000 scans grew the RSS
by 55 MiB): its pins keep the newest few."""


def simulated_pin_factory(on_change: Callable[[int, float], None] | None = None) -> Any:
    """gpiozero's MockFactory whose pins report every change (how ``--simulate`` shows the lights)
    and remember only the newest :data:`PIN_HISTORY` of them."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin, PinState

    class EchoPin(MockPWMPin):  # type: ignore[misc]
        def clear_states(self) -> None:
            self._last_change = time.monotonic()
            self.states = collections.deque([PinState(0.0, self._state)], maxlen=PIN_HISTORY)

        def _change_state(self, value: float) -> bool:
            changed: bool = super()._change_state(value)
            if changed and on_change is not None and self._function == "output":
                on_change(self.info.name, value)
            return changed

    return MockFactory(pin_class=EchoPin)


class GpioFeedback:
    """LEDs and buzzer on GPIO pins; any gpiozero pin factory (MockFactory in tests).

    :meth:`show` switches the first edge at once; one player thread times the rest, so the scan
    path pays a pin write, not a thread start per blink as gpiozero's own ``blink()`` would.
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
        self.late = LED(config.late_pin, **stack_kw) if config.late_pin >= 0 else None
        """A late refusal's own output (``late_pin``)."""
        self.buzzer: Any
        self.tonal = config.buzzer_type == "tonal"
        if self.tonal:
            self.buzzer = TonalBuzzer(config.buzzer_pin, pin_factory=pin_factory, octaves=3)
        else:
            self.buzzer = Buzzer(config.buzzer_pin, **kw)
        self._pins: dict[str, tuple[tuple[Any, bool], ...]] = {
            name: tuple((d.pin, bool(d.active_high)) for d in (led, self.stack.get(name)) if d is not None)
            for name, led in self.leds.items()
        }
        """Each output's pins and the state that means on: an LED with its stack lamp, and a plain
        buzzer. The player writes these pins (gpiozero's pin API, on any factory) rather than going
        through ``LED.value``, whose blink bookkeeping costs the scan path ~10 us a write; only
        ``late`` ever blinks by gpiozero's own thread, and it is not among them."""
        if not self.tonal:
            self._pins["buzzer"] = ((self.buzzer.pin, bool(self.buzzer.active_high)),)
        self._plans = {
            signal: (pattern, tuple(_name(pattern, what) for at, what, on in self._edges(pattern) if at == 0 and on))
            for signal in Signal
            for pattern in (config.patterns[signal.value],)
        }
        """Each signal's pattern and the outputs it switches on at once, its LED before its buzzer."""
        self._cond = threading.Condition()
        self._lit: set[str] = set()
        """What this player has switched on ("buzzer" or an LED's name): all that a new signal turns off."""
        self._next: tuple[Pattern, float] | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._play, name="feedback", daemon=True)
        self._thread.start()

    def show(self, signal: Signal) -> None:
        """Light the pattern's LED (and start its buzzer) now, on the caller's thread; the player
        thread only times the edges that follow. Scan to light costs a pin write, not a thread wake."""
        pattern, first = self._plans[signal]
        if signal is Signal.REFUSED_LATER and self.late is not None:
            self.late.blink(on_time=self.config.late_seconds, off_time=0.01, n=1, background=True)
        with self._cond:
            for name in first:  # the light first: an output still on from the last signal goes off and on
                if name in self._lit:
                    self._switch(name, False)
                self._switch(name, True, pattern.tone)
            for name in tuple(self._lit):
                if name not in first:
                    self._switch(name, False)
            self._next = (pattern, time.monotonic())
            self._cond.notify()

    @staticmethod
    @functools.cache
    def _edges(pattern: Pattern) -> tuple[tuple[float, str, bool], ...]:
        """The LED's blinks and the buzzer's beeps on one timeline of on/off edges."""
        edges: list[tuple[float, str, bool]] = []
        for i in range(pattern.blinks):
            edges += [(2 * i * pattern.seconds, "led", True), ((2 * i + 1) * pattern.seconds, "led", False)]
        if pattern.beep_seconds > 0:
            for i in range(pattern.beeps):
                t = 2 * i * pattern.beep_seconds
                edges += [(t, "buzzer", True), (t + pattern.beep_seconds, "buzzer", False)]
        return tuple(sorted(edges, key=lambda e: (e[0], e[2])))  # at the same instant: off before on

    def _switch(self, name: str, on: bool, tone: str = "") -> None:
        """One output ("buzzer" or an LED's name) on or off, and remembered as lit or not."""
        pins = self._pins.get(name)
        if pins is not None:
            for pin, high in pins:
                pin.state = on == high  # active-low: on is the low state
        elif on:
            self.buzzer.play(Tone(tone))
        else:
            self.buzzer.stop()
        self._lit.add(name) if on else self._lit.discard(name)

    def _play(self) -> None:
        while True:
            with self._cond:
                while self._next is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                assert self._next is not None
                (pattern, start), self._next = self._next, None
            self._run(pattern, start)

    def _run(self, pattern: Pattern, start: float) -> None:
        """The edges after the first, each applied under the lock unless a newer pattern came."""
        for at, what, on in self._edges(pattern):
            if at == 0:
                continue  # applied by show()
            with self._cond:
                while self._next is None and not self._closing:
                    delay = start + at - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._next is not None or self._closing:
                    return  # cut short: the newer pattern is already showing
                self._switch(_name(pattern, what), on, pattern.tone)
        with self._cond:
            if self._next is None and not self._closing:
                self._all_off()

    def _all_off(self, everything: bool = False) -> None:
        """Off what this player switched on (a pin write per lit output, not one per output: the
        scan path pays for it), or ``everything``."""
        for name in (*self.leds, "buzzer"):
            if everything or name in self._lit:
                self._switch(name, False)

    def close(self) -> None:
        """Every output off and released: the station is dark when the daemon is not running."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(5)
        self._all_off(everything=True)
        for device in (*self.leds.values(), *self.stack.values(), self.buzzer):
            device.close()
        if self.late is not None:
            self.late.close()


def _name(pattern: Pattern, what: str) -> str:
    """The output an edge switches: the pattern's LED, or the buzzer."""
    return pattern.led if what == "led" else what
