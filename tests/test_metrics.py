"""Metrics: pgmcp's metric names, types and labels on its own prometheus_client registry, the
exposition checked by a small strict parser written from the text format's description, and
values that move as requests are counted."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pgmcp.cli.stats import parse_prometheus
from pgmcp.observe import metrics
from pgmcp.observe.metrics import render_prometheus

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
    metrics.REQUESTS_TOTAL.labels(tool="execute_sql", database="metrics-test", status="ok").inc()
    metrics.REQUESTS_TOTAL.labels(tool="execute_sql", database="metrics-test", status="ok").inc()
    metrics.REQUESTS_TOTAL.labels(tool="execute_sql", database="metrics-test", status="denied").inc()
    metrics.POLICY_REFUSALS_TOTAL.labels(database="metrics-test", rule="PGM301").inc()
    metrics.DB_QUERY_DURATION.labels(database="metrics-test").observe(0.02)
    metrics.LLM_TOKENS_TOTAL.labels(provider="metrics-test", direction="input").inc(120)
    metrics.DB_ACTIVE_CONNECTIONS.labels(database="metrics-test").set_function(lambda: 3)
    try:
        text = render_prometheus()
        _, _, after = parse(text)
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
        assert metrics.sample_value("pgmcp_requests_total", **ok) == 2
        # `pgmcp stats` reads the same samples out of the same text.
        read = {(n, tuple(sorted(lab.items())), v) for n, lab, v in parse_prometheus(text)}
        assert read == {(s.name, tuple(sorted(s.labels)), s.value) for s in after}
    finally:
        metrics.DB_ACTIVE_CONNECTIONS.remove("metrics-test")


def test_histogram_buckets_sum_count() -> None:
    provider = "metrics-test-histogram"
    for value in (0.05, 0.1, 0.5, 3, 99, 200):
        metrics.LLM_LATENCY.labels(provider=provider).observe(value)
    _, _, samples = parse(render_prometheus())
    buckets = [(dict(s.labels)["le"], s.value) for s in samples
               if s.name == "pgmcp_llm_latency_seconds_bucket" and dict(s.labels)["provider"] == provider]
    assert [le for le, _ in buckets] == [str(float(b)) for b in metrics.LLM_BUCKETS] + ["+Inf"]
    assert dict(buckets)["0.1"] == 2 and dict(buckets)["0.5"] == 3 and dict(buckets)["120.0"] == 5
    assert dict(buckets)["+Inf"] == _value(samples, "pgmcp_llm_latency_seconds_count", provider=provider) == 6
    assert math.isclose(_value(samples, "pgmcp_llm_latency_seconds_sum", provider=provider), 302.65)
    values = [v for _, v in buckets]
    assert values == sorted(values)  # cumulative


def test_label_values_are_escaped() -> None:
    tricky = 'we"ird\\name\nx'
    metrics.POLICY_REFUSALS_TOTAL.labels(database=tricky, rule="PGM999").inc(2)
    _, _, samples = parse(render_prometheus())
    assert _value(samples, "pgmcp_policy_refusals_total", database=tricky, rule="PGM999") == 2
