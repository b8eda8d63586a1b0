"""Inputs that tell the reader's surviving mutants apart from the reader (issue 14).

    .venv/bin/python bench/bench_mutation.py --keep /tmp/mut-reader reader
    .venv/bin/python bench/mutant_inputs.py /tmp/mut-reader > cases.py

Reads the survivors of a kept mutmut run of ``station/gs1/reader.py``, or of the device labels'
readers it calls (``udi``: ``udi.py``, ``digital_link.py``) (mutants that only change a
message's words are left out, as ``bench_mutation.py`` leaves them out), runs each one, in this
process, through mutmut's trampolines over a corpus (karekods with lost, doubled and stray
separators, symbology prefixes and suffixes, UDIs of the other agencies, Digital Links, the
string constants of the reader's own tests and small damage to them; each read with the century
anchored in 2026 and in 2020), and picks, greedily, the fewest inputs that tell the most survivors
apart. Prints them with the reader's own readings as a ``READINGS`` / ``PLAIN`` table in the shape
of ``tests/test_reader_pinned.py``: check each reading by hand before pinning it. Survivors no
input tells apart are listed on stderr: read them, most change nothing a caller can see.
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench_mutation import equivalent, text_only

ROOT = Path(__file__).resolve().parents[1]
GS, RS, EOT = "\x1d", "\x1e", "\x04"
PREFIXES = ["", "]d2", "]Q3", "]C1", GS, "]d2" + GS, "]e0", "]d1", "]J0", "]A0", "]E0", "]d2" + GS + GS]
SUFFIXES = ["", "\r", "\n", "\r\n", "\t", EOT, GS, "\r\r"]
YEARS = (2026, 2020)
G, SSCC = "08699536090122", "008680000000000013"
KNOWN = [
    f"[)>{RS}06{GS}9N110375286414{GS}1TLOT1{GS}D270101{GS}SSER1{RS}{EOT}",
    f"[)>{RS}06{GS}9N110375286414{GS}D270101{RS}{EOT}",
    f"[)>{RS}06{GS}1TLOT1{GS}SSER1{RS}{EOT}",
    f"[)>{RS}06{GS}8P{G}{GS}D760101{RS}{EOT}",
    f"[)>{RS}05{GS}0109501101530003{GS}17760531{GS}10LOT1{GS}21S1{RS}{EOT}",
    "=+A9999XYZ100T0944=,000025=A99971312345600=>014032=}013032&,1000000000000XYZ123",
    "&,1000000000000XYZ123",
    "+A99912345/$$52001510X3/16D20111212/S77DE1G45-",
    "+A99912345/$$7601510X3",
    "+A123BJC5D6E71G",
    f"00{SSCC}01{G}1730123110LOT1",
    f"{GS}{GS}01{G}1730123110L{GS}21S",
    f"01{G}1730123110L{GS}21S{GS}{GS}",
    f"01{G}1776123110AB21CD",
    "https://id.gs1.org/01/08699536090122",
    "https://id.gs1.org/01/08699536090122/10/L1?17=761231",
    "https://id.gs1",
    "(01)08699536090122(21)X",
    "260101260134",
    "",
    "]",
]
BYTES = [b"\xff01", b"]d2\xff", b"\xc3", b"]\xffabc\r", b"KKC1:\xfe\n"]


HIBC_SECONDARIES = [
    *("$$0125L1", "$$1225L1", "$$1325L1", "$$0025L1"),  # MMYY, the flag the month's first digit
    *("$$2123125L1", "$$2022925L1", "$$2022924L1", "$$2023025L1", "$$212312"),  # MMDDYY
    *("$$3261231L1", "$$3261331L1", "$$3260229L1", "$$3240229L1", "$$326123"),  # YYMMDD
    *("$$426123123L1", "$$426123124L1", "$$426123100L1", "$$42612312"),  # YYMMDDHH
    *("$$526001L1", "$$526365L1", "$$526366L1", "$$524366L1", "$$524367L1", "$$520001L1", "$$52636"),  # YYJJJ
    *("$$62636523L1", "$$62636524L1", "$$62636500L1", "$$6263652"),  # YYJJJHH
    *("$$7L1", "$$+7S1", "$$+3261231S1", "$$8053261231L1", "$$805L1", "$$8L1", "$$912345L1", "$$91234"),
    *("26365L1", "24366L1", "26366L1", "26000L1", "14D20261231", "14D20260230", "16D20260101", "$$A1", "$$"),
    *("$L1/$$3261231", "$$3261231/$$3271231", "$+S1", "SS1", "Q12", "Q1234567890", "QX"),
]
"""Secondary data of HIBC labels, each date format with its edges (ANSI/HIBC 2.6 table 2)."""

LINK = "https://id.gs1.org"
LINKS = [
    *(f"{LINK}/01/{G}/21/S%41B", f"{LINK}/01/{G}/21/S%00", f"{LINK}/01/{G}/21/S%4", f"{LINK}/01/{G}/21/%4G1"),
    *(f"{LINK}/01/{G}/21/S%5E", f"{LINK}/01/{G}/21/", f"{LINK}/01/{G}/21/S%C3%BC", f"{LINK}/01/{G}/10/A+B"),
    *(f"{LINK}/01/{G}?10=A+B", f"{LINK}/01/{G}?17=261231&10=L1", f"{LINK}/01/{G}?17=261231&17=261231"),
    *(f"{LINK}/01/{G}?foo=1&17=261231#frag", f"{LINK}/01/{G}?&=&17=261231&17", f"{LINK}/01/{G}?123=4"),
    *(f"{LINK}/01/{G}?%31%37=261231", f"{LINK}/01/{G}?99=X", f"{LINK}/01/{G}?21=S1", f"{LINK}/01/{G}?22=C"),
    *(f"{LINK}/01/{G[:-1]}", f"{LINK}/gtin/{G}", f"{LINK}/a/b/01/{G}/22/CPV/10/L1/21/S1", f"{LINK}/01/{G}/21/S1/10/L1"),
    *("https://id.g_s1.org/01/" + G, "https://id.gs1.org", "https:///01/" + G, "https://x/01/" + G, "https://"),
    *(f"HTTP://ID.GS1.ORG/01/{G}", f"http://{LINK[8:]}/01/{G}", f"{LINK}/01/{G}/21/S1?17=261331", f"{LINK}/01 /{G}"),
    *(f"{LINK}/414/8680000000007/254/X", f"{LINK}/00/{SSCC}", f"{LINK}/01/{G}/21/S1/", f"{LINK}/01/{G}?17=26123"),
    *(f"{LINK}/01/{G}?11=260101&17=261231&10=L1", f"{LINK}/10/L1/01/{G}", f"{LINK}/01/{G}/01/{G}"),
]
"""Digital Links through each branch of ``digital_link.split_link``."""


def device_labels() -> list[str]:
    """HIBC labels (valid check characters, each secondary alone and after a primary) and Digital Links."""
    from station.gs1.udi import hibc_check

    labels = [*LINKS]
    for secondary in HIBC_SECONDARIES:
        for data in (f"+{secondary}", f"+A99912345/{secondary}"):
            labels += [data + hibc_check(data), data + "0"]
    return labels


def corpus(seed: int = 12) -> list[str]:
    from station.gs1.elements import check_digit

    rng = random.Random(seed)

    def gtin() -> str:
        body = "".join(rng.choice("0123456789") for _ in range(13))
        return body + str((check_digit(body) + (rng.random() < 0.1)) % 10)

    def var() -> str:
        s = "".join(rng.choice("ABCXYZabc0123456789-./_%&*+") for _ in range(rng.randint(1, 20)))
        if rng.random() < 0.4:  # a karekod AI inside a variable field: the splits' hard case
            i = rng.randrange(len(s) + 1)
            s = (s[:i] + rng.choice(["10", "17", "21", "01", "11", "1726", "2101"]) + s[i:])[:20]
        return s

    def yymmdd() -> str:
        yy, mm, dd = rng.randint(20, 35), rng.randint(1, 12), rng.randint(1, 28)
        return rng.choice([f"{yy:02d}{mm:02d}{dd:02d}", f"{yy:02d}{mm:02d}00", f"{yy:02d}13{dd:02d}", f"{yy:02d}0230"])

    out = set(KNOWN) | set(device_labels())
    for _ in range(3000):
        fields = {"01": gtin(), "21": var(), "17": yymmdd(), "10": var()}
        if rng.random() < 0.2:
            fields["11"] = yymmdd()
        if rng.random() < 0.1:
            del fields[rng.choice(list(fields))]
        order = list(fields)
        rng.shuffle(order)
        drop = rng.random()
        text = ""
        for i, ai in enumerate(order):
            text += ai + fields[ai]
            if i < len(order) - 1 and (ai in ("21", "10") or rng.random() < 0.1):
                text += GS if drop < 0.5 or (drop < 0.75 and rng.random() < 0.5) else ""
        out.add(rng.choice(PREFIXES) + text + rng.choice(SUFFIXES))
    for name in ("test_reader.py", "test_udi.py", "test_gs1_reference.py", "test_reader_properties.py"):
        for node in ast.walk(ast.parse((ROOT / "tests" / name).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and 2 <= len(node.value) <= 300:
                v = node.value.decode("utf-8", "replace") if isinstance(node.value, bytes) else node.value
                out.add(v)
                for _ in range(6):
                    k = rng.randrange(len(v))
                    out.update(
                        [v[:k] + v[k + 1 :], v.replace(GS, ""), v[:k] + rng.choice("0123456789A" + GS) + v[k + 1 :]]
                    )
                    out.add(rng.choice(PREFIXES) + v + rng.choice(SUFFIXES))
    return sorted(out)


def survivors(work: Path) -> list[str]:
    """The kept run's survivors and untested mutants, less those ``bench_mutation`` leaves out."""
    mutmut = ROOT / ".venv" / "bin" / "mutmut"
    names = []
    for meta in work.glob("mutants/**/*.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code in (0, 33):
                diff = subprocess.run([str(mutmut), "show", name], cwd=work, capture_output=True, text=True).stdout
                if not text_only(diff) and not equivalent(diff):
                    names.append(name)
    return sorted(names)


def main() -> None:
    work = Path(sys.argv[1]).resolve()
    names = survivors(work)
    sys.path.insert(0, str(work / "mutants"))  # the trampolined copy: every mutant, switched at call time
    from mutmut.mutation.trampoline import set_mutant_under_test

    from station.gs1.reader import Profile, plain, read

    def reading(raw: str, profile: str) -> str:
        try:
            return repr([read(raw, Profile(profile), year) for year in YEARS])
        except Exception as e:  # a mutant that raises is told apart too
            return f"raises {type(e).__name__}"

    def plain_text(raw: bytes) -> str:
        try:
            return repr(plain(raw))
        except Exception as e:
            return f"raises {type(e).__name__}"

    cases: list[tuple[Any, str]] = [(raw, p.value) for raw in corpus() for p in Profile]
    cases += [(raw.encode("utf-8", "surrogateescape"), "plain") for raw in corpus()] + [(b, "plain") for b in BYTES]
    run: Callable[[Any, str], str] = lambda raw, p: plain_text(raw) if p == "plain" else reading(raw, p)  # noqa: E731
    set_mutant_under_test("")
    base = {c: run(*c) for c in cases}
    tells: dict[str, set[tuple[Any, str]]] = {}
    for name in names:
        set_mutant_under_test(name)
        only = [c for c in cases if (c[1] == "plain") == ("x_plain__" in name)]
        tells[name] = {c for c in only if run(*c) != base[c]}
    set_mutant_under_test("")
    left, picked = {n for n, t in tells.items() if t}, []
    while left:
        best = max({c for n in left for c in tells[n]}, key=lambda c: (sum(c in tells[n] for n in left), -len(c[0])))
        picked.append(best)
        left -= {n for n in left if best in tells[n]}
    told = sum(1 for t in tells.values() if t)
    print(f"{len(names)} survivors; {told} told apart by {len(picked)} inputs; not told apart:", file=sys.stderr)
    print("\n".join(n for n, t in tells.items() if not t), file=sys.stderr)
    print_table(picked, read, plain, Profile)


def print_table(picked: Iterable[tuple[Any, str]], read: Any, plain: Any, profile: Any) -> None:
    def whole(r: Any) -> tuple[Any, ...]:
        k = r.karekod
        unit = None
        if k is not None:
            unit = (
                k.gtin, k.serial, k.batch, k.expiry and k.expiry.isoformat(),
                k.production_date and k.production_date.isoformat(), k.sscc, k.recovered, k.symbology,
                k.issuer.value, k.di, k.udi, tuple(k.fields),
            )  # fmt: skip
        return (r.reason.value if r.reason else None, r.message, unit)

    readings, plains = [], []
    for raw, p in picked:
        if p == "plain":
            plains.append(f"    ({raw!r}, {plain(raw)!r}),")
            continue
        a, b = (whole(read(raw, profile(p), year)) for year in YEARS)
        if a == b:
            readings.append(f"    ({raw!r}, {p!r}, {YEARS!r}, {a!r}),")
        else:
            readings += [f"    ({raw!r}, {p!r}, ({YEARS[0]},), {a!r}),", f"    ({raw!r}, {p!r}, ({YEARS[1]},), {b!r}),"]
    print("# fmt: off\nREADINGS = [", *readings, "]", "PLAIN = [", *plains, "]\n# fmt: on", sep="\n")


if __name__ == "__main__":
    main()
