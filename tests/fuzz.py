"""Fuzzing in one place: what any input may do to each pure state machine of the station.

Each ``check_*`` takes one random input and asserts what must hold for every input: no exception,
and no *invalid accept* (an accepted reading whose fields break the standards, checked here with
code independent of the reader's). ``tests/test_fuzz.py`` runs them under hypothesis in the suite;
``bench/bench_fuzz.py`` runs a million inputs with timing and memory.

Every input is a ``bytes`` value, so one random source serves all targets.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import random
import re
from collections.abc import Callable
from datetime import date

from station.edge.scanners.framing import Framer
from station.edge.scanners.keymaps import EV_KEY, EV_SYN, KEYS
from station.edge.scanners.keys import KeyDecoder
from station.gs1.reader import Profile, read
from station.gs1.udi import Issuer
from station.gs1.verdict import Policy, judge
from station.wire import MESSAGES, BadMessage, EventMessage, parse_events

YEAR = 2026
CSET82 = re.compile(r'[!"%&\'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}')
TODAY = date(YEAR, 6, 1)


def gs1_check_digit_ok(digits: str) -> bool:
    """Mod-10 check of a GS1 key, written out here independently of the reader."""
    total = 0
    for i, c in enumerate(reversed(digits[:-1])):
        total += int(c) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10 == int(digits[-1])


def check_reader(raw: bytes) -> None:
    """Every profile: a reading or one reason; an accepted one holds only valid fields."""
    for profile in Profile:
        reading = read(raw, profile, YEAR)
        assert (reading.reason is None) == reading.ok
        if not reading.ok:
            continue
        k = reading.karekod
        assert k is not None
        if k.gtin is not None:
            assert len(k.gtin) == 14 and k.gtin.isdigit() and gs1_check_digit_ok(k.gtin), k.gtin
        for value in (k.serial, k.batch):
            assert value is None or (len(value) <= 20 and value.isprintable()), value
        if profile is Profile.ITS:
            assert k.issuer is Issuer.GS1 and k.gtin and k.serial and k.batch and k.expiry, reading
            assert CSET82.fullmatch(k.serial) and CSET82.fullmatch(k.batch)
        if profile is Profile.UTS:
            assert k.di and (k.serial or k.batch), reading
        if k.expiry is not None:
            assert calendar.monthrange(k.expiry.year, k.expiry.month)[1] >= k.expiry.day
        verdict = judge(raw, Policy(profile), TODAY)
        assert verdict.ok == (reading.ok and (k.expiry is None or k.expiry >= TODAY))


#: Keys a scanner might press, weighted toward the ones that carry data and state.
_KEYS = [*range(2, 14), *range(16, 28), *range(30, 42), *range(43, 54), 28, 15, 29, 42, 54, 56, 100, 58, 69]
_KEYS += [KEYS[k] for k in ("KEY_KP0", "KEY_KP2", "KEY_KP9", "KEY_F12", "KEY_F5", "KEY_KPENTER", "KEY_102ND")]


def hid_events(raw: bytes) -> list[tuple[int, int, int, int, int]]:
    """Bytes to an evdev stream: key downs/ups, repeats, SYN_REPORT, SYN_DROPPED, odd codes, gaps."""
    events = []
    t = 1_700_000_000.0
    for i in range(0, len(raw) - 1, 2):
        a, b = raw[i], raw[i + 1]
        t += (b % 16) * 0.004 if a % 7 else 0.3
        sec, usec = int(t), int((t % 1) * 1e6)
        if a % 23 == 0:
            events.append((sec, usec, EV_SYN, 3, 0))  # SYN_DROPPED
        elif a % 5 == 0:
            events.append((sec, usec, EV_SYN, 0, 0))
        else:
            code = _KEYS[b % len(_KEYS)] if a % 11 else b
            events.append((sec, usec, EV_KEY, code, a % 3))
    return events


def check_hid(raw: bytes) -> None:
    """Any event stream, any layout: frames of bounded length, never an exception."""
    events = hid_events(raw)
    for layout in ("us", "tr-q", "tr-f", "de", "fr"):
        decoder = KeyDecoder(layout, KEYS["KEY_F12"] if raw[:1] == b"\x01" else None, idle=0.1, max_length=128)
        frames = []
        for sec, usec, ev_type, code, value in events:
            frames += decoder.feed(ev_type, code, value, sec + usec / 1e6)
        last = decoder.flush(1e12)
        frames += [last] if last else []
        for frame in frames:
            assert frame.terminated_by in ("suffix", "idle", "overflow", "unmapped", "cut")
            assert len(frame.raw.decode("utf-8")) <= 128 + 2  # max_length, a hole marker and a suffix
            check_reader(frame.raw)


def check_framing(raw: bytes) -> None:
    """Bytes in random chunks and gaps: every byte comes out at most once, in order, scans bounded."""
    for suffix in ("auto", "cr", "lf", "crlf", "tab", "none"):
        framer = Framer(suffix, idle=0.05, max_length=64)
        out = bytearray()
        now, i = 0.0, 0
        frames = []
        while i < len(raw):
            size = 1 + raw[i] % 9
            chunk = raw[i : i + size]
            now += 0.1 if raw[i] % 5 == 0 else 0.001
            frames += framer.feed(chunk, now)
            i += size
        last = framer.flush(now + 1)
        frames += [last] if last else []
        for frame in frames:
            assert len(frame.raw) <= 64 + 2, (suffix, frame)
            out += frame.raw
        assert len(out) <= len(raw)


def check_wire(raw: bytes) -> None:
    """Every message kind: a typed message or one BadMessage, for bytes and for any JSON."""
    payloads = [raw]
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        payloads.append(json.dumps(json.loads(raw)).encode())
    payloads.append(b'{"events":[' + raw + b"]}")  # inside an event batch, as stations send a backlog
    for kind in MESSAGES.values():
        for payload in payloads:
            try:
                kind.from_json(payload)
            except BadMessage as e:
                assert e.reason
    for payload in payloads:
        try:
            taken, refused = parse_events(payload)
        except BadMessage as e:
            assert e.reason
        else:
            assert all(isinstance(e, EventMessage) for _, e in taken) and all(refused)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "reader": check_reader,
    "hid": check_hid,
    "framing": check_framing,
    "wire": check_wire,
}

#: Seeds the mutator starts from: one valid input of each kind the targets read.
SEEDS = [
    b"]d20108699536090122\x1d21ABCDEF12345\x1d17260131\x1d10LOT123\r\n",
    b"010869953609012221ABC1726013110LOT1",
    b"+A99912345/$$52701510X3/16D20111212/S77DE1G450",
    b"[)>\x1e06\x1d9N110375286414\x1d1T12345ABCD\x1dD270600\x1dS12345ABCDEF98765\x1e\x04",
    b"=/A9997AB3456T0123=G12341765432170=>027151&,10000000000005434RZ",
    b"https://id.gs1.org/01/09506000134352/10/AB%2F1/21/S-9?17=271231",
    b'{"schema":"karekod.event/1","id":"x","seq":1,"ok":true,"results":[{"event_id":"e","ok":false}]}',
]


def mutate(rng: random.Random) -> bytes:
    """A seed with a few bytes changed, added or removed; or plain random bytes."""
    if rng.random() < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
    data = bytearray(rng.choice(SEEDS))
    for _ in range(rng.randint(1, 4)):
        op, i = rng.random(), rng.randrange(len(data) + 1)
        if op < 0.4 and i < len(data):
            data[i] = rng.choice(b"0123456789AZaz\x1d\x1e\x04/+$%=&]?#")
        elif op < 0.7:
            data.insert(i, rng.randrange(256))
        elif i < len(data):
            del data[i]
    return bytes(data)
