"""Metrics: the Prometheus text format 0.0.4 (checked by a small parser written from the
format's description), values that move as requests are counted, and the JSON snapshot."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pgmcp.observe import metrics
from pgmcp.observe.metrics import Counter, Gauge, Histogram, Registry, render_prometheus, snapshot

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>.*)\}})? (?P<value>\S+)(?: (?P<ts>-?\d+))?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def parse(text: str) -> tuple[dict[str, str], dict[str, str], list[Sample]]:
    """Parse exposition text strictly: (types, helps, samples); any malformed line fails."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    samples: list[Sample] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and name not in helps, line
            helps[name] = doc
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            assert name not in types, f"second TYPE for {name}"
            seen = {s.name for s in samples}
            assert not seen & {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}, f"TYPE after {name}"
            types[name] = kind
        else:
            assert not line.startswith("#") and line, line
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels: list[tuple[str, str]] = []
            raw = match["labels"] or ""
            pos = 0
            while pos < len(raw):
                lm = _LABEL.match(raw, pos)
                assert lm, f"bad labels in {line!r}"
                labels.append((lm[1], _unescape(lm[2])))
                pos = lm.end()
            value = match["value"]
            assert value in {"+Inf", "-Inf", "NaN"} or re.fullmatch(r"-?\d+(\.\d+)?(e[+-]?\d+)?", value), line
            samples.append(Sample(match["name"], tuple(labels), float(value)))
            assert _base(match["name"], types) in types, f"sample before its TYPE: {line}"
    return types, helps, samples


def _base(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return name


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and dict(s.labels) == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_project_metrics_are_declared() -> None:
    types, helps, _ = parse(render_prometheus())
    assert types == {
        "pgmcp_requests_total": "counter",
        "pgmcp_request_duration_seconds": "histogram",
        "pgmcp_llm_calls_total": "counter",
        "pgmcp_llm_tokens_total": "counter",
        "pgmcp_llm_latency_seconds": "histogram",
        "pgmcp_policy_refusals_total": "counter",
        "pgmcp_db_query_duration_seconds": "histogram",
        "pgmcp_db_active_connections": "gauge",
        "pgmcp_schema_cache_age_seconds": "gauge",
    }
    assert all(helps[name] for name in types)


def test_project_metrics_move_as_requests_are_served() -> None:
    _, _, before = parse(render_prometheus())
    assert not [s for s in before if dict(s.labels).get("database") == "metrics-test"]
    metrics.REQUESTS_TOTAL.inc(tool="execute_sql", database="metrics-test", status="ok")
    metrics.REQUESTS_TOTAL.inc(tool="execute_sql", database="metrics-test", status="ok")
    metrics.REQUESTS_TOTAL.inc(tool="execute_sql", database="metrics-test", status="denied")
    metrics.POLICY_REFUSALS_TOTAL.inc(database="metrics-test", rule="PGM301")
    metrics.DB_QUERY_DURATION.observe(0.02, database="metrics-test")
    metrics.LLM_TOKENS_TOTAL.inc(120, provider="metrics-test", direction="input")
    metrics.DB_ACTIVE_CONNECTIONS.set_function(lambda: 3, database="metrics-test")
    try:
        _, _, after = parse(render_prometheus())
        ok = {"tool": "execute_sql", "database": "metrics-test", "status": "ok"}
        assert _value(after, "pgmcp_requests_total", **ok) == 2
        assert _value(after, "pgmcp_requests_total", **{**ok, "status": "denied"}) == 1
        assert _value(after, "pgmcp_policy_refusals_total", database="metrics-test", rule="PGM301") == 1
        assert _value(after, "pgmcp_db_query_duration_seconds_count", database="metrics-test") == 1
        bucket = "pgmcp_db_query_duration_seconds_bucket"
        assert _value(after, bucket, database="metrics-test", le="0.025") == 1
        assert _value(after, bucket, database="metrics-test", le="0.01") == 0
        assert _value(after, "pgmcp_llm_tokens_total", provider="metrics-test", direction="input") == 120
        assert _value(after, "pgmcp_db_active_connections", database="metrics-test") == 3
        stats = snapshot()
        json.dumps(stats)  # JSON-ready
        refusals = stats["pgmcp_policy_refusals_total"]
        assert {"labels": {"database": "metrics-test", "rule": "PGM301"}, "value": 1.0} in refusals["samples"]
    finally:
        metrics.DB_ACTIVE_CONNECTIONS.remove(database="metrics-test")


def test_histogram_buckets_sum_count() -> None:
    reg = Registry()
    hist = Histogram("t_seconds", "test", ("tool",), registry=reg, buckets=(0.1, 1, 10))
    for value in (0.05, 0.1, 0.5, 3, 99):
        hist.observe(value, tool="a")
    with hist.time(tool="b"):
        pass
    types, _, samples = parse(reg.render())
    assert types == {"t_seconds": "histogram"}
    buckets = [(dict(s.labels)["le"], s.value) for s in samples
               if s.name == "t_seconds_bucket" and dict(s.labels)["tool"] == "a"]
    assert buckets == [("0.1", 2), ("1", 3), ("10", 4), ("+Inf", 5)]
    assert _value(samples, "t_seconds_count", tool="a") == 5
    assert math.isclose(_value(samples, "t_seconds_sum", tool="a"), 102.65)
    assert _value(samples, "t_seconds_count", tool="b") == 1
    # Buckets are cumulative and the +Inf bucket equals the count, for every label set.
    for tool in ("a", "b"):
        values = [s.value for s in samples if s.name == "t_seconds_bucket" and dict(s.labels)["tool"] == tool]
        assert values == sorted(values)
        assert values[-1] == _value(samples, "t_seconds_count", tool=tool)


def test_label_values_and_help_are_escaped() -> None:
    reg = Registry()
    counter = Counter("t_total", 'help with \\ and\nnewline and "quotes"', ("db",), registry=reg)
    tricky = 'we"ird\\name\nx'
    counter.inc(2.5, db=tricky)
    text = reg.render()
    assert "# HELP t_total help with \\\\ and\\nnewline and \"quotes\"\n" in text
    _, _, samples = parse(text)
    assert samples == [Sample("t_total", (("db", tricky),), 2.5)]


def test_unlabelled_metrics_and_gauges() -> None:
    reg = Registry()
    Counter("t_plain_total", "plain", registry=reg)
    gauge = Gauge("t_gauge", "gauge", ("db",), registry=reg)
    gauge.set(5, db="x")
    gauge.dec(2, db="x")
    gauge.set_function(lambda: 1 / 0, db="broken")
    _, _, samples = parse(reg.render())
    assert _value(samples, "t_plain_total") == 0
    assert _value(samples, "t_gauge", db="x") == 3
    assert math.isnan(_value(samples, "t_gauge", db="broken"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.inc(tool="x"), "takes labels"),
        (lambda c: c.inc(tool="x", database="d", status="ok", extra="no"), "takes labels"),
        (lambda c: c.inc(-1, tool="x", database="d", status="ok"), "cannot go down"),
    ],
)
def test_misuse_is_refused(call: Callable[[Counter], None], message: str) -> None:
    counter = Counter("t_total", "t", ("tool", "database", "status"), registry=Registry())
    with pytest.raises(ValueError, match=message):
        call(counter)


def test_a_name_is_registered_once() -> None:
    reg = Registry()
    Counter("dup_total", "x", registry=reg)
    with pytest.raises(ValueError, match="already registered"):
        Gauge("dup_total", "x", registry=reg)
