"""Fuzzing in the suite (issue 14): every pure state machine against any input (tests/fuzz.py).

The reader under every profile and issuer, the HID key decoder on every layout, serial framing,
and every wire message kind: no exception, no invalid accept. bench/bench_fuzz.py runs a million.
"""

from __future__ import annotations

import random

import fuzz
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

INPUTS = (
    st.binary(max_size=300)
    | st.sampled_from(fuzz.SEEDS)
    | st.integers(0, 2**32).map(lambda n: fuzz.mutate(random.Random(n)))
)


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
@settings(max_examples=250, deadline=None)
@given(raw=INPUTS)
def test_no_input_breaks_a_state_machine(target: str, raw: bytes) -> None:
    fuzz.TARGETS[target](raw)


def test_the_seeds_are_what_they_claim() -> None:
    from station.gs1.reader import Profile, read

    assert read(fuzz.SEEDS[0], Profile.ITS, 2026).ok
    assert all(read(s, Profile.UTS, 2026).ok for s in fuzz.SEEDS[2:6])
