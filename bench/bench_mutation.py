"""Mutation testing of the core modules with mutmut (issue 14): each module against its own tests.

    .venv/bin/python bench/bench_mutation.py [--keep DIR] [module-name ...]

Installs mutmut into the venv when it is missing (it is not a dev dependency: this is a bench).
Each module is mutated in a scratch copy of the repository, with only its own test files run, and
the table printed: killed / (killed + survived). Left out, and counted apart: mutants that only
change the words of a message (a message's wording is no behaviour) or the case of SQL keywords
and names (see ``text_only``) and private state flags set to
None instead of False (see ``equivalent``). Survivors are listed; mutants no test reaches count as
survivors. ``--keep DIR`` runs in DIR and leaves it there, to read a survivor with
``mutmut show NAME`` in it (one module per run then).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from figures import emit

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"

#: Module -> (the files mutated, the tests that are theirs).
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "reader": (
        ["station/gs1/reader.py"],
        [
            "tests/test_reader.py",
            "tests/test_reader_properties.py",
            "tests/test_reader_pinned.py",
            "tests/test_gs1_reference.py",
            "tests/test_udi.py",
        ],
    ),
    "gs1 core": (
        ["station/gs1/elements.py", "station/gs1/linters.py"],
        [
            "tests/test_gs1_reference.py",
            "tests/test_reader.py",
            "tests/test_gs1_linters.py",
            "tests/test_gs1_elements.py",
        ],
    ),
    "udi": (
        ["station/gs1/udi.py", "station/gs1/digital_link.py"],
        ["tests/test_udi.py", "tests/test_gs1_reference.py", "tests/test_reader_pinned.py"],
    ),
    "verdict": (["station/gs1/verdict.py"], ["tests/test_reader.py", "tests/test_station.py"]),
    "framing": (["station/edge/scanners/framing.py"], ["tests/test_framing.py"]),
    "rules": (["station/edge/rules.py"], ["tests/test_station.py"]),
    "hid decoder": (
        ["station/edge/scanners/keys.py"],
        ["tests/test_keys.py", "tests/test_hid.py", "tests/test_keyboards.py"],
    ),
    "wire": (["station/wire.py"], ["tests/test_wire_checks.py", "tests/test_wire_limits.py", "tests/test_wire.py"]),
    "ledger": (["station/central/ledger.py"], ["tests/test_ledger.py"]),
}

#: What the tests read besides the package and themselves (copied into mutmut's work tree too).
EXTRAS = ("scripts", "pyproject.toml", "README.md", "broker", "examples", "systemd")

STRING = re.compile(r"""(?:[rbuf]*"(?:[^"\\]|\\.)*"|[rbuf]*'(?:[^'\\]|\\.)*')""")


SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|AND|SET|VALUES|JOIN|ORDER BY|GROUP BY|LIMIT|CREATE)\b")
REGEX = re.compile(r"\\[dswbDSW.]|\(\?|\[\^|\[[^\] ]*-[^\] ]*\]|\{\d|[\^$]")


def _changed_literals(diff: str) -> list[tuple[str, str]] | None:
    """The string literals a mutant changed, (old, new) each; None when it changed anything else."""
    old = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    new = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if not old or len(old) != len(new):
        return None
    pairs = []
    for a, b in zip(old, new, strict=True):
        if STRING.sub('""', a) != STRING.sub('""', b):
            return None
        pairs += [(x, y) for x, y in zip(STRING.findall(a), STRING.findall(b), strict=False) if x != y]
    return pairs


def _quoted(sql: str) -> list[str]:
    return re.findall(r"'[^']*'", sql)


def text_only(diff: str) -> bool:
    """A mutant that changes nothing but the wording of a message, or the case of SQL keywords and
    names (which SQL ignores). Not excused: a changed SQL statement otherwise ("XX" added: a
    syntax error a test must meet), a changed value inside SQL quotes ('done' -> 'DONE'), a
    regular expression, or any other literal that is data rather than words."""
    pairs = _changed_literals(diff)
    if not pairs:
        return False
    for old, new in pairs:
        if SQL.search(old):
            if not (old.lower() == new.lower() and _quoted(old) == _quoted(new)):
                return False
        elif REGEX.search(old) or " " not in old.strip("\"'rbuf"):
            return False  # a pattern, a key, a name, a value: data
    return True


