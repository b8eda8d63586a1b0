"""Scan streams for end-to-end tests, each scan with the verdict the station must give it."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

GS = "\x1d"
REREAD = "reread"


def check_digit(body: str) -> int:
    """GS1 mod-10 (GenSpecs 7.9.1), written here on purpose: tests never use the code under test
    to make their expected values."""
    weights = [3 if i % 2 == 0 else 1 for i in range(len(body))]
    total = sum(int(d) * w for d, w in zip(reversed(body), weights, strict=True))
    return (10 - total % 10) % 10


def gtin(n: int) -> str:
    body = f"0869953{n:06d}"
    return body + str(check_digit(body))


@dataclass
class Unit:
    gtin: str
    serial: str
    expiry: str = "301231"
    batch: str = "LOT1"

    def fields(self) -> dict[str, str]:
        return {"01": self.gtin, "21": self.serial, "17": self.expiry, "10": self.batch}


def render(unit: Unit, variant: int) -> str:
    """One of 192 different raw forms of the same unit: AI order x prefix x suffix."""
    orders = list(itertools.permutations(["01", "21", "17", "10"]))
    order = orders[variant % 24]
    prefix = ["", "]d2", GS, "]d2" + GS][(variant // 24) % 4]
    suffix = ["", "\r"][(variant // 96) % 2]
    values = unit.fields()
    out = ""
    for i, ai in enumerate(order):
        out += ai + values[ai]
        if ai in ("21", "10") and i < 3:
            out += GS
    return prefix + out + suffix


def stream(n: int, seed: int = 7, serial_prefix: str = "S") -> list[tuple[str, str | None]]:
    """``n`` scans: (raw, expected reason) with None = accept, REREAD = no event at all."""
    rng = random.Random(seed)
    out: list[tuple[str, str | None]] = []
    accepted: list[tuple[Unit, int]] = []  # unit, next variant to use
    counter = itertools.count(1)
    for _ in range(n):
        r = rng.random()
        if r < 0.08 and out and out[-1][1] != REREAD:
            out.append((out[-1][0], REREAD))
        elif r < 0.18 and accepted:
            i = rng.randrange(len(accepted))
            unit, variant = accepted[i]
            accepted[i] = (unit, variant + 1)
            out.append((render(unit, variant), "duplicate"))
        elif r < 0.30:
            k = next(counter)
            p = serial_prefix  # keeps bad scans of different streams apart
            bad = [
                (f"garbage-{p}{k}", "not_gs1"),
                (f"01{gtin(k)[:-1]}{(int(gtin(k)[-1]) + 1) % 10}21B{p}{k}{GS}1730123110L", "bad_check_digit"),
                (f"01{gtin(k)}21E{p}{k}{GS}1720013110L", "expired"),
                (f"01{gtin(k)}21M{p}{k}{GS}17301231", "missing_field"),
                (f"01{gtin(k)}21C{p} {k}{GS}1730123110L", "invalid_character"),
                (f"01{gtin(k)}21D{p}{k}{GS}1730130110L", "invalid_date"),
            ]
            out.append(rng.choice(bad))
        else:
            k = next(counter)
            unit = Unit(gtin(k % 50), f"{serial_prefix}{k:07d}", batch=f"B{k % 7}")
            out.append((render(unit, 0), None))
            accepted.append((unit, 1))
    return out


def sscc(n: int, prefix: str = "086800000") -> str:
    """An 18-digit SSCC (extension 0, a GS1 Turkey company prefix, serial reference ``n``)."""
    body = f"0{prefix}{n:0{16 - len(prefix)}d}"
    return body + str(check_digit(body))
