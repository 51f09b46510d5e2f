"""`query` with `llm.provider: client`: the connected MCP client's own model writes the SQL.

The SDK's real `Client(build_server(config), sampling_callback=...)` on both protocols: the
default ('auto', which settles on 2026-07-28), where every sample is one more round of the
tool call (`InputRequiredResult`, the client answers and calls again), and 'legacy', where
the server sends `sampling/createMessage` in the middle of the call. A run that needs several
samples in sequence (a refusal fed back, a database error fed back, the result check) gets
them in order, each request carrying the feedback of the answer before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.session import ClientRequestContext

from pgmcp.config.loader import load_config
from pgmcp.mcp.server import build_server
from pgmcp.observe.metrics import (
    DB_QUERY_DURATION,
    LLM_CALLS_TOTAL,
    LLM_LATENCY,
    LLM_TOKENS_TOTAL,
    POLICY_REFUSALS_TOTAL,
    sample_value,
)
from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, text_of, write_config

MODES = ("auto", "legacy")
JUDGEMENT = '{"confidence": 0.9, "explanation": "counts every order"}'



@pytest.fixture(scope="module")
def client_config(tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str) -> Path:
    return write_config(tmp_path_factory.mktemp("sampling"), pg_database, shop_role, {"provider": "client"},
                        only=("shop",))


@pytest.fixture(scope="module")
def judged_config(tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str) -> Path:
    return write_config(tmp_path_factory.mktemp("sampling-judged"), pg_database, shop_role,
                        {"provider": "client", "result_check": True}, only=("shop",))


class ScriptedModel:
    """The host's model: answers the sampling requests with `answers`, in order, and keeps them."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.seen: list[types.CreateMessageRequestParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.seen.append(params)
        text = self.answers[min(len(self.seen), len(self.answers)) - 1]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=text), model="host-model"
        )

    def asked(self, index: int) -> str:
        params = self.seen[index]
        return (params.system_prompt or "") + "\n".join(
            m.content.text for m in params.messages if isinstance(m.content, types.TextContent)
        )


@dataclass(frozen=True)
class Case:
    name: str
    answers: tuple[str, ...]
    attempts: int
    feedback: tuple[str, ...] = ()  # what the last sampling request must say about the answer before


CASES = [
    Case("one sample", (COUNT_ORDERS,), 1),
    Case("a refusal fed back", ("SELECT name, email FROM customers", COUNT_ORDERS), 2,
         ("Refused by the policy", "PGM301", "SELECT name, email FROM customers")),
    Case("a database error fed back", ("SELECT o.nope FROM orders AS o", COUNT_ORDERS), 2,
         ("SELECT o.nope FROM orders AS o", "nope")),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_query_samples_the_clients_model(client_config: Path, mode: str, case: Case) -> None:
    model = ScriptedModel(*case.answers)
    before = sample_value("pgmcp_requests_total", tool="query", database="shop", status="input_required")
    async with Client(build_server(load_config(client_config)), sampling_callback=model, mode=mode) as client:
        result = await client.call_tool("query", {"question": "How many orders are there?"})
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        assert result.structured_content["rows"] == [[4]]
        assert result.structured_content["attempts"] == case.attempts
        assert "FROM public.orders" in result.structured_content["sql"]
    assert len(model.seen) == len(case.answers)
    assert "How many orders are there?" in model.asked(0)
    for needle in case.feedback:
        assert needle in model.asked(-1), model.asked(-1)
    # On the modern protocol each sample is one round that stops for the client's answer.
    rounds = len(case.answers) if mode == "auto" else 0
    waiting = {"tool": "query", "database": "shop", "status": "input_required"}
    assert sample_value("pgmcp_requests_total", **waiting) == before + rounds


@pytest.mark.parametrize("mode", MODES)
async def test_the_result_check_is_one_more_sample(judged_config: Path, mode: str) -> None:
    model = ScriptedModel(COUNT_ORDERS, JUDGEMENT)
    async with Client(build_server(load_config(judged_config)), sampling_callback=model, mode=mode) as client:
        result = await client.call_tool("query", {"question": "How many orders are there?"})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["result_check"] == {"confidence": 0.9, "explanation": "counts every order"}
    assert len(model.seen) == 2 and "counts every order" not in model.asked(1)
    assert "How many orders are there?" in model.asked(1)


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_without_sampling_is_told_to_configure_a_provider(client_config: Path, mode: str) -> None:
    async with Client(build_server(load_config(client_config)), mode=mode) as client:
        result = await client.call_tool("query", {"question": "How many orders are there?"})
        assert result.is_error
        message = text_of(result)
        assert message.startswith("[llm_unavailable]"), message
        assert "does not support sampling" in message and "openai or anthropic" in message, message
        ran = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS})
        assert not ran.is_error and ran.structured_content is not None
        assert ran.structured_content["rows"] == [[4]]


