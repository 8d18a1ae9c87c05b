"""The Prometheus metrics a serving process records, and their text exposition.

Under `scimhost serve` every process writes its metrics into one folder (prometheus-client's
multiprocess mode, chosen by PROMETHEUS_MULTIPROC_DIR before prometheus_client is first
imported), so whichever worker answers `/metrics` reports the sum of all. An application built
in a process without that variable (a test, an embedding program) keeps its metrics in a
registry of its own.

Every label value comes from the configuration (source slugs, sink names, runtime names) or a
fixed set (methods, statuses, outcomes, route names), never from client input or ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Request durations: a SCIM call takes a millisecond to a few seconds (a large group's PUT).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The fixed label values of the counters an operator alerts on; `start_series` makes each
# (with every configured source and sink) a series at zero, so that `rate()` and absence
# alerts work on a host that has seen nothing yet.
AUTH_FAILURE_REASONS = ("missing_credentials", "invalid_credentials")
RATE_LIMIT_REASONS = ("rate", "concurrency")
WRITE_ACTIONS = ("create", "replace", "patch", "delete", "remap", "restore")
MAPPING_OUTCOMES = ("ok", "error", "timeout", "saturated")
DELIVERY_OUTCOMES = ("done", "retry", "dead", "paused")


@dataclass(frozen=True)
class SinkGauges:
    """A sink's delivery backlog as the store reports it when `/metrics` is read."""

    sink: str
    pending: int
    dead: int
    oldest_pending_age_seconds: float


class Metrics:
    """The counters, histograms and gauges of one process (its own registry outside serve)."""

    def __init__(self) -> None:
        # Imported here, not at module level: `serve` sets PROMETHEUS_MULTIPROC_DIR first, and
        # prometheus_client picks its storage for values when it is first imported.
        import prometheus_client as prom
        from prometheus_client import values

        self._prom = prom
        self.multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
        registry = None if self.multiprocess else prom.CollectorRegistry()
        self._registry = registry
        request_labels = ("source", "resource_type", "method", "status")
        self.requests = prom.Counter("scimhost_requests", "SCIM requests answered", request_labels, registry=registry)
        self.request_duration = prom.Histogram(
            "scimhost_request_duration_seconds",
            "Time to answer a SCIM request",
            request_labels,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.auth_failures = prom.Counter(
            "scimhost_auth_failures",
            "SCIM requests refused for their credentials",
            ("source", "reason"),
            registry=registry,
        )
        self.rate_limited = prom.Counter(
            "scimhost_rate_limited",
            "SCIM requests refused with 429 by the source's limits",
            ("source", "reason"),
            registry=registry,
        )
        self.resource_writes = prom.Counter(
            "scimhost_resource_writes",
            "Committed resource writes",
            ("source", "resource_type", "action"),
            registry=registry,
        )
        self.mapping_evaluations = prom.Counter(
            "scimhost_mapping_evaluations",
            "Property mapping evaluations (one per write with mappings)",
            ("source", "outcome"),
            registry=registry,
        )
        self.mapping_pool_workers = prom.Gauge(
            "scimhost_mapping_pool_workers",
            "Mapping worker processes",
            ("runtime",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.mapping_pool_busy = prom.Gauge(
            "scimhost_mapping_pool_busy_workers",
            "Mapping workers evaluating now",
            ("runtime",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.mapping_pool_queue = prom.Gauge(
            "scimhost_mapping_pool_queue",
            "Writes waiting for a mapping worker",
            ("runtime",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.deliveries = prom.Counter(
            "scimhost_deliveries",
            "Delivery attempts by outcome (done, retry, dead)",
            ("sink", "outcome"),
            registry=registry,
        )
        # (source, route, method, status) -> the counter's and the histogram's children: every
        # request records both, and looking children up by label values costs more than using them.
        self._request_series: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}

    def start_series(self, sources: Iterable[tuple[str, Iterable[str]]], sinks: Iterable[str]) -> None:
        """Every series of the alerting counters whose labels are known at start, at zero:
        `sources` as (slug, its resource type names), `sinks` by name."""
        for slug, resource_types in sources:
            for reason in AUTH_FAILURE_REASONS:
                self.auth_failures.labels(slug, reason)
            for reason in RATE_LIMIT_REASONS:
                self.rate_limited.labels(slug, reason)
            for resource_type in resource_types:
                for action in WRITE_ACTIONS:
                    self.resource_writes.labels(slug, resource_type, action)
            for outcome in MAPPING_OUTCOMES:
                self.mapping_evaluations.labels(slug, outcome)
        for sink in sinks:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(sink, outcome)

    def request(self, source: str, route: str, method: str, status: str, seconds: float) -> None:
        """One SCIM request answered."""
        key = (source, route, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (self.requests.labels(*key), self.request_duration.labels(*key))
        series[0].inc()
        series[1].observe(seconds)

    def exposition(self, sinks: Iterable[SinkGauges] = ()) -> tuple[bytes, str]:
        """The text format of every metric (all processes' under serve), with the sinks' backlog
        gauges read from the store; and its content type."""
        prom = self._prom
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = self._registry
        backlog = prom.CollectorRegistry()
        backlog.register(_SinkCollector(list(sinks)))
        return prom.generate_latest(registry) + prom.generate_latest(backlog), prom.CONTENT_TYPE_LATEST


class _SinkCollector:
    """The outbox gauges of one scrape (computed from the store, so no process keeps them)."""

    def __init__(self, sinks: list[SinkGauges]) -> None:
        self.sinks = sinks

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        families = {
            "pending": GaugeMetricFamily("scimhost_outbox_pending", "Deliveries waiting to be sent", labels=["sink"]),
            "dead": GaugeMetricFamily("scimhost_outbox_dead", "Deliveries given up on", labels=["sink"]),
            "oldest_pending_age_seconds": GaugeMetricFamily(
                "scimhost_outbox_oldest_pending_age_seconds",
                "Age of the oldest waiting delivery's event",
                labels=["sink"],
            ),
        }
        for sink in self.sinks:
            for name, family in families.items():
                family.add_metric([sink.sink], getattr(sink, name))
        return list(families.values())


def method_label(method: str) -> str:
    return method if method in METHODS else "other"
