"""The submitter's configuration: sites, services, credentials kept out of the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station.central.config import load, parse
from station.tomlcheck import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_parses_and_maps_stations_to_sites() -> None:
    c = load(ROOT / "examples" / "submitter.toml")
    assert c.environment == "test" and c.uts is not None and c.its is not None
    assert c.uts.base_url == "https://utstest.saglik.gov.tr" and c.its.base_url == "https://itstest2.saglik.gov.tr"
    site = c.site_of("depo-istanbul-line-2")
    assert site is not None and (site.service, site.operation, site.counterpart) == ("its", "dispatch", "8680000000009")
    assert c.site_of("nobody") is None
    prod = parse(
        (ROOT / "examples" / "submitter.toml").read_text().replace('environment = "test"', 'environment = "production"')
    )
    assert prod.uts is not None and prod.uts.base_url == "https://utsuygulama.saglik.gov.tr"
    assert prod.uts.secret.env == "UTS_SYSTEM_TOKEN"


def test_problems_named_with_lines() -> None:
    text = (
        "[submitter]\n"  # 1
        "[uts.test]\n"  # 2
        'token = "abc"\n'  # 3: a credential in the file
        "[its.test]\n"  # 4: no username, no password source
        "[sites.a]\n"  # 5
        'service = "its"\n'  # 6
        'operation = "dispatch"\n'  # 7
        'institution = "868"\n'  # 8
        'stations = ["s1"]\n'  # 9: dispatch without counterpart
        "[sites.b]\n"  # 10
        'service = "uts"\n'  # 11
        'operation = "return"\n'  # 12
        'institution = "x"\n'  # 13
        'stations = ["s1"]\n'  # 14
    )
    with pytest.raises(ConfigError) as e:
        parse(text, "s.toml")
    text_of = "\n".join(e.value.problems)
    assert "s.toml:3: [uts.test] token: never put the credential here" in text_of
    assert "[its.test] username: required" in text_of and "[its.test] password_file or password_env" in text_of
    assert "[sites.a] counterpart: dispatch needs" in text_of
    assert "s.toml:12: [sites.b] operation = 'return': uts supports receipt, dispatch, use" in text_of
    assert "s.toml:13: [sites.b] institution" in text_of and "station 's1' is also in [sites.a]" in text_of


def test_secrets_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tok").write_text("secret-token\n")
    (tmp_path / "tok").chmod(0o640)
    c = parse(f'[uts.test]\ntoken_file = "{tmp_path / "tok"}"\n[its.test]\nusername = "868"\npassword_env = "PW"\n')
    assert c.uts is not None and c.uts.secret.read("t") == "secret-token"
    assert c.its is not None
    with pytest.raises(ConfigError, match="PW is not set"):
        c.its.secret.read("İTS password")
    monkeypatch.setenv("PW", "pw")
    assert c.its.secret.read("İTS password") == "pw"
    (tmp_path / "tok").chmod(0o644)  # any user on the server could read the institution's token
    with pytest.raises(ConfigError) as e:
        c.uts.secret.read("ÜTS system token")
    assert e.value.problems == [
        f"ÜTS system token: {tmp_path / 'tok'} can be read by any user (mode 0644): chmod o-rwx {tmp_path / 'tok'}"
    ]


def test_check_reads_credentials_without_showing_them(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("very-secret\n")
    (tmp_path / "tok").chmod(0o600)
    good = tmp_path / "good.toml"
    good.write_text(f'[uts.test]\ntoken_file = "{tmp_path / "tok"}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "station.central.cli", "check", "-c", str(good)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0 and "credentials readable" in out.stdout and "very-secret" not in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[uts.test]\ntoken_file = "{tmp_path / "missing"}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "station.central.cli", "check", "-c", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 1 and "cannot read" in out.stderr


def test_types_and_unknown_keys() -> None:
    with pytest.raises(ConfigError) as e:
        parse(
            '[submitter]\nledger = "mysql://x"\n[mqtt]\nport = "1883"\ncolour = 1\n[its]\nbatch_size = 0\n[bogus]\n',
            "s.toml",
        )
    problems = e.value.problems
    assert any(p.startswith("s.toml:2: [submitter] ledger = 'mysql://x'") for p in problems)
    assert any(p.startswith("s.toml:4: [mqtt] port = '1883': must be a number") for p in problems)
    assert "s.toml:5: [mqtt] colour: unknown key" in problems
    assert any(p.startswith("s.toml:7: [its] batch_size = 0") for p in problems)
    assert "s.toml:8: [bogus]: unknown table" in problems


def test_web_and_webhooks() -> None:
    example = (ROOT / "examples" / "submitter.toml").read_text()
    c = parse(example)
    assert (c.web.enabled, c.web.host, c.web.port, c.web.language) == (False, "127.0.0.1", 8090, "tr")
    assert c.webhooks == ()
    hooked = parse(
        example.replace("# [[webhooks]]", "[[webhooks]]")
        .replace('# url = "https', 'url = "https')
        .replace("# kinds = [", "kinds = [")
    )
    assert [(h.url, h.kinds) for h in hooked.webhooks] == [
        ("https://hbys.example.org/karekod/announcements", ("unit.refused", "unit.failed", "delivery.closed"))
    ]
    with pytest.raises(ConfigError) as e:
        parse(
            example.replace('language = "tr"', 'language = "de"').replace("port = 8090", "port = 0")
            + '\n[[webhooks]]\nurl = "ftp://x"\n[[webhooks]]\nurl = "http://x"\nkinds = ["everything"]\nretries = 3\n'
        )
    text = str(e.value)
    for wanted in (
        "[web] language = 'de'",
        "[web] port = 0",
        "url = 'ftp://x'",
        "kinds = ['everything']",
        "retries: unknown key",
    ):
        assert wanted in text, wanted
