"""Counters, gauges and histograms, rendered in the Prometheus text format 0.0.4.

Dependency-free on purpose: pgmcp needs a handful of metrics, served at `/metrics` on the HTTP
transport and as `pgmcp stats` (via `snapshot()`) on stdio. Every metric lives in a
`Registry`; the project's metrics are predefined below in `REGISTRY`. Thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

LabelValues = tuple[str, ...]
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def format_value(value: float) -> str:
    value = float(value)  # bucket counts are ints (int.is_integer is 3.12+)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class Metric:
    """Shared parts: name, help text, label names, and the lock guarding the values."""

    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 registry: Registry | None = None) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        (REGISTRY if registry is None else registry).register(self)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {list(self.labelnames)}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def _labels(self, key: LabelValues, extra: tuple[tuple[str, str], ...] = ()) -> str:
        pairs = [*zip(self.labelnames, key, strict=True), *extra]
        if not pairs:
            return ""
        return "{" + ",".join(f'{n}="{escape_label_value(v)}"' for n, v in pairs) + "}"

    def samples(self) -> list[tuple[str, str, float]]:
        """(name suffix-included, rendered labels, value) for every sample, in a stable order."""
        raise NotImplementedError

    def snapshot(self) -> list[dict[str, Any]]:
        raise NotImplementedError


class Counter(Metric):
    """A value that only goes up (requests, tokens, refusals)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 registry: Registry | None = None) -> None:
        super().__init__(name, help, labelnames, registry)
        self._values: dict[LabelValues, float] = {} if self.labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down ({amount})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[tuple[str, str, float]]:
        with self._lock:
            items = sorted(self._values.items())
        return [(self.name, self._labels(k), v) for k, v in items]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            items = sorted(self._values.items())
        return [{"labels": dict(zip(self.labelnames, k, strict=True)), "value": v} for k, v in items]


class Gauge(Metric):
    """A value that goes up and down, set directly or read from a callback at render time."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 registry: Registry | None = None) -> None:
        super().__init__(name, help, labelnames, registry)
        self._values: dict[LabelValues, float] = {}
        self._callbacks: dict[LabelValues, Callable[[], float]] = {}

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._callbacks.pop(key, None)
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def set_function(self, callback: Callable[[], float], **labels: str) -> None:
        """Read the value from `callback` whenever the metric is rendered (e.g. a pool's size)."""
        key = self._key(labels)
        with self._lock:
            self._values.pop(key, None)
            self._callbacks[key] = callback

    def remove(self, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values.pop(key, None)
            self._callbacks.pop(key, None)

    def value(self, **labels: str) -> float:
        key = self._key(labels)
        with self._lock:
            callback = self._callbacks.get(key)
            if callback is None:
                return self._values.get(key, 0.0)
        return float(callback())

    def _items(self) -> list[tuple[LabelValues, float]]:
        with self._lock:
            values = dict(self._values)
            callbacks = dict(self._callbacks)
        for key, callback in callbacks.items():
            try:
                values[key] = float(callback())
            except Exception:  # a broken callback must not break /metrics
                values[key] = math.nan
        return sorted(values.items())

    def samples(self) -> list[tuple[str, str, float]]:
        return [(self.name, self._labels(k), v) for k, v in self._items()]

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"labels": dict(zip(self.labelnames, k, strict=True)), "value": v} for k, v in self._items()]


class Histogram(Metric):
    """Observations counted into fixed cumulative buckets (latencies)."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 registry: Registry | None = None, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        if "le" in labelnames:
            raise ValueError("'le' is reserved for histogram buckets")
        super().__init__(name, help, labelnames, registry)
        self.buckets = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        # per label set: [count per bucket (non-cumulative, last = +Inf)], sum
        self._values: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        index = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        with self._lock:
            counts, total = self._values.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[index] += 1
            total[0] += value

    @contextmanager
    def time(self, **labels: str) -> Iterator[None]:
        """Observe the duration of the `with` block, in seconds."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start, **labels)

    def _items(self) -> list[tuple[LabelValues, list[int], float]]:
        with self._lock:
            return sorted((k, list(c), s[0]) for k, (c, s) in self._values.items())

    def samples(self) -> list[tuple[str, str, float]]:
        out: list[tuple[str, str, float]] = []
        for key, counts, total in self._items():
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = (("le", format_value(bound)),)
                out.append((self.name + "_bucket", self._labels(key, le), running))
            out.append((self.name + "_sum", self._labels(key), total))
            out.append((self.name + "_count", self._labels(key), running))
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, counts, total in self._items():
            cumulative: dict[str, int] = {}
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                cumulative[format_value(bound)] = running
            out.append({"labels": dict(zip(self.labelnames, key, strict=True)), "count": running,
                        "sum": total, "buckets": cumulative})
        return out


class Registry:
    """The metrics of one process, in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._lock = threading.Lock()

    def register(self, metric: Metric) -> None:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric

    def metrics(self) -> list[Metric]:
        with self._lock:
            return list(self._metrics.values())

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics():
            lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines += [f"{name}{labels} {format_value(value)}" for name, labels, value in metric.samples()]
        return "\n".join(lines) + "\n"

    def snapshot(self) -> dict[str, Any]:
        return {
            m.name: {"type": m.kind, "help": m.help, "labels": list(m.labelnames), "samples": m.snapshot()}
            for m in self.metrics()
        }


REGISTRY = Registry()

REQUESTS_TOTAL = Counter(
    "pgmcp_requests_total", "MCP tool calls, by tool, database and outcome.", ("tool", "database", "status"))
REQUEST_DURATION = Histogram(
    "pgmcp_request_duration_seconds", "Time to answer an MCP tool call.", ("tool",))
LLM_CALLS_TOTAL = Counter(
    "pgmcp_llm_calls_total", "Calls to the LLM provider, by operation and outcome.",
    ("provider", "operation", "status"))
LLM_TOKENS_TOTAL = Counter(
    "pgmcp_llm_tokens_total", "Tokens sent to (input) and received from (output) the LLM provider.",
    ("provider", "direction"))
LLM_LATENCY = Histogram(
    "pgmcp_llm_latency_seconds", "Latency of LLM provider calls.", ("provider",),
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0))
POLICY_REFUSALS_TOTAL = Counter(
    "pgmcp_policy_refusals_total", "Statements refused by the policy, by the rule that refused them.",
    ("database", "rule"))
DB_QUERY_DURATION = Histogram(
    "pgmcp_db_query_duration_seconds", "Time PostgreSQL took to run checked statements.", ("database",))
DB_ACTIVE_CONNECTIONS = Gauge(
    "pgmcp_db_active_connections", "Connections currently checked out of the pool.", ("database",))
SCHEMA_CACHE_AGE = Gauge(
    "pgmcp_schema_cache_age_seconds", "Age of the cached schema snapshot.", ("database",))


def render_prometheus(registry: Registry | None = None) -> str:
    """All metrics in the Prometheus text exposition format 0.0.4 (for GET /metrics)."""
    return (REGISTRY if registry is None else registry).render()


def snapshot(registry: Registry | None = None) -> dict[str, Any]:
    """All metrics as a JSON-ready dict, for `pgmcp stats`."""
    return (REGISTRY if registry is None else registry).snapshot()


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