async def test_a_request_that_changes_between_rounds_is_not_given_the_old_answer(
    client_config: Path, pg_database: TestDatabase
) -> None:
    """The schema changes (and is refreshed) while the client's model is answering: the replayed
    round builds a different prompt, so the answer to the old one is refused, not used."""
    model = ScriptedModel("SELECT name, email FROM customers", COUNT_ORDERS)
    connected: list[Client] = []

    async def sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        answer = await model(context, params)
        if len(model.seen) == 1:
            pg_database.run_sql("COMMENT ON TABLE orders IS 'Orders, one per purchase'")
            refreshed = await connected[0].call_tool("refresh_schema", {})
            assert not refreshed.is_error, text_of(refreshed)
        return answer

    async with Client(build_server(load_config(client_config)), sampling_callback=sampling) as client:
        connected.append(client)
        try:
            result = await client.call_tool("query", {"question": "How many orders are there?"})
        finally:
            pg_database.run_sql("COMMENT ON TABLE orders IS NULL")
            await client.call_tool("refresh_schema", {})
    assert result.is_error
    message = text_of(result)
    assert message.startswith("[sampling_replay_failed]") and "changed between rounds" in message, message


# The counters and histograms that count what the pipeline did with each sample. Replayed rounds
# (protocol 2026-07-28) see the earlier rounds' answers again, but what they did happened once.
COUNTED = (LLM_CALLS_TOTAL, LLM_TOKENS_TOTAL, LLM_LATENCY, POLICY_REFUSALS_TOTAL, DB_QUERY_DURATION)
CALLS, LATENCY, REFUSALS = "pgmcp_llm_calls", "pgmcp_llm_latency_seconds", "pgmcp_policy_refusals"  # family names
REPLAY_CASES = [
    Case("a refusal fed back", ("SELECT name, email FROM customers", COUNT_ORDERS), 2),
    Case("an answer without SQL", ("```sql\n```", COUNT_ORDERS), 2),
    Case("an empty answer", ("  ", COUNT_ORDERS), 2),
    Case("a database error fed back", ("SELECT count(*) / 0 AS n FROM orders", COUNT_ORDERS), 2),
]


def counted() -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
    """Every label set of the `COUNTED` metrics: a counter's value, a histogram's count."""
    out: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = {}
    for metric in COUNTED:
        for family in metric.collect():
            for sample in family.samples:
                if sample.name in (family.name + "_total", family.name + "_count"):
                    out[family.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def delta(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {key: value - before.get(key, 0) for key, value in after.items() if value != before.get(key, 0)}


async def counted_query(config: Path, mode: str, answers: tuple[str, ...]) -> dict[Any, float]:
    before = counted()
    async with Client(build_server(load_config(config)), sampling_callback=ScriptedModel(*answers),
                      mode=mode) as client:
        result = await client.call_tool("query", {"question": "How many orders are there?"})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["rows"] == [[4]]
    return delta(before, counted())


@pytest.mark.parametrize("case", REPLAY_CASES, ids=[c.name for c in REPLAY_CASES])
async def test_replayed_rounds_count_each_sample_once(client_config: Path, case: Case) -> None:
    legacy = await counted_query(client_config, "legacy", case.answers)
    modern = await counted_query(client_config, "auto", case.answers)
    assert modern == legacy
    calls = {k: v for k, v in legacy.items() if k[0] == CALLS}
    assert sum(calls.values()) == len(case.answers), calls
    assert legacy[LATENCY, (("provider", "client"),)] == len(case.answers)
    refusals = sum(v for k, v in legacy.items() if k[0] == REFUSALS)
    assert refusals == (1 if case.name == "a refusal fed back" else 0)


async def test_a_replayed_result_check_is_counted_once(judged_config: Path) -> None:
    answers = (COUNT_ORDERS, JUDGEMENT)
    legacy = await counted_query(judged_config, "legacy", answers)
    modern = await counted_query(judged_config, "auto", answers)
    assert modern == legacy
    ok = (("operation", "result_check"), ("provider", "client"), ("status", "ok"))
    assert legacy[CALLS, ok] == 1
    assert legacy[LATENCY, (("provider", "client"),)] == 2
