"""The query pipeline end to end: the real OpenAI and Anthropic SDK clients against the fake
vendor on 127.0.0.1, the real policy engine, the real schema cache and introspection, and the
real executor and pools on PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import io
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from pgmcp.ask.pipeline import Attempt, Pipeline, QueryAnswer, is_fixable
from pgmcp.ask.result_check import ResultCheck
from pgmcp.config.model import DatabaseConfig, LimitsConfig, LLMConfig, LoggingConfig, PoolConfig, Secret
from pgmcp.db.concurrency import Limiter
from pgmcp.db.executor import Executor
from pgmcp.db.pools import PoolSet
from pgmcp.db.result import QueryResult
from pgmcp.errors import (
    DatabaseError,
    DatabaseNotFound,
    DatabaseUnavailable,
    GenerationFailed,
    LLMUnavailable,
    Overloaded,
    PermissionDenied,
    QueryFailed,
    QueryTimeout,
    UndefinedObject,
    UsageError,
)
from pgmcp.llm import CircuitBreaker, estimate_tokens, make_provider
from pgmcp.observe.logs import setup_logging
from pgmcp.observe.metrics import sample_value
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy, compile_policy
from pgmcp.policy.document import load_policy_file
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.cache import SchemaCache
from pgmcp.schema.filtered import filter_snapshot
from pgmcp.schema.introspect import introspect_dsn
from pgmcp.schema.snapshot import ColumnInfo, ForeignKey, RelationInfo, SchemaSnapshot
from tests.conftest import TestDatabase
from tests.fakes.llm_server import FakeLLMServer, RecordedRequest, malformed, slow, status, text
from tests.schema_fixture import dsn_as

KEY = "sk-pipeline-SECRET-KEY-5678"
VENDORS = ["openai", "anthropic"]
READER = f"pipeline_reader_{uuid.uuid4().hex[:6]}"
LIMITS = LimitsConfig(statement_timeout=5.0, max_rows=100)
SETUP = f"""
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
    id integer PRIMARY KEY, name text NOT NULL, country text NOT NULL, email text NOT NULL);
CREATE TABLE shop.orders (
    id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES shop.customers(id),
    total numeric(10,2) NOT NULL);
CREATE TABLE shop.secrets (id integer PRIMARY KEY, value text NOT NULL);
INSERT INTO shop.customers VALUES
    (1, 'Anna', 'DE', 'anna@example.com'), (2, 'Bert', 'DE', 'bert@example.com'),
    (3, 'Chloe', 'FR', 'chloe@example.com');
INSERT INTO shop.orders VALUES (1, 1, 10.50), (2, 1, 20.00), (3, 3, 5.25);
INSERT INTO shop.secrets VALUES (1, 'TOP-SECRET');
CREATE ROLE {READER} LOGIN;
GRANT USAGE ON SCHEMA shop TO {READER};
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {READER};
"""
POLICY = """
name: pipeline-test
extends: [baseline]
tables:
  "shop.*": allow
  "shop.secrets": deny
columns:
  deny: [shop.customers.email]
search_path: [shop]
limits:
  max_rows: 50
