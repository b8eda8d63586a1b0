"""The HBYS/ERP API: JSON over HTTP, token-authenticated, described by OpenAPI.

Every body is parsed into a model at the edge (pydantic, whose schemas make the OpenAPI
description) and then into the wire contract's own messages where it becomes one (an order's
lines are :class:`station.wire.OrderLine`), so the API refuses exactly what the stations would;
a refusal is a 4xx with ``detail`` saying why, never a 5xx. The work is done by the same ledger
functions as the CLI and the console; each change is written to the audit table as ``api:NAME``.
"""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time.

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from station.central import accounts, announce, console, deliveries, orders, recalls
from station.central.ledger import Job, JobState
from station.wire import BadMessage, DeliveryState, OrderLine

if TYPE_CHECKING:
    from station.central.web.app import Console

DESCRIPTION = """\
What the depot's or hospital's systems need from Karekod Station's central side: incoming
deliveries and how far each has come, orders for the conveyor stations, the recall list, each
unit's result at ÜTS/İTS, and announcements of refusals and closed deliveries (also pushed to
`[[webhooks]]`). Authenticate with `Authorization: Bearer <token>`; make a token with
`station-submitter token add NAME`.
"""

PRINTABLE = r"^[!-~]{1,64}$"
bearer = HTTPBearer(auto_error=False, description="A token from `station-submitter token add NAME`")


class Problem(BaseModel):
    detail: str


class Delivery(BaseModel):
    id: str
    site: str
    service: str
    document: str = Field(description="the waybill (ÜTS BNO, PTS documentNumber)")
    sender: str
    state: str = Field(description="open, closed or withdrawn")
    expected: int
    received: int | None = Field(description="from the station's summary, once closed")
    received_so_far: int = Field(description="units received by the stations so far")
    missing: int | None
    unexpected: int | None
    notified: int
    refused: int


class UnitState(BaseModel):
    station: str
    di: str | None
    gtin: str | None
    serial: str | None
    batch: str | None
    state: str
    code: str | None
    message: str | None


class DeliveryDetail(BaseModel):
    delivery: Delivery
    summary: dict[str, Any] | None = Field(description="the station's summary (SummaryMessage), once closed")
    units: list[UnitState]


class Order(BaseModel):
    id: str
    site: str | None
    station: str
    buyer: str
    document: str
    state: str
    ordered: int | None
    sent: int | None
    sent_so_far: int
    not_in_order: int | None
    notified: int
    package_request: str | None


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gtin: str = Field(pattern=PRINTABLE, description="GTIN (8-14 digits) or device identifier")
    quantity: int = Field(ge=1, le=1_000_000)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the conveyor station that fills it")
    buyer: str = Field(pattern=r"^\d{1,18}$", description="İTS: the buyer's GLN; ÜTS: its institution number")
    document: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$", description="the tote label")
    lines: list[OrderLineIn] = Field(default=[], max_length=10_000, description="empty: any box goes")


class Recall(BaseModel):
    gtin: str
    batch: str
    serial: str
    note: str | None
    source: str | None
    added_at: float


class RecallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gtin: str = Field(pattern=PRINTABLE)
    batch: str = Field(default="*", pattern=PRINTABLE, description="a batch, or * for every batch")
    serial: str = Field(default="*", pattern=PRINTABLE, description="one unit's serial, or *")
    note: str = Field(default="", max_length=200, pattern=r"^[^\x00]*$")


class Result(BaseModel):
    event_id: str
    station: str
    site: str | None
    service: str | None
    operation: str | None
    gtin: str | None
    serial: str | None
    batch: str | None
    di: str | None
    state: str
    code: str | None
    message: str | None = Field(description="the service's message, placeholders filled")
    reference: str | None = Field(description="the service's notification id (ÜTS BID, İTS notificationId)")
    delivery: str | None
    order_id: str | None
    updated_at: str


class Announcement(BaseModel):
    model_config = ConfigDict(extra="allow")
    seq: int
    at: str
    kind: str = Field(description="unit.refused, unit.failed or delivery.closed")


class Announcements(BaseModel):
    announcements: list[Announcement]
    next_after: int = Field(description="pass as `after` next time")


def _result(j: Job) -> Result:
    return Result(
        event_id=j.event_id,
        station=j.station,
        site=j.site,
        service=j.service,
        operation=j.operation,
        gtin=j.gtin,
        serial=j.serial,
        batch=j.batch,
        di=j.di,
        state=j.state,
        code=j.code,
        message=j.message,
        reference=j.reference,
        delivery=j.delivery,
        order_id=j.order_id,
        updated_at=datetime.fromtimestamp(j.updated_at, UTC).isoformat(timespec="milliseconds"),
    )


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"model": Problem, "description": "no valid token"}}


