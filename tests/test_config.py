"""Configuration: the examples pass, every bad key is named with its line, the daemon refuses bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station.edge.config import load, parse
from station.gs1.reader import Profile
from station.tomlcheck import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["loading-dock.toml", "conveyor-line.toml", "simulate.toml"])
def test_shipped_examples_are_valid(name: str) -> None:
    config = load(ROOT / "examples" / name)
    assert config.station.id


def test_values_and_defaults() -> None:
    c = parse(
        '[station]\nid = "s1"\n[reader]\nprofile = "uts"\nmin_shelf_life_days = 30\n'
        '[feedback.accept]\nled = "amber"\nseconds = 1\n'
    )
    assert c.reader.profile is Profile.UTS and c.reader.policy.min_shelf_life_days == 30
    assert c.feedback.patterns["accept"].led == "amber" and c.feedback.patterns["accept"].seconds == 1.0
    assert c.feedback.patterns["accept"].beeps == 1  # untouched keys keep the default pattern
    assert c.mqtt.port == 1883 and c.mqtt.prefix == "karekod/v1" and c.reader.debounce_seconds == 1.0
    assert parse('[station]\nid = "s1"\n').reader.policy.min_shelf_life_days is None


def test_every_problem_is_named_with_its_line() -> None:
    text = (
        "[station]\n"  # 1
        'id = "has space"\n'  # 2
        'operation = "sell"\n'  # 3
        "[mqtt]\n"  # 4
        "port = 70000\n"  # 5
        'tls = "yes"\n'  # 6
        "colour = 1\n"  # 7
        "[reader]\n"  # 8
        "debounce_seconds = -1\n"  # 9
        "[feedback]\n"  # 10
        "red_pin = 40\n"  # 11
        "[feedback.wink]\n"  # 12
        "led = 'green'\n"  # 13
        "[bogus]\n"  # 14
    )
    with pytest.raises(ConfigError) as e:
        parse(text, "st.toml")
    problems = e.value.problems
    assert "st.toml:2: [station] id = 'has space': must be 1-64 letters, digits, - or _" in problems
    assert any(p.startswith("st.toml:3: [station] operation") for p in problems)
    assert any(p.startswith("st.toml:5: [mqtt] port = 70000") for p in problems)
    assert any(p.startswith("st.toml:6: [mqtt] tls = 'yes': must be bool") for p in problems)
    assert "st.toml:7: [mqtt] colour: unknown key" in problems
    assert any(p.startswith("st.toml:9: [reader] debounce_seconds") for p in problems)
    assert any(p.startswith("st.toml:11: [feedback] red_pin = 40") for p in problems)
    assert any(p.startswith("st.toml:12: [feedback.wink]: unknown signal") for p in problems)
    assert "st.toml:14: [bogus]: unknown table" in problems
    assert len(problems) == 9


def test_missing_id_and_bad_toml() -> None:
    with pytest.raises(ConfigError, match=r"\[station\] id: required"):
        parse("[reader]\nprofile = 'its'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse("[station\nid=1")
    with pytest.raises(ConfigError, match="cannot read"):
        load("/nonexistent/station.toml")


def test_cli_check_and_daemon_refuse_the_same_way(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[station]\nid = "x"\n[mqtt]\nport = 0\n')
    check = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", "config", "check", str(bad)], capture_output=True, text=True
    )
    assert check.returncode == 1 and f"{bad}:4: [mqtt] port = 0" in check.stderr
    run = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", "run", "--simulate", "-c", str(bad)],
        capture_output=True,
        text=True,
        input="",
        timeout=30,
    )
    assert run.returncode == 2 and f"{bad}:4: [mqtt] port = 0" in run.stderr and "not starting" in run.stderr
    good = subprocess.run(
        [sys.executable, "-m", "station.edge.cli", "config", "check", str(ROOT / "examples" / "conveyor-line.toml")],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0 and "ok" in good.stdout


def test_a_missing_or_open_password_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[station]\nid = "s1"\n[mqtt]\nusername = "s1"\npassword_file = "{secret}"\n')
    run = [sys.executable, "-m", "station.edge.cli", "run", "--simulate", "-c", str(cfg)]
    r = subprocess.run(run, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"s.toml:5: [mqtt] password_file: cannot read {secret}: No such file or directory" in r.stdout + r.stderr
    secret.write_text("pw\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError) as e:
        load(cfg)
    assert e.value.problems == [
        f"{cfg}:5: [mqtt] password_file: {secret} can be read by any user (mode 0644): chmod o-rwx {secret}"
    ]
    secret.chmod(0o640)
    assert load(cfg).mqtt.password_file == str(secret)