"""
GOOD_SQL = "SELECT c.name FROM shop.customers AS c WHERE c.country = 'DE' ORDER BY c.name LIMIT 10"
QUESTION = "Which customers are from Germany?"


@dataclass
class World:
    """One database behind the real stages, wired the way the server wires them."""

    policy: CompiledPolicy
    cache: SchemaCache
    pools: PoolSet
    executor: Executor
    executed: list[str] = field(default_factory=list)

    async def schema_for(self, database: str) -> SchemaSnapshot:
        return filter_snapshot(await self.cache.get(database), self.policy)

    async def check(self, database: str, sql: str) -> Verdict:
        return check(sql, self.policy, await self.cache.get(database))

    async def execute(self, database: str, sql: str) -> QueryResult:
        self.executed.append(sql)
        return await self.executor.execute(database, sql)


async def open_world(dbname: str, policy: CompiledPolicy, dsn: str) -> World:
    snapshot = await introspect_dsn(dsn, dbname)
    cache = SchemaCache(lambda name: introspect_dsn(dsn, name), ttl=3600)
    pools = PoolSet([DatabaseConfig(name=dbname, dsn=dsn, pool=PoolConfig(min_size=1, max_size=2))], LIMITS)
    await pools.open()
    executor = Executor(
        pools, {dbname: lambda sql: check(sql, policy, snapshot)}, LIMITS,
        max_rows={dbname: policy.max_rows or LIMITS.max_rows},
    )
    return World(policy, cache, pools, executor)


async def close_world(world: World) -> None:
    await world.cache.close()
    await world.pools.close()


@pytest.fixture(scope="module")
async def world(pg_database: TestDatabase, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    pg_database.run_sql(SETUP)
    path = tmp_path_factory.mktemp("policy") / "pipeline-test.yaml"
    path.write_text(POLICY)
    opened = await open_world("main", compile_policy(load_policy_file(path)),
                              dsn_as(pg_database.dsn, READER))
    yield opened
    await close_world(opened)
    pg_database.run_sql(f"DROP OWNED BY {READER}; DROP ROLE {READER};")


@pytest.fixture(autouse=True)
def _clean(fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake.reset()
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE", "ANTHROPIC_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))


@pytest.fixture
async def built() -> AsyncIterator[list[Pipeline]]:
    """Pipelines a test built with `build`; their SDK clients are closed afterwards."""
    made: list[Pipeline] = []
    yield made
    for pipeline in made:
        await pipeline._provider.aclose()


def build(
    made: list[Pipeline], vendor: str, fake: FakeLLMServer, world: World, *,
    breaker: CircuitBreaker | None = None, llm_limiter: Limiter | None = None,
    databases: tuple[str, ...] = ("main",), **llm: Any,
) -> Pipeline:
    settings: dict[str, Any] = {
        "provider": vendor, "model": "test-model", "api_key": Secret(KEY),
        "base_url": fake.openai_url if vendor == "openai" else fake.anthropic_url,
        "timeout": 10.0, "max_retries": 0, "attempts": 3,
    }
    settings.update(llm)
    config = LLMConfig(**settings)
    pipeline = Pipeline(
        make_provider(config),
        breaker or CircuitBreaker(config.breaker_failures, config.breaker_recovery, name=vendor),
        config,
        schema_for=world.schema_for, check=world.check, execute=world.execute,
        databases=databases, max_rows_for=lambda db: world.policy.max_rows or LIMITS.max_rows,
        llm_limiter=llm_limiter or Limiter.for_llm(config),
    )
    made.append(pipeline)
    return pipeline


def prompt_of(request: RecordedRequest) -> str:
    """Everything the model was sent (system and every turn) as one text."""
    body = request.body
    parts = [body["system"]] if "system" in body else []
    parts += [m["content"] for m in body["messages"]]
    return "\n".join(parts)


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


# --- answering ----------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
async def test_answers_a_question_with_rows(
    vendor: str, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    pipeline = build(built, vendor, fake, world)
    calls, tokens_in = sample_value("pgmcp_llm_calls_total", provider=vendor, operation="generate", status="ok"), \
        sample_value("pgmcp_llm_tokens_total", provider=vendor, direction="input")
    fake.script(text(fenced(GOOD_SQL + ";") + "\nThis lists the German customers.", input_tokens=300))
    progress: list[tuple[float, str]] = []

    async def report(fraction: float, message: str) -> None:
        progress.append((fraction, message))

    answer = await pipeline.query(QUESTION, progress=report)

    assert answer.database == "main" and answer.question == QUESTION
    assert answer.sql == GOOD_SQL
    assert answer.verdict.allowed
    assert answer.result is not None
    assert answer.result.rows == [["Anna"], ["Bert"]]
    assert [c.name for c in answer.result.columns] == ["name"]
    assert not answer.result.truncated
    assert [(a.number, a.sql, a.error) for a in answer.attempts] == [(1, GOOD_SQL, None)]
    assert set(answer.timings_ms) == {"schema", "generate", "check", "execute", "result_check", "total"}
    assert answer.result_check is None and answer.timings_ms["result_check"] == 0
    assert [f for f, _ in progress] == sorted(f for f, _ in progress) and progress[-1] == (1.0, "done")
    assert sample_value("pgmcp_llm_calls_total", provider=vendor, operation="generate", status="ok") == calls + 1
    assert sample_value("pgmcp_llm_tokens_total", provider=vendor, direction="input") == tokens_in + 300
    # The prompt holds the policy-filtered schema: no denied table, no denied column.
    sent = prompt_of(fake.requests[0])
    assert "table shop.customers" in sent and "table shop.orders" in sent
    assert "secrets" not in sent and "email" not in sent
    assert "LIMIT of at most 50 rows" in sent
    assert json.dumps(answer.to_dict())  # JSON-ready


EXTRACTION = [
    ("fenced with prose", "Here it is:\n" + fenced(GOOD_SQL) + "\nIt filters on country.", GOOD_SQL),
    ("plain fence", "```\n" + GOOD_SQL + "\n```", GOOD_SQL),
    ("bare after prose", "The query is:\nSELECT o.id\nFROM shop.orders AS o\nLIMIT 5\n\nIt lists ids.",
     "SELECT o.id\nFROM shop.orders AS o\nLIMIT 5"),
    ("whole text", "  " + GOOD_SQL + ";  ", GOOD_SQL),
]


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(("shape", "answer_text", "sql"), EXTRACTION, ids=[e[0] for e in EXTRACTION])
async def test_sql_is_extracted_from_every_answer_shape(
    vendor: str, shape: str, answer_text: str, sql: str, fake: FakeLLMServer, world: World,
    built: list[Pipeline],
) -> None:
    fake.script(text(answer_text))
    answer = await build(built, vendor, fake, world).query(QUESTION)
    assert answer.sql == sql
    assert answer.attempts[0].raw == answer_text
    assert answer.result is not None and answer.result.row_count > 0


async def test_return_type_sql_does_not_execute(
    fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    # Division by zero would fail if it ran.
    sql = "SELECT o.id / 0 AS boom FROM shop.orders AS o LIMIT 5"
    fake.script(text(fenced(sql)))
    before = len(world.executed)
    answer = await build(built, "openai", fake, world).query("boom?", return_type="sql")
    assert answer.sql == sql and answer.result is None
    assert answer.verdict.allowed and answer.verdict.executable_sql.endswith("LIMIT 5")
    assert len(world.executed) == before
    assert answer.timings_ms["execute"] == 0


# --- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
async def test_refusal_is_fed_back_and_the_next_answer_runs(
    vendor: str, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    refused = "SELECT c.name, c.email FROM shop.customers AS c LIMIT 10"
    fake.script(text(fenced(refused)), text(fenced(GOOD_SQL)))
    denied = sample_value("pgmcp_policy_refusals_total", database="main", rule="PGM301")

    answer = await build(built, vendor, fake, world).query(QUESTION)

    assert answer.result is not None and answer.result.rows == [["Anna"], ["Bert"]]
    first, second = answer.attempts
    assert (first.sql, first.error_code) == (refused, "policy_denied")
    assert first.error is not None and "PGM301" in first.error and "shop.customers.email" in first.error
    assert (second.sql, second.error) == (GOOD_SQL, None)
    assert len(fake.requests) == 2
    retry_prompt = prompt_of(fake.requests[1])
    assert refused in retry_prompt
    assert "PGM301 column-denied: column shop.customers.email is denied" in retry_prompt
    assert "PGM301" not in prompt_of(fake.requests[0])
    assert sample_value("pgmcp_policy_refusals_total", database="main", rule="PGM301") == denied + 1


@pytest.mark.parametrize("vendor", VENDORS)
async def test_retries_exhausted_is_generation_failed_listing_each_attempt(
    vendor: str, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    fake.script(
        text(fenced("SELECT s.value FROM shop.secrets AS s")),
        text("SELEC oops FROM"),
        text(fenced("SELECT c.email FROM shop.customers AS c")),
    )
    before = len(world.executed)
    with pytest.raises(GenerationFailed) as info:
        await build(built, vendor, fake, world, attempts=3).query("What are the secrets?")
    message = info.value.message
    assert "after 3 attempt(s)" in message
    for number, rule in [(1, "PGM201"), (2, "PGM0"), (3, "PGM301")]:
        assert f"attempt {number} (policy_denied): {rule}" in message
    assert len(info.value.attempts) == 3
    assert len(fake.requests) == 3
    assert len(world.executed) == before  # nothing ran


@pytest.mark.parametrize("vendor", VENDORS)
async def test_unusable_answer_counts_as_an_attempt(
    vendor: str, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    fake.script(malformed(), text("```sql\n```"), text(fenced(GOOD_SQL)))
    answer = await build(built, vendor, fake, world, attempts=3).query(QUESTION)
    assert [(a.sql, a.error_code) for a in answer.attempts] == [
        (None, "generation_failed"), (None, "generation_failed"), (GOOD_SQL, None)]
    assert "malformed" in (answer.attempts[0].error or "")
    assert answer.result is not None and answer.result.row_count == 2


# The checker allows these (their tables and columns are allowed); PostgreSQL refuses them.
DB_ERRORS = [
    ("undefined table", "SELECT o.id FROM shop.order AS o LIMIT 5", "undefined_object",
     'relation "shop.order" does not exist'),
    ("type mismatch", "SELECT c.name FROM shop.customers AS c WHERE c.id = 'x' || 1 LIMIT 5",
     "undefined_object", "operator does not exist: integer = text"),
    ("bad cast", "SELECT c.name::integer AS n FROM shop.customers AS c LIMIT 5", "query_failed",
     'invalid input syntax for type integer: "Anna"'),
]


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(("case", "bad_sql", "code", "pg_message"), DB_ERRORS, ids=[d[0] for d in DB_ERRORS])
async def test_database_error_is_fed_back_once(
    vendor: str, case: str, bad_sql: str, code: str, pg_message: str, fake: FakeLLMServer, world: World,
    built: list[Pipeline],
) -> None:
    fake.script(text(fenced(bad_sql)), text(fenced(GOOD_SQL)))
    answer = await build(built, vendor, fake, world).query(QUESTION)
    assert answer.result is not None and answer.result.rows == [["Anna"], ["Bert"]]
    first, second = answer.attempts
    assert (first.sql, first.error_code) == (bad_sql, code)
    assert first.error is not None and pg_message in first.error
    assert second.error is None
    retry_prompt = prompt_of(fake.requests[1])
    assert bad_sql in retry_prompt and pg_message in retry_prompt


async def test_database_error_gets_only_one_more_attempt(
    fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    bad = "SELECT o.id FROM shop.order AS o LIMIT 5"
    fake.script(text(fenced(bad)), text(fenced(bad.replace("LIMIT 5", "LIMIT 6"))), text(fenced(GOOD_SQL)))
    with pytest.raises(GenerationFailed) as info:
        await build(built, "anthropic", fake, world, attempts=5).query(QUESTION)
    assert len(fake.requests) == 2
    codes = [a.error_code for a in info.value.attempts if isinstance(a, Attempt)]
    assert codes == ["undefined_object", "undefined_object"]
    assert info.value.__cause__ is not None


# --- breaker and limits -------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
async def test_breaker_opens_refuses_at_once_and_closes_after_recovery(
    vendor: str, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    now = [1000.0]
    breaker = CircuitBreaker(2, 30.0, clock=lambda: now[0], name=vendor)
    pipeline = build(built, vendor, fake, world, breaker=breaker)
    fake.script(status(500), status(500))

    with pytest.raises(LLMUnavailable, match="HTTP 500"):
        await pipeline.query(QUESTION)
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 1)
    with pytest.raises(LLMUnavailable, match="HTTP 500"):
        await pipeline.query(QUESTION)
    assert breaker.state == "open"

    def circuit_open() -> float:
        return sample_value("pgmcp_llm_calls_total", provider=vendor, operation="generate", status="circuit_open")

    open_refusals = circuit_open()
    with pytest.raises(LLMUnavailable, match="circuit open") as info:
        await pipeline.query(QUESTION)
    assert info.value.code == "llm_unavailable"
    assert len(fake.requests) == 2  # refused without calling the vendor
    assert circuit_open() == open_refusals + 1

    now[0] += 31
    assert str(breaker.state) == "half_open"  # (mypy narrows the property after the assert above)
    fake.script(text(fenced(GOOD_SQL)))
    answer = await pipeline.query(QUESTION)
    assert answer.result is not None
    assert str(breaker.state) == "closed"


async def wait_for(condition: Any) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


@pytest.mark.parametrize("vendor", VENDORS)
async def test_queue_overflow_is_refused_at_once(
    vendor: str, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    limiter = Limiter("LLM calls", max_concurrency=1, queue_size=1)
    pipeline = build(built, vendor, fake, world, llm_limiter=limiter)
    fake.script(slow(60, fenced(GOOD_SQL)), slow(60, fenced(GOOD_SQL)))
    held = [asyncio.create_task(pipeline.query(QUESTION)) for _ in range(2)]
    try:
        await wait_for(lambda: limiter.running == 1 and limiter.waiting == 1 and len(fake.requests) == 1)
        with pytest.raises(Overloaded, match=r"too many LLM calls at once \(1 running, 1 waiting"):
            await pipeline.query(QUESTION)
        assert len(fake.requests) == 1
    finally:
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
    assert (limiter.running, limiter.waiting) == (0, 0)


# --- result check -------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
async def test_result_check_judges_the_rows(
    vendor: str, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    judgement = '```json\n{"confidence": 0.9, "explanation": "Lists the customers from DE."}\n```'
    fake.script(text(fenced(GOOD_SQL)), text(judgement))
    answer = await build(built, vendor, fake, world, result_check=True).query(QUESTION)
    assert answer.result_check == ResultCheck(0.9, "Lists the customers from DE.")
    assert answer.result is not None and answer.result.row_count == 2
    judge_prompt = prompt_of(fake.requests[1])
    assert QUESTION in judge_prompt and '"Anna"' in judge_prompt and GOOD_SQL in judge_prompt


FAILING_JUDGES = [("HTTP 500", status(500)), ("not JSON", text("Looks right to me.")),
                  ("no confidence", text('{"explanation": "fine"}'))]


@pytest.mark.parametrize(("case", "reply"), FAILING_JUDGES, ids=[f[0] for f in FAILING_JUDGES])
async def test_failing_result_check_does_not_fail_the_answer(
    case: str, reply: Any, fake: FakeLLMServer, world: World, built: list[Pipeline]
) -> None:
    fake.script(text(fenced(GOOD_SQL)), reply)
    answer = await build(built, "openai", fake, world, result_check=True).query(QUESTION)
    assert answer.result is not None and answer.result.rows == [["Anna"], ["Bert"]]
    assert answer.result_check is None
    assert len(fake.requests) == 2


# --- databases ----------------------------------------------------------------------------


async def test_database_resolution(fake: FakeLLMServer, world: World, built: list[Pipeline]) -> None:
    one = build(built, "openai", fake, world)
    assert one.resolve_database(None) == "main"
    with pytest.raises(DatabaseNotFound, match="unknown database 'mian'; configured databases: main") as info:
        await one.query(QUESTION, database="mian")
    assert "did you mean 'main'" in str(info.value)
    several = build(built, "openai", fake, world, databases=("main", "sales"))
    with pytest.raises(UsageError, match=r"several databases are configured \(main, sales\)"):
        await several.query(QUESTION)
    assert several.resolve_database("sales") == "sales"
    assert fake.requests == []


# --- logging ------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_every_log_line_carries_the_request_id_and_no_secret(
    fake: FakeLLMServer, world: World, built: list[Pipeline], restore_logging: None
) -> None:
    stream = io.StringIO()
    setup_logging(LoggingConfig(level="DEBUG", format="json"), stream=stream)
    fake.script(text(fenced("SELECT c.email FROM shop.customers AS c")), text(fenced(GOOD_SQL)))
    answer: QueryAnswer = await build(built, "openai", fake, world).query(QUESTION)
    output = stream.getvalue()
    assert KEY not in output
    lines = [json.loads(line) for line in output.splitlines()]
    mine = [line for line in lines if line["logger"] == "pgmcp.ask.pipeline"]
    assert {line["request_id"] for line in mine} == {answer.request_id}
    stages = {line["extra"].get("stage") for line in mine}
    assert {"start", "generate", "check", "execute", "done"} <= stages
    verdicts = [line["extra"]["verdict"] for line in mine if "verdict" in line["extra"]]
    assert verdicts == ["refused", "allowed"]
    tokens = [line["extra"] for line in mine if "input_tokens" in line["extra"]]
    assert tokens and tokens[0]["input_tokens"] == 11


# --- a large schema -----------------------------------------------------------------------


def wide_tables(count: int) -> tuple[RelationInfo, ...]:
    """`count` synthetic tables in schema misc, every 20 a new chain of foreign keys: the prompt
    builder only reads the snapshot, so a built one stands in for 2,000 real tables."""
    out = []
    for i in range(count):
        fks = (ForeignKey("parent_fkey", ("parent_id",), "misc", f"t{i - 1:04d}", ("id",)),) if i % 20 else ()
        columns = (ColumnInfo("id", "bigint", nullable=False), ColumnInfo("code", "text"), ColumnInfo("note", "text"))
        if i % 20:
            columns += (ColumnInfo("parent_id", "bigint"),)
        out.append(RelationInfo("misc", f"t{i:04d}", "table", columns, primary_key=("id",), foreign_keys=fks))
    return tuple(out)


async def test_two_thousand_tables_fit_the_budget_and_keep_named_tables(
    world: World, fake: FakeLLMServer, built: list[Pipeline],
) -> None:
    real = await world.cache.get("main")  # shop.customers, shop.orders, shop.secrets, introspected
    wide_snapshot = dataclasses.replace(real, relations=real.relations + wide_tables(2000 - len(real.relations)))
    wide = copy.copy(world)

    async def wide_schema(database: str) -> SchemaSnapshot:
        return wide_snapshot

    wide.schema_for = wide_schema  # type: ignore[method-assign]
    assert len((await wide.schema_for("main")).relations) == 2000
    fake.script(text(fenced(GOOD_SQL)))
    pipeline = build(built, "anthropic", fake, wide, token_budget=2000)
    answer = await pipeline.query("Which customers from Germany placed orders?", return_type="sql")
    assert answer.sql == GOOD_SQL
    system = fake.requests[0].body["system"]
    schema_part = system[system.index('Schema of database "'):]
    assert estimate_tokens(schema_part) <= 2000
    assert "table shop.customers" in schema_part and "table shop.orders" in schema_part
    assert "(showing " in schema_part and " of 2000 tables, chosen for this question)" in schema_part
    assert "Left out to fit the prompt" in schema_part


# --- which database errors go back to the model -------------------------------------------

FIXABLE = [
    (UndefinedObject('column "x" does not exist', sqlstate="42703"), True),
    (QueryFailed("syntax error at or near", sqlstate="42601"), True),
    (QueryFailed("invalid input syntax for type integer", sqlstate="22P02"), True),
    (QueryFailed("division by zero", sqlstate="22012"), True),
    (QueryFailed("could not serialize access", sqlstate="40001"), False),
    (QueryFailed("no SQLSTATE"), False),
    (QueryTimeout("cancelled by statement_timeout", sqlstate="57014"), False),
    (DatabaseUnavailable("server closed the connection"), False),
    (PermissionDenied("permission denied for table t", sqlstate="42501"), False),
]


@pytest.mark.parametrize(("error", "fixable"), FIXABLE, ids=[f"{e.code}-{e.sqlstate}" for e, _ in FIXABLE])
def test_fixable_database_errors(error: DatabaseError, fixable: bool) -> None:
    assert is_fixable(error) is fixable