def router(c: "Console") -> APIRouter:
    ledger = c.ledger

    def caller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        owner = accounts.token_owner(ledger, credentials.credentials) if credentials else None
        if owner is None:
            raise HTTPException(401, "a valid API token is needed", headers={"WWW-Authenticate": "Bearer"})
        return f"api:{owner}"

    r = APIRouter(prefix="/api/v1", responses=UNAUTHORIZED)
    Caller = Annotated[str, Depends(caller)]

    @r.get("/deliveries", response_model=list[Delivery], tags=["deliveries"])
    def list_deliveries(_: Caller, state: DeliveryState | None = None) -> list[dict[str, Any]]:
        """Incoming deliveries, newest first, with how far each has come."""
        return deliveries.listing(ledger, state)

    @r.get(
        "/deliveries/{ident}",
        response_model=DeliveryDetail,
        tags=["deliveries"],
        responses={404: {"model": Problem}},
    )
    def get_delivery(_: Caller, ident: str) -> dict[str, Any]:
        """One delivery: its progress, the station's summary once closed, and each unit's notification."""
        found = deliveries.get(ledger, ident)
        row = next(iter(deliveries.listing(ledger, ident=ident)), None)
        if found is None or row is None:
            raise HTTPException(404, f"no delivery {ident}")
        units = [
            dict(zip(("station", "di", "gtin", "serial", "batch", "state", "code", "message"), u, strict=True))
            for u in deliveries.unit_states(ledger, ident)
        ]
        return {"delivery": row, "summary": found[2].as_dict() if found[2] else None, "units": units}

    @r.get("/orders", response_model=list[Order], tags=["orders"])
    def list_orders(_: Caller) -> list[dict[str, Any]]:
        """Orders, newest first, with what was sent in each."""
        return orders.listing(ledger)

    @r.post(
        "/orders",
        response_model=Order,
        status_code=201,
        tags=["orders"],
        responses={
            404: {"model": Problem, "description": "the station is in no site of this submitter"},
            422: {"model": Problem, "description": "the order cannot be taken"},
        },
    )
    def create_order(who: Caller, body: OrderIn) -> dict[str, Any]:
        """Send an order to a conveyor station (a new version when the same buyer and document is open)."""
        site = c.config.site_of(body.station)
        if site is None:
            raise HTTPException(404, f"station {body.station} is in no site of this submitter")
        try:
            lines = [OrderLine.from_dict({"gtin": _gtin(line.gtin), "quantity": line.quantity}) for line in body.lines]
        except BadMessage as e:
            raise HTTPException(422, e.reason) from None
        order = orders.add(ledger, site, body.station, body.buyer, body.document, [(x.gtin, x.quantity) for x in lines])
        console.audit(ledger, who, "order", order.id, f"v{order.version} {body.station} {len(lines)} line(s)")
        return next(o for o in orders.listing(ledger) if o["id"] == order.id)

    @r.get("/recalls", response_model=list[Recall], tags=["recalls"])
    def list_recalls(_: Caller) -> list[dict[str, Any]]:
        """The recall list every station rejects from."""
        return recalls.listing(ledger)

    @r.post("/recalls", status_code=201, tags=["recalls"], responses={200: {"description": "already on the list"}})
    def add_recall(who: Caller, body: RecallIn, response: Response) -> dict[str, Any]:
        """Add a recall (a product, a batch or a unit); every station gets the new list."""
        added = recalls.add(ledger, _gtin(body.gtin), body.batch, body.serial, body.note, source=who)
        if added:
            console.audit(ledger, who, "recall add", body.gtin, f"batch {body.batch} serial {body.serial}")
        else:
            response.status_code = 200
        return {"added": added, "version": recalls.version(ledger)}

    @r.delete("/recalls", tags=["recalls"], responses={404: {"model": Problem}})
    def remove_recall(
        who: Caller,
        gtin: Annotated[str, Query(pattern=PRINTABLE)],
        batch: Annotated[str, Query(pattern=PRINTABLE)] = "*",
        serial: Annotated[str, Query(pattern=PRINTABLE)] = "*",
    ) -> dict[str, Any]:
        """Take a recall off the list."""
        if not recalls.remove(ledger, _gtin(gtin), batch, serial):
            raise HTTPException(404, "not on the recall list")
        console.audit(ledger, who, "recall remove", gtin, f"batch {batch} serial {serial}")
        return {"removed": True, "version": recalls.version(ledger)}

    @r.get("/results", response_model=list[Result], tags=["units"])
    def list_results(
        _: Caller,
        station: str | None = None,
        site: str | None = None,
        code: str | None = None,
        state: Annotated[list[JobState] | None, Query()] = None,
        since: Annotated[datetime | None, Query(description="on the unit's arrival here; UTC unless it says")] = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[Result]:
        """Units' notification results, newest change first (default: every state)."""
        where = console.Filter(
            station=station,
            site=site,
            code=code,
            since=_seconds(since),
            until=_seconds(until),
            states=tuple(state) if state else tuple(JobState),
        )
        return [_result(j) for j in console.needing_person(ledger, where, limit=limit)]

    @r.get("/units", response_model=list[Result], tags=["units"])
    def unit(
        _: Caller,
        gtin: Annotated[str, Query(pattern=PRINTABLE, description="GTIN or device identifier")],
        serial: Annotated[str | None, Query(pattern=PRINTABLE)] = None,
    ) -> list[Result]:
        """One unit's notifications (or a product's, without a serial)."""
        history = console.unit_history(ledger, _gtin(gtin), serial)
        return [_result(j) for j in history.jobs]

    @r.get("/announcements", response_model=Announcements, tags=["announcements"])
    def announcements(
        _: Caller,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Refusals, failures and closed deliveries after ``after``, in order (the webhooks' feed, to pull)."""
        found, cursor = announce.after(ledger, after, limit)
        return {"announcements": [a.as_dict() for a in found], "next_after": cursor}

    return r


def _seconds(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _gtin(text: str) -> str:
    """Digits up to 14 are a GTIN, padded to 14 as the ledger keeps them; anything else is a DI."""
    return text.zfill(14) if text.isdigit() and len(text) <= 14 else text
