# ruff: noqa: E501  (the pinned messages are kept whole, as the reader writes them)
"""Known answers for the reader where no other test looked: each input below is one that a
mutant of ``station/gs1/reader.py`` (or of the device labels' readers it calls, ``udi.py`` and
``digital_link.py``) read differently from the reader (found by
``bench/mutant_inputs.py``, which runs every survivor of ``bench/bench_mutation.py`` over a corpus
of karekods with lost, doubled and stray separators, symbology prefixes, suffixes, UDIs of the
other agencies and Digital Links). Each reading was checked by hand against the rules it shows: which split of a
scan without separators wins or makes it ambiguous, where the SSCC or the missing-field message
applies, the GS1 century rule (the same code read in 2020 and in 2026), the strict ``gs1``
profile's separators, what ``plain`` gives for bytes that are not UTF-8, HIBC's date formats
(an hour of 24, day 366 of a year that is not a leap year, a secondary alone ending in its link
character) and which rule of the Digital Link standard a link breaks.

A reading is pinned whole: reason, message and every field of the karekod.
"""

from __future__ import annotations

from typing import Any

import pytest

from station.gs1.reader import Profile, Reading, plain, read


def whole(r: Reading) -> tuple[Any, ...]:
    k = r.karekod
    unit = None
    if k is not None:
        unit = (
            k.gtin,
            k.serial,
            k.batch,
            k.expiry and k.expiry.isoformat(),
            k.production_date and k.production_date.isoformat(),
            k.sscc,
            k.recovered,
            k.symbology,
            k.issuer.value,
            k.di,
            k.udi,
            tuple(k.fields),
        )
    return (r.reason.value if r.reason else None, r.message, unit)


