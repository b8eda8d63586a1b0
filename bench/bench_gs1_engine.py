"""The ``gs1`` profile against the GS1 Syntax Engine on random and mutated scans (issue 11).

Needs a built engine (https://github.com/gs1/gs1-syntax-engine, ``make -C src/c-lib lib``); the
engine is loaded with ctypes, nothing of it is copied here:

    .venv/bin/python bench/bench_gs1_engine.py /path/to/libgs1encoders.so [count] [seed]

Scans come from the suite's known-answer vectors, mutated (a character changed, added or
dropped, GS included), and from random element strings built from the AI table (values of the
right shape, check digits and dates mostly right, AI 01 mostly present). Prints the agreement and
every disagreement.
"""

from __future__ import annotations

import ctypes
import json
import random
import sys
import time
from pathlib import Path

from figures import emit

from station.gs1.ai_table import AIS
from station.gs1.digital_link import is_digital_link
from station.gs1.linters import check_digit
from station.gs1.reader import Profile, read

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "gs1_syntax_engine_vectors.json"
NOISE = "0123456789" * 4 + "ABCXYZabc-/%=_!\x1d"


class Engine:
    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        lib.gs1_encoder_init_ex.restype = ctypes.c_void_p
        lib.gs1_encoder_init_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.gs1_encoder_setScanData.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.gs1_encoder_setScanData.restype = ctypes.c_bool
        lib.gs1_encoder_getErrMsg.argtypes = [ctypes.c_void_p]
        lib.gs1_encoder_getErrMsg.restype = ctypes.c_char_p
        self.lib, self.ctx = lib, lib.gs1_encoder_init_ex(None, None)

    def verdict(self, scan: str) -> tuple[bool, str]:
        ok = bool(self.lib.gs1_encoder_setScanData(self.ctx, scan.encode("latin-1")))
        return ok, (self.lib.gs1_encoder_getErrMsg(self.ctx) or b"").decode("latin-1")


def value_for(ai: str, rnd: random.Random) -> str:
    out = ""
    for c in AIS[ai].components:
        if c.optional and rnd.random() < 0.5:
            break
        n = rnd.randint(c.min, c.max)
        v = "".join(rnd.choice("0123456789" if c.cset == "N" else "0123456789ABCZa-") for _ in range(n))
        if "csum" in c.linters and v and rnd.random() < 0.8:
            v = v[:-1] + str(check_digit(v[:-1]))
        if any(name.startswith("yy") for name in c.linters) and rnd.random() < 0.8:
            date = "20260131" if any(name.startswith("yyyy") for name in c.linters) else "260131"
            v = date + v[len(date) :]
        out += v
    return out


def scan_for(rnd: random.Random, seeds: list[str]) -> str:
    if rnd.random() < 0.1:  # a Digital Link built from random fields
        body = "".join(rnd.choice("0123456789") for _ in range(13))
        path = f"/01/{body}{check_digit(body)}"
        if rnd.random() < 0.5:
            path += "/10/" + "".join(rnd.choice("AB1%2F-") for _ in range(rnd.randint(1, 6)))
        if rnd.random() < 0.5:
            path += "/21/" + "".join(rnd.choice("XY9") for _ in range(rnd.randint(0, 4)))
        attributes = rnd.sample(["17", "11", "3103", "99", "10"], rnd.randint(0, 2))
        query = "&".join(f"{ai}={value_for(ai, rnd)}" for ai in attributes)
        return "]Q1https://id.example.com" + path + (f"?{query}" if query else "")
    if rnd.random() < 0.4:
        chars = list(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 3)):
            i, op = rnd.randrange(3, max(4, len(chars))), rnd.random()
            if op < 0.4 and i < len(chars):
                chars[i] = rnd.choice(NOISE)
            elif op < 0.7:
                chars.insert(i, rnd.choice(NOISE))
            elif i < len(chars):
                del chars[i]
        return "".join(chars)
    parts = []
    if rnd.random() < 0.7:
        body = "".join(rnd.choice("0123456789") for _ in range(13))
        parts.append(f"01{body}{check_digit(body)}")
    ais = list(AIS)
    for _ in range(rnd.randint(1, 4)):
        ai = rnd.choice(ais[:40] if rnd.random() < 0.6 else ais)
        parts.append(ai + value_for(ai, rnd))
        if AIS[ai].fnc1:
            parts.append("\x1d")
    if parts[-1] == "\x1d" and rnd.random() < 0.8:
        parts.pop()
    return "]d2" + "".join(parts)


def main() -> None:
    engine = Engine(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rnd = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    seeds = [v["scan"] for v in json.loads(VECTORS.read_text())["vectors"]]
    agree = accepted = plain = 0
    differ: list[tuple[str, bool, str, str]] = []
    started = time.perf_counter()
    for _ in range(count):
        scan = scan_for(rnd, seeds)
        if "^" in scan or "|" in scan:  # the engine's own escapes in its text form
            agree += 1
            continue
        if scan[:3] in ("]Q1", "]d1", "]J0") and not is_digital_link(scan[3:]):
            plain += 1  # plain text in a non-GS1 symbol: the engine keeps it as text, a station refuses it
            agree += 1
            continue
        ok, message = engine.verdict(scan)
        ours = read(scan, Profile.GS1, time.localtime().tm_year)
        accepted += ok
        if ours.ok == ok:
            agree += 1
        else:
            differ.append((scan, ok, message, f"{ours.reason}: {ours.message}"))
    took = time.perf_counter() - started
    print(
        f"{count:,} scans in {took:.1f} s: agree {agree:,} ({agree / count:.3%}); engine accepted {accepted:,}; "
        f"{plain:,} plain-text scans left out (not GS1 data: the station refuses them by design)"
    )
    emit(
        "gs1 engine",
        f"{count:,} random scans: same verdict as the GS1 Syntax Engine",
        agree / count * 100,
        "%",
        "100 %",
        agree == count,
    )
    for scan, ok, message, ours in differ[:50]:
        print(f"  {scan!r}: engine {'accepts' if ok else 'refuses: ' + message}; station {ours}")


if __name__ == "__main__":
    main()