_FLAG = re.compile(r"self\._\w+ = (False|\"\")")


def equivalent(diff: str) -> bool:
    """The mutants counted as equivalent: ``json.dumps(..., ensure_ascii=None)`` for False, and a
    private state flag set to None instead of False or "" (``self._skipping = None``). Both are
    falsy and the code only ever tests them for truth, never ``is False``; a public field or a
    value that leaves the object is never excused, and a flag used otherwise (formatted,
    measured) kills its mutant by failing."""
    old = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    new = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if len(old) != 1 or len(new) != 1:
        return False
    if _FLAG.search(old[0]) is not None and old[0].replace("= False", "= None") == new[0]:
        return True
    # json.dumps(..., ensure_ascii=None): the flag is only tested for truth, None is False
    return "json.dumps(" in old[0] and old[0].replace("ensure_ascii=False", "ensure_ascii=None") == new[0] != old[0]


def ensure_mutmut() -> Path:
    mutmut = ROOT / ".venv" / "bin" / "mutmut"
    if not mutmut.exists():
        subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "mutmut>=3.3"], check=True)
    return mutmut


@dataclass
class Row:
    name: str
    killed: int
    survived: list[str]
    text_only: int
    equivalent: int
    unreached: int


def run_module(name: str, files: list[str], tests: list[str], mutmut: Path, keep: Path | None = None) -> Row:
    tests = [t for t in tests if (ROOT / t).exists()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if keep is None else keep
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            keep.mkdir(parents=True)
        for part in ("station", "tests", *EXTRAS):
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, work / part)

        def listed(values: list[str]) -> str:  # setup.cfg lists: one value a line
            return "".join(f"\n    {v}" for v in values)

        (work / "setup.cfg").write_text(
            "[mutmut]\nsource_paths=station\n"
            f"only_mutate={listed(files)}\n"
            f"pytest_add_cli_args_test_selection={listed(tests)}\n"
            f"pytest_add_cli_args={listed(['-p', 'no:cacheprovider'])}\n"
            f"also_copy={listed(list(EXTRAS))}\n"
            # each mutant in a fresh interpreter: code that runs once and is cached (the wire
            # contract's compiled checks, the AI table's patterns) must run again under the mutant
            "process_isolation=forkserver\nforkserver_warmup=none\n"
        )
        subprocess.run([str(mutmut), "run", "--max-children", "2"], cwd=work, capture_output=True, check=False)
        listing = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=work, capture_output=True, text=True)
        killed, survived, text, flags, unreached = 0, [], 0, 0, 0
        for line in listing.stdout.splitlines():
            m = re.match(r"\s*(\S+): (.+)$", line)
            if not m:
                continue
            mutant, status = m.groups()
            if status == "killed":
                killed += 1
                continue
            if status not in ("survived", "no tests"):
                continue  # timeouts and the like count as caught
            diff = subprocess.run([str(mutmut), "show", mutant], cwd=work, capture_output=True, text=True).stdout
            if text_only(diff):
                text += 1
            elif equivalent(diff):
                flags += 1
            else:
                survived.append(mutant)
                unreached += status == "no tests"
    return Row(name, killed, survived, text, flags, unreached)


def main() -> None:
    mutmut = ensure_mutmut()
    args, keep = sys.argv[1:], None
    if args[:1] == ["--keep"]:
        keep, args = Path(args[1]).resolve(), args[2:]
        if len(args) != 1:
            sys.exit("bench_mutation: --keep DIR takes one module")
    wanted = args or list(MODULES)
    rows = [run_module(name, *MODULES[name], mutmut, keep) for name in wanted]
    print(f"{'module':<12} {'killed':>7} {'survived':>9} {'score':>7}   (left out: message text; False->None flags)")
    for r in rows:
        killed, survived = r.killed, len(r.survived)
        score = killed / (killed + survived) if killed + survived else 1.0
        print(
            f"{r.name:<12} {killed:>7} {survived:>9} {score:>7.1%}   "
            f"text-only {r.text_only}, flags {r.equivalent}, never reached {r.unreached}"
        )
        emit("mutation", f"{r.name}: mutants killed", score * 100, "%", ">= 90 %", score >= 0.9)
    print(json.dumps({r.name: r.survived for r in rows}, indent=1))


if __name__ == "__main__":
    main()
