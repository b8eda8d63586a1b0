"""The local verdict on a scan: the reader's result plus the site's dating policy.

Expiry is a business rule, not a parse error: an expired box is a perfectly readable karekod, so
it is judged here, after reading, against the site's day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from station.gs1.reader import Karekod, Profile, read
from station.gs1.reasons import Reason


@dataclass(frozen=True, slots=True)
class Policy:
    """What a site accepts."""

    profile: Profile = Profile.ITS
    min_shelf_life_days: int | None = None
    """Refuse as ``short_dated`` a box with fewer days left than this (None: no minimum)."""


# fmt: off
VERDICT_FIELDS = (
    "ok", "reason", "gtin", "serial", "batch", "expiry", "production_date", "sscc", "recovered", "issuer", "di", "udi",
    "message",
)
# fmt: on
"""A verdict's fields as events and ``station decode`` give them (:meth:`Verdict.as_dict`)."""


class Verdict(NamedTuple):
    """Accept or refuse, why, and what was read."""

    ok: bool
    reason: Reason | None
    message: str
    karekod: Karekod | None

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape used by ``station decode``, events and MQTT (:data:`VERDICT_FIELDS`)."""
        return dict(zip(VERDICT_FIELDS, self.values(), strict=True))

    def values(self) -> tuple[Any, ...]:
        """:meth:`as_dict`'s values, in :data:`VERDICT_FIELDS` order (an event's row takes them as they are)."""
        k = self.karekod
        reason = self.reason.value if self.reason else None
        if k is None:
            return (self.ok, reason, None, None, None, None, None, None, False, None, None, None, self.message)
        return (
            self.ok,
            reason,
            k.gtin,
            k.serial,
            k.batch,
            k.expiry.isoformat() if k.expiry else None,
            k.production_date.isoformat() if k.production_date else None,
            k.sscc,
            bool(k.recovered),
            k.issuer.value,
            k.di,
            k.udi,
            self.message,
        )

    def refuse(self, reason: Reason, message: str) -> Verdict:
        """The same reading, refused for a reason found after reading (station rules, storage)."""
        return Verdict(False, reason, message, self.karekod)


def judge(raw: bytes | str, policy: Policy, today: date) -> Verdict:
    """Read ``raw`` and apply the dating policy as of ``today``. Never raises."""
    reading = read(raw, policy.profile, today.year)
    k = reading.karekod
    if not reading.ok:
        assert reading.reason is not None
        return Verdict(False, reading.reason, reading.message, k)
    assert k is not None
    if k.expiry is not None:
        left = (k.expiry - today).days
        if left < 0:
            return Verdict(False, Reason.EXPIRED, f"Expired on {k.expiry.isoformat()}.", k)
        if policy.min_shelf_life_days is not None and left < policy.min_shelf_life_days:
            return Verdict(
                False,
                Reason.SHORT_DATED,
                f"Expires on {k.expiry.isoformat()}, {left} days from now; this site needs at least "
                f"{policy.min_shelf_life_days}.",
                k,
            )
    return Verdict(True, None, reading.message, k)
