"""Operators' manners of both daemons: JSON logs, and one line when the broker is unreachable and
one when it is back (not one per retry)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from central import submitter_config
from harness import ROOT, Broker, wait_for, write_config


def _lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if line.strip()]


def test_both_daemons_log_json_and_say_once_that_the_broker_is_gone_and_back(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # its port is chosen, the broker not started yet
    submitter_log, station_log = tmp_path / "submitter.log", tmp_path / "station.log"
    cfg = submitter_config(tmp_path, broker.port, "http://127.0.0.1:9")
    (tmp_path / "st").mkdir()
    station_cfg = write_config(tmp_path / "st", broker.port, "line-1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "station.central.cli", "run", "-c", str(cfg), "--log-format", "json"],
            cwd=ROOT,
            stdout=submitter_log.open("ab"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "station.edge.cli",
                "run",
                "--simulate",
                "-c",
                str(station_cfg),
                "--log-format",
                "json",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=station_log.open("ab"),
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        for log in (submitter_log, station_log):
            wait_for(lambda log=log: "unreachable" in log.read_text(), 20, what=f"{log.name}: unreachable")
        time.sleep(4)  # paho retries at 1, 2, 4 s...: still one line each
        broker.start()
        for log in (submitter_log, station_log):
            wait_for(lambda log=log: "reachable again" in log.read_text(), 60, what=f"{log.name}: back")
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        broker.stop()
    for log in (submitter_log, station_log):
        records = [json.loads(line) for line in _lines(log)]  # every line one JSON object
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
        gone = [r for r in records if "unreachable" in r["message"]]
        back = [r for r in records if "reachable again" in r["message"]]
        assert len(gone) == 1 and gone[0]["level"] == "WARNING", log.name
        assert len(back) == 1 and "failed attempts" in back[0]["message"], log.name


@pytest.mark.parametrize(
    "argv",
    [
        ["station.edge.cli", "decode", "--today", "2026-13-01"],
        ["station.edge.cli", "events", "--reason", "no_such_reason", "-c", "/nonexistent.toml"],
        ["station.edge.cli", "status", "--max-backlog-age", "soon"],
        ["station.central.cli", "failures", "--service", "sgk", "-c", "/nonexistent.toml"],
        ["station.central.cli", "export", "--from", "2026-13-01", "--to", "2026-12-01"],
        ["station.central.cli", "retry"],
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    if argv[-1] in ("--to", "2026-12-01", "retry"):  # these reach the command: give them a real file
        argv = [*argv, "-c", str(submitter_config(tmp_path, 1, "http://127.0.0.1:9"))]
    done = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, input="", timeout=60)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(("station: ", "station ", "station-submitter")), lines
