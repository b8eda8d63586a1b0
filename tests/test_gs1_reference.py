"""The ``gs1`` profile against the GS1 Syntax Engine, the reference implementation.

``tests/data/gs1_syntax_engine_vectors.json`` holds the engine's own unit-test inputs as scans,
with the engine's verdict on each (see its ``source``). ``bench/bench_gs1_engine.py`` runs the same
comparison on random and mutated scans against a built engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from station.gs1.elements import length_range
from station.gs1.reader import Profile, read
from station.gs1.reasons import Reason

DATA = json.loads((Path(__file__).parent / "data" / "gs1_syntax_engine_vectors.json").read_text())
VECTORS = DATA["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["source"] for v in VECTORS])
def test_same_verdict_as_the_reference(vector: dict[str, object]) -> None:
    reading = read(str(vector["scan"]), Profile.GS1, 2026)
    assert reading.ok is vector["ok"], (vector["engine"], reading.reason, reading.message)
    if not reading.ok:
        assert isinstance(reading.reason, Reason) and reading.message


def test_the_vectors_cover_both_verdicts_and_every_fault_class() -> None:
    assert len(VECTORS) >= 250
    assert 50 <= sum(bool(v["ok"]) for v in VECTORS) <= len(VECTORS) - 150
    reasons = {read(str(v["scan"]), Profile.GS1, 2026).reason for v in VECTORS}
    assert {
        Reason.NOT_GS1,
        Reason.INVALID_CHARACTER,
        Reason.INVALID_LENGTH,
        Reason.BAD_CHECK_DIGIT,
        Reason.INVALID_DATE,
        Reason.MISSING_FIELD,
        Reason.INVALID_VALUE,
        Reason.INVALID_COMBINATION,
    } <= reasons


# GS1 General Specifications 24.0, section 3.2 (AI formats), written out by hand: the shortest and
# longest value of AIs whose format has optional parts (the old table counted those as required).
SPEC_LENGTHS = {
    "253": (13, 30),  # N13 + [X..17]
    "255": (13, 25),  # N13 + [N..12]
    "423": (3, 15),  # N3 + [N..12]
    "4330": (6, 7),  # N6 + [-]
    "7007": (6, 12),  # N6 + [N6]
    "7011": (6, 10),  # N6 + [N4]
    "8003": (14, 30),  # N14 + [X..16]
    "8008": (8, 12),  # N8 + [N..4]
    "17": (6, 6),
    "21": (1, 20),
}


@pytest.mark.parametrize(("ai", "lengths"), SPEC_LENGTHS.items())
def test_optional_parts_are_optional(ai: str, lengths: tuple[int, int]) -> None:
    assert length_range(ai) == lengths


@pytest.mark.parametrize(
    ("scan", "reason"),
    [
        ("]d210ABC", Reason.MISSING_FIELD),  # a lone batch: GS1 wants (01), (02)... with it
        ("]d221ABC", Reason.MISSING_FIELD),  # (21) without (01)
        ("]d20109501101530003\x1d0209501101530003\x1d3710", Reason.INVALID_COMBINATION),  # (01) with (02)
        ("]d28003012345678901231", Reason.BAD_CHECK_DIGIT),  # GRAI's inner GS1 key check digit
        ("]d20109501101530003\x1d7003260231\x1d", Reason.INVALID_DATE),  # no 31 February
        ("]d20109501101530003\x1d\x1d10ABC", Reason.NOT_GS1),  # doubled GS
        ("]d212345670", Reason.INVALID_DATE),  # ]d2 says GS1: (12) 345670, never an EAN-8
        ("12345670", Reason.NOT_GS1),  # no identifier: an EAN-8, said so
    ],
)
def test_faults_the_old_reader_missed(scan: str, reason: Reason) -> None:
    r = read(scan, Profile.GS1, 2026)
    assert (r.ok, r.reason) == (False, reason), r.message
