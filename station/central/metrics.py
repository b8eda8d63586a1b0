"""Prometheus metrics of the central side, read from the ledger at each scrape (``GET /metrics``).

Read from the ledger rather than counted in memory, so every submitter sharing a ledger, and a
console serving alone, tell the same figures. Each scrape is a handful of grouped queries on
indexed columns. The stations carry no metrics server of their own: what is known of them here is
their last status over MQTT (backlog, oldest undelivered event, scanner, disk).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from station.central import announce, console
from station.central.config import SubmitterConfig
from station.central.ledger import JobState, Ledger

LATENCY_WINDOW = 300.0
"""National-service latency quantiles are over the calls answered in the last five minutes."""


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LedgerCollector(Collector):
    def __init__(self, config: SubmitterConfig, ledger: Ledger) -> None:
        self.config = config
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        views = console.stations(self.ledger, self.config, self.config.web.stale_after_seconds, now)
        by_liveness = GaugeMetricFamily("karekod_stations", "Stations by how alive they look", labels=["liveness"])
        for liveness in console.Liveness:
            by_liveness.add_metric([liveness], sum(v.liveness is liveness for v in views))
        yield by_liveness
        families: dict[str, tuple[GaugeMetricFamily, Any]] = {
            "up": (
                GaugeMetricFamily("karekod_station_up", "1 when the station is online", labels=["station", "site"]),
                lambda v: float(v.liveness is console.Liveness.ONLINE),
            ),
            "backlog": (
                GaugeMetricFamily(
                    "karekod_station_backlog", "Events the station holds unacked", labels=["station", "site"]
                ),
                lambda v: v.backlog,
            ),
            "oldest": (
                GaugeMetricFamily(
                    "karekod_station_oldest_undelivered_seconds",
                    "Age of the station's oldest undelivered event, by its last status",
                    labels=["station", "site"],
                ),
                lambda v: (
                    v.oldest_undelivered_s if v.oldest_undelivered_s is not None else (0.0 if v.backlog == 0 else None)
                ),
            ),
            "scanner": (
                GaugeMetricFamily(
                    "karekod_station_scanner_connected", "1 when every scanner is connected", labels=["station", "site"]
                ),
                lambda v: None if v.scanner_connected is None else float(v.scanner_connected),
            ),
            "disk": (
                GaugeMetricFamily(
                    "karekod_station_disk_free_bytes", "Free bytes on the station's disk", labels=["station", "site"]
                ),
                lambda v: v.disk_free_bytes,
            ),
            "seen": (
                GaugeMetricFamily(
                    "karekod_station_status_age_seconds",
                    "Seconds since the station's last status",
                    labels=["station", "site"],
                ),
                lambda v: v.seen_s_ago,
            ),
        }
        for family, value in families.values():
            for v in views:
                x = value(v)
                if x is not None:
                    family.add_metric([v.station, v.site or ""], float(x))
            yield family
        events = CounterMetricFamily(
            "karekod_events_ingested", "Station events stored in the ledger", labels=["station"]
        )
        for v in views:
            events.add_metric([v.station], v.events)
        yield events
        jobs = GaugeMetricFamily("karekod_jobs", "Units by notification state", labels=["service", "state"])
        for (service, state), n in console.jobs_by_state(self.ledger).items():
            jobs.add_metric([str(service), str(state)], int(n))
        yield jobs
        oldest = GaugeMetricFamily(
            "karekod_oldest_queued_seconds", "Age of the oldest unit waiting to be sent", labels=["service"]
        )
        for service, created in self.ledger.query(
            f"SELECT coalesce(service, ''), min(created_at) FROM jobs WHERE state IN ('{JobState.QUEUED}',"
            f" '{JobState.IN_DOUBT}') GROUP BY 1"
        ):
            oldest.add_metric([str(service)], max(0.0, now - float(created)))
        yield oldest
        requests = CounterMetricFamily(
            "karekod_service_requests", "Calls to ÜTS and İTS by how they ended", labels=["service", "state"]
        )
        for service, state, n in self.ledger.query("SELECT service, state, count(*) FROM requests GROUP BY 1, 2"):
            requests.add_metric([str(service), str(state)], int(n))
        yield requests
        latency = GaugeMetricFamily(
            "karekod_service_latency_seconds",
            f"Call latency over the last {LATENCY_WINDOW:.0f} s, by quantile",
            labels=["service", "quantile"],
        )
        answered: dict[str, list[float]] = {}
        for service, took in self.ledger.query(
            "SELECT service, answered_at - created_at FROM requests WHERE answered_at >= ? AND state = 'answered'",
            (now - LATENCY_WINDOW,),
        ):
            answered.setdefault(str(service), []).append(float(took))
        for service, values in sorted(answered.items()):
            for q in (0.5, 0.9, 0.99):
                latency.add_metric([service, str(q)], _quantile(values, q))
        yield latency
        errors = GaugeMetricFamily(
            "karekod_service_errors_recent",
            f"Calls in the last {LATENCY_WINDOW:.0f} s without a definite answer (in doubt, not sent)",
            labels=["service"],
        )
        for service, n in self.ledger.query(
            "SELECT service, count(*) FROM requests WHERE created_at >= ? AND state IN ('in_doubt', 'not_sent')"
            " GROUP BY 1",
            (now - LATENCY_WINDOW,),
        ):
            errors.add_metric([str(service)], int(n))
        yield errors
        if self.config.webhooks:
            lag = GaugeMetricFamily("karekod_webhook_lag", "Announcements a webhook has not taken yet", labels=["url"])
            for url, n in announce.Webhooks(self.config, self.ledger).lag().items():
                lag.add_metric([url], n)
            yield lag


def registry(config: SubmitterConfig, ledger: Ledger) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding the ledger's figures."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(LedgerCollector(config, ledger))
    return reg
