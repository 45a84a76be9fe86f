"""Prometheus metrics: counted in plain Python on the request path, exported through
prometheus-client in batches.

``Counts`` is what the rest of the gateway touches: dicts and integers, a fraction of a
microsecond per request. ``Exporter`` moves them into prometheus-client's metrics every
``FLUSH_INTERVAL`` seconds, before each scrape and at shutdown. The batching matters with
``--workers N``: prometheus-client's multiprocess mode (one scrape sums every worker) keeps
each value in a memory-mapped file per process, and one increment there costs 2 to 5 µs,
a tenth of a cached ``/auth``.

Multiprocess mode is on when ``PROMETHEUS_MULTIPROC_DIR`` is set, which ``gateway serve``
does (a fresh directory per run) before any process imports prometheus-client; this module
therefore imports prometheus-client only inside ``Exporter``. Without it (tests, an
embedded app), each app has its own registry.

The metric names and labels are listed in the README (Operating it).
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["LAG_BUCKETS", "LATENCY_BUCKETS", "MULTIPROC_ENV", "Counts", "Exporter"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds between flushes of ``Counts`` into prometheus-client.
FLUSH_INTERVAL = 1.0
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class _Histogram:
    """Observations of one label set, bucketed as prometheus-client buckets them."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * (size + 1)  # the last one is +Inf
        self.total = 0.0


class Counts:
    """What happened since the last flush, in this process."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}
        self.logins: defaultdict[str, int] = defaultdict(int)
        self.issued: defaultdict[str, int] = defaultdict(int)
        self.revoked: defaultdict[str, int] = defaultdict(int)
        self.cache_hits = 0
        self.cache_misses = 0
        self.lags: list[float] = []

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request: ``route`` is the route's pattern, never the raw path."""
        self.requests[(route, method, status)] += 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = _Histogram(len(LATENCY_BUCKETS))
        histogram.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        histogram.total += seconds

    def login(self, outcome: str) -> None:
        """A password check: ``succeeded``, ``failed``, or ``banned`` (refused unchecked
        under regulation: the regulation bans as a user sees them)."""
        self.logins[outcome] += 1

    def token_issued(self, kind: str) -> None:
        self.issued[kind] += 1

    def tokens_revoked(self, reason: str, count: int) -> None:
        """``count`` token rows revoked for ``reason`` (logout, deleted, password_changed, …)."""
        if count:
            self.revoked[reason] += count

    def revocation_applied(self, lag: float) -> None:
        """A logged revocation reached this process's cache ``lag`` seconds after it was made."""
        self.lags.append(max(lag, 0.0))


class Exporter:
    """prometheus-client metrics fed from a ``Counts``; ``render`` answers a scrape."""

    def __init__(self, counts: Counts) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.counts = counts
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._registry = CollectorRegistry()
        registry = self._registry

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, text, labels, registry=registry)

        self._requests = counter("gateway_requests", "HTTP requests answered, by route "
                                 "pattern, method and status", ("route", "method", "status"))
        self._latency = Histogram("gateway_request_duration_seconds", "Time to answer a request,"
                                  " by route pattern", ("route",), buckets=LATENCY_BUCKETS,
                                  registry=registry)
        self._logins = counter("gateway_logins", "Password checks (login, token pair, Basic, "
                               "portal), by outcome", ("outcome",))
        self._issued = counter("gateway_tokens_issued", "Tokens issued, by kind", ("kind",))
        self._revoked = counter("gateway_tokens_revoked", "Token rows revoked, by reason",
                                ("reason",))
        self._cache = counter("gateway_identity_cache_lookups", "Credentials answered from the "
                              "identity cache (hit) or verified again (miss)", ("result",))
        self._lag = Histogram("gateway_revocation_lag_seconds", "From a revocation's commit "
                              "to its reaching this process's identity cache",
                              buckets=LAG_BUCKETS, registry=registry)

    def flush(self) -> None:
        """Move what ``counts`` gathered into the prometheus-client metrics."""
        counts = self.counts
        requests, counts.requests = counts.requests, defaultdict(int)
        latency, counts.latency = counts.latency, {}
        for (route, method, status), count in requests.items():
            self._requests.labels(route, method, str(status)).inc(count)
        for route, histogram in latency.items():
            _add_observations(self._latency.labels(route), histogram)
        for source, metric in ((counts.logins, self._logins), (counts.issued, self._issued),
                               (counts.revoked, self._revoked)):
            for label, count in source.items():
                metric.labels(label).inc(count)
            source.clear()
        if counts.cache_hits:
            self._cache.labels("hit").inc(counts.cache_hits)
            counts.cache_hits = 0
        if counts.cache_misses:
            self._cache.labels("miss").inc(counts.cache_misses)
            counts.cache_misses = 0
        lags, counts.lags = counts.lags, []
        for lag in lags:
            self._lag.observe(lag)

    def render(self) -> tuple[bytes, str]:
        """The text format of every metric: of every worker in multiprocess mode."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.flush()
        registry: CollectorRegistry = self._registry
        if self.multiprocess:
            from prometheus_client import CollectorRegistry as Registry
            from prometheus_client import multiprocess

            registry = Registry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def _add_observations(child: Any, histogram: _Histogram) -> None:
    """Add a batch of bucketed observations to a prometheus-client histogram child.

    prometheus-client has no public call for a batch; ``observe`` per request is what the
    batching avoids. Its child keeps per-bucket values (not cumulative) in ``_buckets`` and
    the sum in ``_sum``, which ``observe`` increments; tests/test_metrics.py checks the
    scraped buckets, count and sum against requests made, so a change there fails loudly.
    """
    child._sum.inc(histogram.total)
    for index, count in enumerate(histogram.buckets):
        if count:
            child._buckets[index].inc(count)
