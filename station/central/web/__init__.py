"""The central console: a web view for depot and hospital IT, ``/metrics``, and the HBYS API.

Served by the central side (``station-submitter web``, or inside ``run`` with ``[web] enabled``),
on localhost unless ``[web] host`` says otherwise. FastAPI (Starlette underneath) renders Jinja2
pages on the server; htmx, shipped in the package, refreshes the live tables in place — no
JavaScript build, no CDN. Pages are read-only to anyone who can reach them; retry and cancel need
a logged-in operator (station.central.accounts: local accounts with scrypt hashes, or the reverse
proxy's authenticated user from ``[web] proxy_user_header``), carry a CSRF token, and are written
to the audit table. Every page and the API read the ledger through station.central.console, the
same functions as the CLI.
"""

from __future__ import annotations

from station.central.web.app import make_app, serve

__all__ = ["make_app", "serve"]
