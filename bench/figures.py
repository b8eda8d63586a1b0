"""One figure of a benchmark, as ``bench/run`` collects it into one table.

A bench prints its own lines as before and, for each figure, one ``FIGURE {json}`` line:
what was measured, this project's value, the reference measured in the same run (or none), the
goal in words, and whether it was met. ``bench/run`` reads those lines from every bench.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

PREFIX = "FIGURE "


@dataclass(frozen=True)
class Figure:
    bench: str
    name: str
    ours: float
    unit: str
    goal: str
    met: bool | None
    """None: a figure measured and shown, with no goal to meet."""
    reference: float | None = None
    """The baseline measured in the same run (a bare insert, raw paho, biip...)."""
    reference_name: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.reference if self.reference else None

    def line(self) -> str:
        return PREFIX + json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def parse(cls, line: str) -> Figure | None:
        """The figure a ``FIGURE`` line carries; None for any other line (or a broken one)."""
        if not line.startswith(PREFIX):
            return None
        try:
            return cls(**json.loads(line[len(PREFIX) :]))
        except (ValueError, TypeError):
            return None


def emit(
    bench: str,
    name: str,
    ours: float,
    unit: str,
    goal: str,
    met: bool | None,
    reference: float | None = None,
    reference_name: str = "",
) -> None:
    """Print one figure for ``bench/run`` (flushed: a bench that dies later keeps what it measured)."""
    print(Figure(bench, name, ours, unit, goal, met, reference, reference_name).line(), flush=True)


def stock_paho() -> None:
    """paho as it ships, for a reference measured beside the project: undoes, for the clients made
    from now on, the lean properties objects ``station.mqtt.make_client`` puts in place (the
    project's clients made next put them back)."""
    import paho.mqtt._packet
    import paho.mqtt.client
    from paho.mqtt.properties import Properties

    for module in (paho.mqtt._packet, paho.mqtt.client):
        setattr(module, "Properties", Properties)  # noqa: B010
