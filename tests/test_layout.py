"""The house rule: two wings on one base. ``station.edge`` (the Pi) and ``station.central`` (the
server) never import each other; both build only on ``station.gs1``, ``station.wire``,
``station.mqtt``, ``station.tomlcheck`` and ``station.runtime``. Each wing also runs without the
other's libraries."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "station"
BASE = {"station", "station.gs1", "station.wire", "station.mqtt", "station.tomlcheck", "station.runtime"}
WINGS = {"station.edge": "station.central", "station.central": "station.edge"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def owner(module: str) -> str:
    for wing in WINGS:
        if module == wing or module.startswith(wing + "."):
            return wing
    for base in sorted(BASE, key=len, reverse=True):
        if module == base or module.startswith(base + "."):
            return base
    return module


def violations(tree: Path = PACKAGE) -> list[str]:
    found: list[str] = []
    for path in sorted(tree.rglob("*.py")):
        me = owner(module_name(path, tree))
        for name in sorted(imports(path)):
            if not name.startswith("station"):
                continue
            them = owner(name)
            if me in WINGS and them == WINGS[me]:
                found.append(f"{module_name(path, tree)} imports {them}: the wings never import each other")
            elif me in BASE and them in WINGS:
                found.append(f"{module_name(path, tree)} imports {them}: the base never imports a wing")
            elif me == "station.gs1" and them not in ("station.gs1", "station"):
                found.append(f"{module_name(path, tree)} imports {them}: the reading core is pure")
    return sorted(set(found))


def test_the_wings_never_import_each_other() -> None:
    assert violations() == []


def test_the_check_catches_a_crossing(tmp_path: Path) -> None:
    """The rule above is not vacuous: a planted crossing in a copy of the tree is named."""
    (tmp_path / "station" / "edge").mkdir(parents=True)
    (tmp_path / "station" / "central").mkdir()
    (tmp_path / "station" / "edge" / "x.py").write_text("def f():\n    from station.central.ledger import Ledger\n")
    (tmp_path / "station" / "central" / "y.py").write_text("import station.edge.store\n")
    (tmp_path / "station" / "wire.py").write_text("from station.edge import config\n")
    assert violations(tmp_path / "station") == [
        "station.central.y imports station.edge: the wings never import each other",
        "station.edge.x imports station.central: the wings never import each other",
        "station.wire imports station.edge: the base never imports a wing",
    ]


BLOCKER = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = set(sys.argv[2].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on this side")
sys.meta_path.insert(0, Block())
import station
wing = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(wing.__path__, sys.argv[1] + "."):
    importlib.import_module(info.name)
print("ok")
"""


@pytest.mark.parametrize(
    ("wing", "absent"),
    [
        ("station.edge", "requests,psycopg,station.central"),
        ("station.central", "gpiozero,serial,evdev,lgpio,RPi,station.edge"),
    ],
)
def test_each_wing_imports_without_the_other_sides_libraries(wing: str, absent: str) -> None:
    """What ``pip install .[pi]`` or ``.[central]`` installs is all each wing needs."""
    absent = absent.replace("station.central", "").replace("station.edge", "").strip(",")
    r = subprocess.run([sys.executable, "-c", BLOCKER, wing, absent], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "ok"


OWNERS = {
    "İTS paths": (re.compile(r"/app/"), {"central/services/its.py"}),
    "ÜTS paths": (re.compile(r"bildirim/|tekilUrun/|/UTS/uh/rest"), {"central/services/uts.py"}),
    "MQTT topics": (re.compile(r"stations/|central/status"), {"wire.py"}),
}


def test_each_path_and_topic_is_written_in_one_place() -> None:
    """Request paths live in their service module, topics in the wire contract: string literals
    naming them anywhere else in the package would be a second copy (docstrings and comments aside).
    The check itself is checked: the owners' own literals are found."""
    found: list[str] = []
    seen: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {  # a string standing alone as a statement documents something
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for what, (pattern, owners) in OWNERS.items():
                    if not pattern.search(node.value):
                        continue
                    if what == "MQTT topics" and where.startswith("central/web/") and node.value.startswith("/"):
                        continue  # the console's own HTTP routes (/stations/{station}), not topics
                    if where in owners:
                        seen.add(what)
                    else:
                        found.append(f"{where}:{node.lineno}: {what} written outside {', '.join(owners)}")
    assert found == []
    assert seen == set(OWNERS)
