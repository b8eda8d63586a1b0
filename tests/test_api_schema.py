"""The HBYS API against its own OpenAPI description (schemathesis): generated requests, valid and
not, to every operation; no answer is a 5xx, and every answer fits the description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from web import ConsoleServer, console_config, ingest, refuse, status

from station.central import accounts
from station.central.ledger import Ledger


def test_every_operation_conforms_and_never_fails(tmp_path: Path) -> None:
    config = console_config(tmp_path)
    ledger = Ledger(config.ledger, config.id)
    ingest(ledger, config, "line-1", range(1, 9))
    refuse(ledger, "its", "60002", "Ürün 8680000000007 üzerinde kayıtlı.", 5)
    status(ledger, "line-1", backlog=0)
    token = {"Authorization": f"Bearer {accounts.add_token(ledger, 'schemathesis')}"}
    server = ConsoleServer(config, ledger)
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 9
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                case.call_and_validate(headers=token)

            run()
    finally:
        server.close()