# fmt: off
READINGS = [
    (']d1https://id.gs1.org/01/08699536090122', 'uts', (2026, 2020), ('missing_field', 'Missing serial (21) or batch (10) needed by the uts profile.', ('08699536090122', None, None, None, None, None, False, ']d1', 'gs1', '08699536090122', None, (('01', '08699536090122'),)))),
    (']d1&,1000000000000XYZ123', 'uts', (2026, 2020), ('missing_field', 'ISBT 128 code without its device identifier (the primary).', (None, None, '000000000000XYZ123', None, None, None, False, ']d1', 'iccbba', None, '&,1000000000000XYZ123', (('035', '000000000000XYZ123'),)))),
    ('\x1d018460431399823221243B17251022108ZbC\t', 'uts', (2026, 2020), ('ambiguous', "Separators lost; the scan reads as (01)84604313998232(21)243B(17)251022(10)8ZbC or (01)84604313998232(21)243B1725(10)22108ZbC. Rescan or fix the scanner's GS setting.", None)),
    (']d2\x1d%y%m\x04', 'gs1', (2026, 2020), ('not_gs1', 'A separator (GS) where an application identifier should be.', None)),
    ('$$+3270531SE9', 'uts', (2026, 2020), ('not_udi', "Not a UDI of GS1, HIBCC, ICCBBA or IFA: starts with '$$+3270531SE…'.", None)),
    ('[)>\x1e06\x1d8P08699536090122\x1dD760101\x1e\x04', 'uts', (2026,), ('missing_field', 'IFA code without a serial or lot number, which ÜTS needs.', ('08699536090122', None, None, '2076-01-01', None, None, False, None, 'ifa', '08699536090122', '[)>\x1e06\x1d8P08699536090122\x1dD760101\x1e\x04', (('8P', '08699536090122'), ('D', '760101'))))),
    ('[)>\x1e06\x1d8P08699536090122\x1dD760101\x1e\x04', 'uts', (2020,), ('missing_field', 'IFA code without a serial or lot number, which ÜTS needs.', ('08699536090122', None, None, '1976-01-01', None, None, False, None, 'ifa', '08699536090122', '[)>\x1e06\x1d8P08699536090122\x1dD760101\x1e\x04', (('8P', '08699536090122'), ('D', '760101'))))),
    ('\x1d019747614196359121C69A_X94&B.1a_5__17321000\x1d', 'uts', (2026, 2020), (None, 'Karekod read from a scan with lost separators.', ('97476141963591', 'C69A_X94&B.1a_5__', None, '2032-10-31', None, None, True, None, 'gs1', '97476141963591', None, (('01', '97476141963591'), ('21', 'C69A_X94&B.1a_5__'), ('17', '321000'))))),
    (']C0', 'uts', (2026, 2020), ('not_gs1', 'Scanned a plain Code 128 barcode.', None)),
    ('4008', 'its', (2026, 2020), ('missing_field', 'Missing GTIN (01), serial (21), expiry (17), batch (10) needed by the its profile.', (None, None, None, None, None, None, False, None, 'gs1', None, None, (('400', '8'),)))),
    ('$$3270531OT1', 'uts', (2026, 2020), ('not_udi', "Not a UDI of GS1, HIBCC, ICCBBA or IFA: starts with '$$3270531OT1'.", None)),
    ('00008680000000000017010869953609012210L', 'uts', (2026, 2020), ('bad_check_digit', "AI 00 (SSCC) '008680000000000017' should end in check digit 3, not 7.", ('08699536090122', None, 'L', None, None, '008680000000000017', False, None, 'gs1', '08699536090122', None, (('00', '008680000000000017'), ('01', '08699536090122'), ('10', 'L'))))),
    ('01815382421939761735131110&21684YYA_18*bB29\t', 'uts', (2026, 2020), ('ambiguous', "Separators lost; the scan reads as (01)81538242193976(17)351311(10)&(21)684YYA_18*bB29 or (01)81538242193976(17)351311(10)&21684YYA_18*bB29. Rescan or fix the scanner's GS setting.", None)),
    ('+A99912345/$$52001510X3/16D20111212/S77DE1G45-', 'uts', (2026, 2020), (None, 'HIBC device identifier read.', (None, '77DE1G45', '10X3', '2020-01-15', '2011-12-12', None, False, None, 'hibcc', 'A99912345', '+A99912345/$$52001510X3/16D20111212/S77DE1G45-', (('LIC', 'A999'), ('PCN', '1234'), ('UM', '5'), ('LOT', '10X3'), ('SERIAL', '77DE1G45'), ('EXPIRY', '2020-01-15'), ('PRODUCTION', '2011-12-12'))))),
    ('[)>\x1e05\x1d0109501101530003\x1d17760531\x1d10LOT1\x1d21S1\x1e\x04', 'uts', (2026,), (None, 'Karekod read.', ('09501101530003', 'S1', 'LOT1', '2076-05-31', None, None, False, None, 'gs1', '09501101530003', None, (('01', '09501101530003'), ('17', '760531'), ('10', 'LOT1'), ('21', 'S1'))))),
    ('[)>\x1e05\x1d0109501101530003\x1d17760531\x1d10LOT1\x1d21S1\x1e\x04', 'uts', (2020,), (None, 'Karekod read.', ('09501101530003', 'S1', 'LOT1', '1976-05-31', None, None, False, None, 'gs1', '09501101530003', None, (('01', '09501101530003'), ('17', '760531'), ('10', 'LOT1'), ('21', 'S1'))))),
    ('01A', 'uts', (2026, 2020), ('invalid_length', 'AI 01 (GTIN) has 1 characters; exactly 14 needed.', None)),
    ('\x1d(01)08699536090122(21)X\x1d', 'gs1', (2026, 2020), ('not_gs1', 'Scanned human-readable text with brackets, not the karekod.', None)),
    ('\x1d\x1d01086995360901221730123110L\x1d21S', 'gs1', (2026, 2020), ('not_gs1', 'A separator (GS) where an application identifier should be.', None)),
    (']Q3012386549104618721101.cC17230827\n', 'its', (2026, 2020), ('missing_field', 'Missing expiry (17), batch (10) needed by the its profile.', ('23865491046187', '101.cC17230827', None, None, None, None, False, ']Q3', 'gs1', '23865491046187', None, (('01', '23865491046187'), ('21', '101.cC17230827'))))),
    (']d1https://id.gs1.org/01/08699536090122', 'gs1', (2026, 2020), (None, 'GS1 Digital Link read.', ('08699536090122', None, None, None, None, None, False, ']d1', 'gs1', '08699536090122', None, (('01', '08699536090122'),)))),
    ('\x1d0105077884743168219%/21X43.&5117270229\x04', 'its', (2026, 2020), ('invalid_character', "Character '\\x04' at position 38 is not allowed.", None)),
    ('\x1d21%11a&X*aA5A4b6010A_ba3213*173400160127358860297458\r', 'uts', (2026, 2020), (None, 'Karekod read from a scan with lost separators.', ('27358860297458', '%11a&X*aA5A4b60', 'A_ba3213*17340016', None, None, None, True, None, 'gs1', '27358860297458', None, (('21', '%11a&X*aA5A4b60'), ('10', 'A_ba3213*17340016'), ('01', '27358860297458'))))),
    ('&', 'uts', (2026, 2020), ('not_udi', "ISBT 128 data identifier '&' is not one a device label carries.", None)),
    ('260101260134', 'its', (2026, 2020), ('not_gs1', 'Scanned a linear EAN/UPC barcode (260101260134), not the karekod.', None)),
    ('01234567890128', 'its', (2026, 2020), ('invalid_length', 'AI 01 (GTIN) has 12 characters; exactly 14 needed.', None)),
    ('https://id.gs1', 'uts', (2026, 2020), ('not_gs1', 'The link has no domain or no path.', None)),
    ('\x1d10C17A016684255058712121Y5Z2\r', 'uts', (2026, 2020), (None, 'Karekod read from a scan with lost separators.', ('66842550587121', 'Y5Z2', 'C17A', None, None, None, True, None, 'gs1', '66842550587121', None, (('10', 'C17A'), ('01', '66842550587121'), ('21', 'Y5Z2'))))),
    ('01086995360901221730123110L\x1d21S\x1d\x1d', 'gs1', (2026, 2020), ('not_gs1', 'A separator (GS) where an application identifier should be.', None)),
    (']d2\x1d01113779638042941726023021+a2_4118Y58B7100\x1d', 'its', (2026, 2020), ('invalid_date', "AI 17 (USE BY or EXPIRY) '260230' has day 30, which month 02 of 2026 does not have.", ('11377963804294', '+a2_4118Y58B7', '0', None, None, None, True, ']d2', 'gs1', '11377963804294', None, (('01', '11377963804294'), ('17', '260230'), ('21', '+a2_4118Y58B7'), ('10', '0'))))),
    # device labels (HIBC dates, secondaries and quantities, ISBT 128, IFA, Digital Links): mutants of udi.py and digital_link.py
    ('+$$62636524L13', 'uts', (2026, 2020), ('invalid_date', "HIBC secondary '$$62636524L': not a real date.", None)),
    ('https://id.gs1.org/01/08699536090122/21/S%5E', 'uts', (2026, 2020), ('invalid_character', "AI 21 in the link holds '^'.", None)),
    ('https://id.gs1.org/01/08699536090122/21/', 'uts', (2026, 2020), ('invalid_length', "AI 21 in the link's path has no value.", None)),
    ('https://id.gs1.org/01/08699536090122?22=C', 'uts', (2026, 2020), ('invalid_combination', 'AI 22 may not be a link query attribute.', None)),
    ('+$$426123124L1.', 'uts', (2026, 2020), ('invalid_date', "HIBC secondary '$$426123124L': not a real date.", None)),
    ('+26366L10', 'uts', (2026, 2020), ('invalid_date', "HIBC secondary '26366L': not a real date.", None)),
    ('+24366L1+', 'uts', (2026, 2020), ('missing_field', 'HIBC code without its device identifier (the primary).', (None, None, 'L', '2024-12-31', None, None, False, None, 'hibcc', None, '+24366L1+', (('LOT', 'L'), ('EXPIRY', '2024-12-31'))))),
    ('+$$520001L1K', 'uts', (2026, 2020), ('missing_field', 'HIBC code without its device identifier (the primary).', (None, None, 'L', '2020-01-01', None, None, False, None, 'hibcc', None, '+$$520001L1K', (('LOT', 'L'), ('EXPIRY', '2020-01-01'))))),
    ('https://id.g_s1.org/01/08699536090122', 'uts', (2026, 2020), ('invalid_character', "The link's domain holds characters a domain cannot have.", None)),
    ('https://id.gs1.org/01 /08699536090122', 'uts', (2026, 2020), ('invalid_character', 'The link holds characters a URI cannot have.', None)),
    ('https://id.gs1.org/01/08699536090122?10=A+B', 'gs1', (2026, 2020), ('invalid_combination', "AI 10 belongs in the link's path, not its query.", None)),
    ('https://id.gs1.org/01/08699536090122?17=261231&17=261231', 'gs1', (2026, 2020), ('invalid_combination', 'AI 17 appears twice in the link.', None)),
    ('+$$524367L1$', 'uts', (2026, 2020), ('invalid_date', "HIBC secondary '$$524367L': not a real date.", None)),
    ('+14D20261231X', 'uts', (2026, 2020), ('invalid_date', "HIBC secondary '14D2026123': not a YYYYMMDD date.", None)),
    ('+$$426123123L1-', 'uts', (2026, 2020), ('missing_field', 'HIBC code without its device identifier (the primary).', (None, None, 'L', '2026-12-31', None, None, False, None, 'hibcc', None, '+$$426123123L1-', (('LOT', 'L'), ('EXPIRY', '2026-12-31'))))),
    ('https://id.gs1.org/01/08699536090122/21/S%00', 'gs1', (2026, 2020), ('invalid_character', 'AI 21 in the link decodes to a NUL.', None)),
    ('https://id.gs1.org/01/08699536090122?&=&17=261231&17', 'gs1', (2026, 2020), ('not_gs1', 'Query parameter  is no GS1 application identifier.', None)),
    ('https://id.gs1.org/01/08699536090122?foo=1&17=261231#frag', 'uts', (2026, 2020), ('missing_field', 'Missing serial (21) or batch (10) needed by the uts profile.', ('08699536090122', None, None, '2026-12-31', None, None, False, None, 'gs1', '08699536090122', None, (('01', '08699536090122'), ('17', '261231'))))),
    ('+$$912345L1-', 'uts', (2026, 2020), ('missing_field', 'HIBC code without its device identifier (the primary).', (None, None, 'L', None, None, None, False, None, 'hibcc', None, '+$$912345L1-', (('LOT', 'L'), ('QUANTITY', '12345'))))),
    ('+A99912345/QXK', 'uts', (2026, 2020), ('invalid_value', "HIBC secondary 'QX': not a quantity.", None)),
    ('+$L1/$$3261231N', 'uts', (2026, 2020), ('not_udi', 'A HIBC secondary must stand alone or follow its primary.', None)),
    ('+A99912345/$$3261231/$$3271231M', 'uts', (2026, 2020), ('invalid_combination', "HIBC secondary '$$3271231': a second expiry date.", None)),
    ('=+4000', 'uts', (2026, 2020), ('invalid_length', 'ISBT 128 compound message header is not =+aabbb.', None)),
    ('+$$912349', 'uts', (2026, 2020), ('invalid_length', "HIBC secondary '$$9123': a quantity of the wrong length.", None)),
    ('=/', 'uts', (2026, 2020), ('invalid_length', 'ISBT 128 data structure 034 needs 16 characters.', None)),
    ('+QXE', 'uts', (2026, 2020), ('invalid_length', "HIBC primary 'QX' is not LIC (4), PCN (1-18), U/M (1).", None)),
    ('+$$A11', 'uts', (2026, 2020), ('invalid_value', "HIBC secondary '$$A': no date format flag after $$.", None)),
    ('+$$52636C', 'uts', (2026, 2020), ('invalid_length', "HIBC secondary '$$5263': a date of the wrong length.", None)),
    ('[)>\x1e06\x1d1TLOT1\x1dSSER1\x1e\x04', 'uts', (2026, 2020), ('missing_field', 'An IFA code carries a PPN (9N) or a GTIN (8P), exactly one.', None)),
    ('=', 'uts', (2026, 2020), ('not_udi', "ISBT 128 data identifier '=' is not one a device label carries.", None)),
    ('=A', 'uts', (2026, 2020), ('invalid_value', "ISBT 128 Donation Identification Number 'A' is malformed.", None)),
    ('+$$X', 'uts', (2026, 2020), ('missing_field', 'HIBC code without its device identifier (the primary).', (None, None, None, None, None, None, False, None, 'hibcc', None, '+$$X', ()))),
    ('+A99912345/Q12X', 'uts', (2026, 2020), ('missing_field', 'HIBC code without a serial or lot number, which ÜTS needs.', (None, None, None, None, None, None, False, None, 'hibcc', 'A99912345', '+A99912345/Q12X', (('LIC', 'A999'), ('PCN', '1234'), ('UM', '5'), ('QUANTITY', '12'))))),
    ('&,1000000000000XYZ123', 'uts', (2026, 2020), ('missing_field', 'ISBT 128 code without its device identifier (the primary).', (None, None, '000000000000XYZ123', None, None, None, False, None, 'iccbba', None, '&,1000000000000XYZ123', (('035', '000000000000XYZ123'),)))),
    ('+QX0', 'uts', (2026, 2020), ('bad_check_digit', "HIBC check character should be 'E', not '0'.", None)),
    ('=+53000', 'uts', (2026, 2020), ('invalid_length', 'ISBT 128 compound message says 53 data structures, holds 0.', None)),
    ('+A99912345/\x1d', 'uts', (2026, 2020), ('invalid_character', "Character '\\x1d' is not in the HIBC character set.", None)),
    ('=GA2341765432171', 'uts', (2026, 2020), ('bad_check_digit', 'ISBT 128 DIN GA23417654321 fails its check flags 71.', None)),
    ('=/A999AB3456T0123=G12341765432170', 'uts', (2026, 2020), ('invalid_character', "ISBT 128 data structure 034 'A999AB3456T0123=' is malformed.", None)),
]
PLAIN = [
    (b']d2\xff', '�'),
    (b'\xc3', '�'),
]
# fmt: on


