"""Choosing gpiozero's pin factory: lgpio on every Pi (the only choice on a Pi 5), RPi.GPIO on an
older Pi only where lgpio is absent and RPi.GPIO was installed by hand, gpiozero's MockFactory for
``--simulate`` and tests. ``scripts/install-pi.sh`` installs lgpio from apt (``python3-lgpio``).

A fallback that silently picks another library hides the real fault (a missing ``.[pi]`` extra,
an unwritable working directory for lgpio), so ``auto`` names what it chose and fails clearly.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


class PinFactoryError(RuntimeError):
    pass


def board_model() -> str:
    """The Raspberry Pi model from the device tree, or "" when this is not a Pi.

    /sys first: the systemd unit's ``ProcSubset=pid`` hides /proc/device-tree.
    """
    for path in ("/sys/firmware/devicetree/base/model", "/proc/device-tree/model"):
        try:
            with open(path, "rb") as f:
                return f.read().rstrip(b"\0").decode("ascii", "replace")
        except OSError:
            continue
    return ""


def choose(name: str = "auto", model: str | None = None, available: set[str] | None = None) -> str:
    """The factory to use: ``lgpio``, ``rpigpio`` or ``mock``. Pure, so it is testable anywhere.

    >>> choose("auto", "Raspberry Pi 5 Model B Rev 1.0", {"lgpio", "rpigpio"})
    'lgpio'
    >>> choose("auto", "Raspberry Pi 4 Model B Rev 1.4", {"rpigpio"})
    'rpigpio'
    """
    if name != "auto":
        return name
    model = board_model() if model is None else model
    if available is None:
        available = {
            n
            for n, mod in (("lgpio", "lgpio"), ("rpigpio", "RPi.GPIO"))
            if importlib.util.find_spec(mod.split(".")[0]) is not None
        }
    if not model.startswith("Raspberry Pi"):
        raise PinFactoryError('not a Raspberry Pi: run with --simulate, or set [feedback] pin_factory = "mock"')
    if "Raspberry Pi 5" in model or "Compute Module 5" in model:
        if "lgpio" not in available:
            raise PinFactoryError(
                "a Pi 5 needs lgpio: apt-get install python3-lgpio (RPi.GPIO does not work on a Pi 5)"
            )
        return "lgpio"
    for candidate in ("lgpio", "rpigpio"):
        if candidate in available:
            return candidate
    raise PinFactoryError("no pin library: apt-get install python3-lgpio (or pip install '.[pi]')")


def make(name: str = "auto") -> Any:
    """A gpiozero pin factory. GPIOZERO_PIN_FACTORY in the environment wins, as gpiozero documents."""
    env = os.environ.get("GPIOZERO_PIN_FACTORY")
    if env:
        log.info("pins: %s (from GPIOZERO_PIN_FACTORY)", env)
        return None  # gpiozero reads the variable itself
    chosen = choose(name)
    log.info("pins: %s", chosen)
    if chosen == "mock":
        from station.edge.outputs.feedback import simulated_pin_factory

        return simulated_pin_factory()
    if chosen == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    from gpiozero.pins.rpigpio import RPiGPIOFactory

    return RPiGPIOFactory()
