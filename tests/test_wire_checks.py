"""The wire contract's field checks, one branch at a time, with the exact words each refusal says.

``station.wire`` builds a checker per field once (``_checker``, from the ``_f`` declarations) and
caches it; these tests call both directly, so each check is exercised fresh, and give every
boundary as a literal (200 characters, 64 keys, 2**63 - 1), not read back from the code.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING
from typing import Any

import pytest

from station import wire
from station.wire import BadMessage, DeliveryLine, PatientIdentity, PatientMessage, Topics, tc_kimlik_ok


def refusal(check: Any, value: Any) -> str:
    with pytest.raises(BadMessage) as e:
        check(value)
    return e.value.reason


def test_field_declarations_carry_their_limits() -> None:
    plain = wire._f()
    assert plain.default is MISSING
    assert dict(plain.metadata) == {"max_len": 200, "pattern": None, "lo": None, "hi": None, "doc": ""}
    digits = re.compile(r"\d+")
    full = wire._f(max_len=5, pattern=digits, lo=1, hi=9, default=7, doc="seven")
    assert full.default == 7
    assert dict(full.metadata) == {"max_len": 5, "pattern": digits, "lo": 1, "hi": 9, "doc": "seven"}
    assert wire._f(default=None).default is None


def test_optional_fields_say_which_field() -> None:
    check = wire._checker("T.x", int | None, {"lo": 0})
    assert check(None) is None and check(3) == 3
    assert refusal(check, -1) == "T.x: -1 is out of range"
    assert refusal(check, "3") == 'T.x: must be an integer, not "3"'


def test_enums_and_booleans() -> None:
    check = wire._checker("T.op", wire.Operation, {})
    assert check("use") is wire.Operation.USE
    assert refusal(check, "USE") == 'T.op: "USE" is not one of receipt, dispatch, use, return, deactivation'
    assert refusal(check, 1).startswith("T.op: 1 is not one of")
    assert refusal(check, "İ").startswith('T.op: "\\u0130" is not one of')  # shown in ASCII: a log line stays one
    flag = wire._checker("T.ok", bool, {})
    assert flag(True) is True and flag(False) is False
    for bad, shown in ((1, "1"), (0, "0"), ("true", '"true"'), (None, "null")):
        assert refusal(flag, bad) == f"T.ok: must be true or false, not {shown}"


def test_integers_without_limits_are_what_a_bigint_holds() -> None:
    check = wire._checker("T.n", int, {})
    assert check(-(2**63 - 1)) == -(2**63 - 1) and check(2**63 - 1) == 2**63 - 1 and check(0) == 0
    assert refusal(check, 2**63) == "T.n: 9223372036854775808 is out of range"
    assert refusal(check, -(2**63)) == "T.n: -9223372036854775808 is out of range"
    assert refusal(check, 1.5) == "T.n: must be an integer, not 1.5"
    assert refusal(check, True) == "T.n: must be an integer, not true"
    bounded = wire._checker("T.q", int, {"lo": 1, "hi": 10})
    assert bounded(1) == 1 and bounded(10) == 10
    assert refusal(bounded, 0) == "T.q: 0 is out of range" and refusal(bounded, 11) == "T.q: 11 is out of range"


def test_numbers_take_finite_floats_and_integers() -> None:
    check = wire._checker("T.s", float, {"lo": 0})
    assert check(1.5) == 1.5 and check(2) == 2 and check(0.0) == 0.0
    assert refusal(check, math.nan) == "T.s: must be a finite number"
    assert refusal(check, math.inf) == "T.s: must be a finite number"
    assert refusal(check, -0.5) == "T.s: -0.5 is out of range"
    assert refusal(check, "1") == 'T.s: must be a number, not "1"'
    assert refusal(check, False) == "T.s: must be a number, not false"


def test_strings_default_to_200_characters_without_control_characters() -> None:
    check = wire._checker("T.t", str, {})
    assert check("a" * 200) == "a" * 200 and check("") == "" and check("İş ü") == "İş ü"
    assert refusal(check, "a" * 201) == "T.t: longer than 200 characters"
    assert refusal(check, "a\nb") == 'T.t: "a\\nb" is not a valid value'
    assert refusal(check, "\x00") == 'T.t: "\\u0000" is not a valid value'
    assert refusal(check, 5) == "T.t: must be a string, not 5"
    digits = wire._checker("T.d", str, {"max_len": 4, "pattern": re.compile(r"\d+")})
    assert digits("1234") == "1234"
    assert refusal(digits, "12345") == "T.d: longer than 4 characters"
    assert refusal(digits, "12a") == 'T.d: "12a" is not a valid value'
    assert refusal(digits, "") == 'T.d: "" is not a valid value'


def test_lists_count_items_and_check_each_at_200_characters() -> None:
    check = wire._checker("T.l", tuple[str, ...], {"max_len": 300})
    assert check(["x" * 200] * 300) == ("x" * 200,) * 300
    assert refusal(check, ["x"] * 301) == "T.l: more than 300 items"
    assert refusal(check, ["x" * 201]) == "T.l[]: longer than 200 characters"
    assert refusal(check, "abc") == 'T.l: must be a list, not "abc"'
    assert refusal(check, ("a",)) == 'T.l: must be a list, not ["a"]'
    plain = wire._checker("T.m", tuple[int, ...], {})
    assert plain([1] * 200) == (1,) * 200
    assert refusal(plain, [1] * 201) == "T.m: more than 200 items"
    messages = wire._checker("T.r", tuple[wire.Recall, ...], {})
    assert messages([{"gtin": "08699530000011"}]) == (wire.Recall(gtin="08699530000011"),)
    assert refusal(messages, [{"batch": "B"}]) == "Recall.gtin: required"


def test_objects_hold_64_keys_of_64_characters() -> None:
    check = wire._checker("T.o", dict[str, bool], {})
    full = {f"k{i}": i % 2 == 0 for i in range(64)}
    assert check(full) == full
    assert check({"s" * 64: True}) == {"s" * 64: True}
    assert refusal(check, {**full, "one more": True}) == "T.o: must be an object of at most 64 keys"
    assert refusal(check, ["k"]) == "T.o: must be an object of at most 64 keys"
    assert refusal(check, {"s" * 65: True}) == "T.o{}: longer than 64 characters"
    assert refusal(check, {"a\n": True}) == 'T.o{}: "a\\n" is not a valid value'
    assert refusal(check, {"a": 1}) == "T.o[]: must be true or false, not 1"


def test_a_field_type_the_contract_cannot_check_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match=r"^T\.z: unsupported field type <class 'bytes'>$"):
        wire._checker("T.z", bytes, {})


def test_a_lot_line_needs_a_quantity_of_one_or_more() -> None:
    assert DeliveryLine.from_dict({"di": "08699530000011", "quantity": 1}).count == 1
    assert DeliveryLine(di="08699530000011", serials=("A",)).count == 1
    with pytest.raises(BadMessage) as e:
        DeliveryLine.from_dict({"di": "08699530000011", "quantity": 0})
    assert e.value.reason == "DeliveryLine: neither serials nor a quantity"


AT = "2026-11-23T10:00:00.000Z"


@pytest.mark.parametrize(
    ("tur", "field", "value"),
    [
        (PatientIdentity.TC_KIMLIK, "tkn", "10000000146"),
        (PatientIdentity.YABANCI_KIMLIK, "ykn", "99123456789"),
        (PatientIdentity.PASAPORT, "pan", "U12345678"),
        (PatientIdentity.DIGER, "dta", "acil, kimliksiz"),
    ],
)
def test_a_patient_identity_needs_its_own_number(tur: PatientIdentity, field: str, value: str) -> None:
    good = PatientMessage.from_dict({"id": "v1", "at": AT, "tur": tur, field: value})
    assert good.fields() == {"TUR": str(tur), field.upper(): value}
    with pytest.raises(BadMessage) as e:
        PatientMessage.from_dict({"id": "v1", "at": AT, "tur": tur})
    assert e.value.reason == f"PatientMessage: {tur} without {field}"


def test_patients_without_a_number_and_the_tc_kimlik_check() -> None:
    for tur in (PatientIdentity.YENI_DOGAN, PatientIdentity.KIMLIGI_BELIRSIZ):
        assert PatientMessage.from_dict({"id": "v1", "at": AT, "tur": tur}).fields() == {"TUR": str(tur)}
    with pytest.raises(BadMessage) as e:
        PatientMessage.from_dict({"id": "v1", "at": AT, "tur": PatientIdentity.TC_KIMLIK, "tkn": "10000000147"})
    assert e.value.reason == "PatientMessage.tkn: not a valid T.C. kimlik numarası"
    # published examples of valid numbers, and near misses of each rule
    assert tc_kimlik_ok("10000000146") and tc_kimlik_ok("12345678950") and tc_kimlik_ok("11111111110")
    for bad in ("10000000147", "10000000156", "01234567890", "1000000014", "100000001466", "1000000014a"):
        assert not tc_kimlik_ok(bad), bad


def test_topics_outside_the_prefix_are_not_the_contracts() -> None:
    topics = Topics("karekod/v1")
    assert topics.parse("karekod/v1/stations/line-1/events") == ("line-1", wire.Kind.EVENTS)
    assert topics.parse("karekod/v1/central/status/sub-a") == ("sub-a", None)
    for foreign in (
        "other/v1/stations/line-1/events",
        "karekod/v1x/stations/line-1/events",
        "stations/line-1/events",
        "karekod/v1",
        "x/karekod/v1/stations/line-1/events",
        "abcdefghij/stations/line-1/events",  # a prefix of the same length is still not the prefix
    ):
        with pytest.raises(BadMessage):
            topics.parse(foreign)


def test_an_order_id_is_the_same_from_both_wings_and_never_two_orders_alike() -> None:
    # sha1 of buyer, US, document (the station derives it from a tote label alone)
    assert wire.order_id("8680000000009", "SIP-1") == "ord-3d8f971ceef96a4c"
    assert wire.order_id("8680000000009", "SIP-2") == "ord-692a2277f5a64a96"
    assert wire.order_id("868000000000", "9SIP-1") == "ord-30257a31fe37fbe8"  # the separator keeps them apart