@pytest.mark.parametrize(("raw", "profile", "years", "expected"), READINGS)
def test_a_pinned_reading(raw: str, profile: str, years: tuple[int, ...], expected: tuple[Any, ...]) -> None:
    for this_year in years:  # the GS1 century rule's anchor: the same code read in 2026 and in 2020
        assert whole(read(raw, Profile(profile), this_year)) == expected
        assert whole(read(raw.encode(), Profile(profile), this_year)) == expected  # bytes read as their text


@pytest.mark.parametrize(("raw", "expected"), PLAIN)
def test_plain_text_of_a_scan(raw: bytes, expected: str) -> None:
    assert plain(raw) == expected


def test_plain_strips_the_symbology_and_the_suffix() -> None:
    """What a command barcode is matched on: the scan's text without ``]xN`` and CR/LF."""
    assert plain(b"]Q1KKC1:dock-a:status\r\n") == "KKC1:dock-a:status"
    assert plain(b"KKC1:dock-a:status\t") == "KKC1:dock-a:status"
    assert plain(b"]d2") == "" and plain(b"]") == "" and plain(b"x]Q1y") == "x]Q1y"
    assert plain("]C1ş".encode()) == "ş" and plain(b"\xffKKC1") == "\ufffdKKC1"


def test_a_product_code_beside_an_sscc_is_told_what_it_lacks() -> None:
    """The shipping-label message is for an SSCC alone; with a GTIN the missing field is named."""
    alone = read("00008680000000000013", Profile.ITS, 2026)
    assert (alone.reason, alone.message) == ("missing_field", "Scanned a shipping label (SSCC), not a product karekod.")
    both = read("00008680000000000013010869953609012210L\x1d17301231", Profile.ITS, 2026)
    assert (both.reason, both.message) == ("missing_field", "Missing serial (21) needed by the its profile.")


@pytest.mark.parametrize("letter", ["ı", "İ", "ş", "Ş", "ğ", "Ğ", "ü", "Ü", "ö", "Ö", "ç", "Ç"])
def test_a_turkish_letter_asks_about_the_keyboard_layout(letter: str) -> None:
    r = read(f"0108699536090122\x1d21A{letter}1\x1d1730123110L", Profile.ITS, 2026)
    assert (r.reason, r.message) == (
        "invalid_character",
        f"Character {letter!r} at position 20 is not allowed (is the scanner on a Turkish keyboard layout?).",
    )
