"""Each check routine of the GS1 Barcode Syntax Dictionary against the reference's own unit tests.

``tests/data/gs1_syntax_engine_linters.json`` holds the inputs of the GS1 Syntax Engine's linter
unit tests (``src/c-lib/syntax/lint_*.c``) with the engine's verdict on each; the station's routines
(``station/gs1/linters.py``, ``coupons.py``) and its character-set checks must give the same.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from station.gs1 import linters
from station.gs1.elements import ROUTINES
from station.gs1.reasons import Reason

DATA = json.loads((Path(__file__).parent / "data" / "gs1_syntax_engine_linters.json").read_text())
VECTORS = DATA["vectors"]
CSETS = {"cset82": "X", "cset39": "Y", "cset64": "Z", "csetnumeric": "N"}
YEAR = 2026


def verdict(linter: str, data: str) -> tuple[Reason, str] | None:
    if linter in CSETS:
        return linters.cset(CSETS[linter], data)
    return ROUTINES[linter](data, YEAR)


@pytest.mark.parametrize("linter", sorted({v[0] for v in VECTORS}))
def test_each_routine_agrees_with_the_reference(linter: str) -> None:
    cases = [(data, ok, source) for name, data, ok, source in VECTORS if name == linter]
    wrong = [(source, data, ok) for data, ok, source in cases if (verdict(linter, data) is None) is not ok]
    assert not wrong, wrong[:5]
    for data, ok, _ in cases:
        problem = verdict(linter, data)
        if not ok:
            assert problem is not None and isinstance(problem[0], Reason) and problem[1]


def test_the_vectors_cover_every_routine_the_dictionary_names() -> None:
    named = set(ROUTINES) | set(CSETS)
    counts = Counter(v[0] for v in VECTORS)
    assert named <= set(counts), named - set(counts)
    assert len(VECTORS) > 5000 and sum(1 for v in VECTORS if v[2]) > 1000
