"""pgmcp's metrics: prometheus_client counters, gauges and histograms on a registry of its own.

`REGISTRY` holds only pgmcp's metrics (not the library's process-wide default registry, which
a host application may own). The HTTP transport serves it at `GET /metrics`
(`render_prometheus`); stdio servers write the same text to a file that `pgmcp stats` reads
(`pgmcp.observe.stats_file`). Callers use the library's own API:
`REQUESTS_TOTAL.labels(tool=..., database=..., status=...).inc()`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# No `*_created` series: pgmcp's dashboards never read them and they double the output.
disable_created_metrics()  # type: ignore[no-untyped-call]  # (untyped in prometheus_client)

REGISTRY = CollectorRegistry(auto_describe=True)
# The text format both the scrape and `pgmcp stats` read (prometheus_client writes 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# The buckets pgmcp always had (prometheus_client's default stops at 10 s; LLM calls do not).
QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

REQUESTS_TOTAL = Counter(
    "pgmcp_requests_total", "MCP tool calls, by tool, database and outcome.", ("tool", "database", "status"),
    registry=REGISTRY)
REQUEST_DURATION = Histogram(
    "pgmcp_request_duration_seconds", "Time to answer an MCP tool call.", ("tool",),
    registry=REGISTRY, buckets=QUERY_BUCKETS)
LLM_CALLS_TOTAL = Counter(
    "pgmcp_llm_calls_total", "Calls to the LLM provider, by operation and outcome.",
    ("provider", "operation", "status"), registry=REGISTRY)
LLM_TOKENS_TOTAL = Counter(
    "pgmcp_llm_tokens_total", "Tokens sent to (input) and received from (output) the LLM provider.",
    ("provider", "direction"), registry=REGISTRY)
LLM_LATENCY = Histogram(
    "pgmcp_llm_latency_seconds", "Latency of LLM provider calls.", ("provider",),
    registry=REGISTRY, buckets=LLM_BUCKETS)
POLICY_REFUSALS_TOTAL = Counter(
    "pgmcp_policy_refusals_total", "Statements refused by the policy, by the rule that refused them.",
    ("database", "rule"), registry=REGISTRY)
DB_QUERY_DURATION = Histogram(
    "pgmcp_db_query_duration_seconds", "Time PostgreSQL took to run checked statements.", ("database",),
    registry=REGISTRY, buckets=QUERY_BUCKETS)
DB_ACTIVE_CONNECTIONS = Gauge(
    "pgmcp_db_active_connections", "Connections currently checked out of the pool.", ("database",),
    registry=REGISTRY)
SCHEMA_CACHE_AGE = Gauge(
    "pgmcp_schema_cache_age_seconds", "Age of the cached schema snapshot.", ("database",), registry=REGISTRY)


def render_prometheus() -> str:
    """Every pgmcp metric in the Prometheus text exposition format 0.0.4 (for GET /metrics)."""
    return generate_latest(REGISTRY).decode()


def sample_value(name: str, **labels: str) -> float:
    """The current value of one sample (`pgmcp_requests_total`, `..._count`), 0 when unseen."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
