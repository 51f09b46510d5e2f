"""HTTP auth end to end: `pgmcp serve --transport http` as a subprocess with `auth` configured,
the SDK's `Client` sending real bearer tokens (static ones minted by pgmcp, JWTs signed by a
test RSA key whose JWKS a small HTTP server on 127.0.0.1 serves).

Principals: alice (static token, tenant 1, group analysts), bob (JWT, tenant 2), carol (static
token without a tenant claim), dave (static token, tenant 1, 3 calls a minute). Database
`shop` filters `public.orders` by `tenant_id = :tenant_id`; `finance` (the same database) is
for alice only; group analysts gets a policy that also denies customers.name.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from pgmcp.auth.static_tokens import mint_token, token_hash
from tests.conftest import TestDatabase
from tests.fakes.identity import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    forge_alg_none,
    forge_hs256_with_public_key,
    make_jwt,
    tamper,
)
from tests.fakes.llm_server import FakeLLMServer, text
from tests.mcp_setup import openai_llm, role_dsn, text_of
from tests.readers import reader_role
from tests.tenants import CLAIM_POLICY, QUERIES, tenant_copies, tenant_tables
from tests.test_mcp_http import HttpServer, get

ANALYSTS = """\
name: analysts
columns:
  deny: ["public.customers.name"]
"""
# Row-filter bypasses from tests/test_redteam.py: a view over the filtered table, a child, a
# parenthesised FROM item, a catalog-qualified name.
HOLES = [("SELECT tenant_id, count(*) FROM orders_v GROUP BY 1", "PGM204"),
         ("SELECT tenant_id, note FROM orders_archive", "PGM502"),
         ("SELECT tenant_id, count(*) FROM (orders) GROUP BY 1", "PGM502"),
         ("SELECT tenant_id, count(*) FROM shop.public.orders GROUP BY 1", "PGM203")]


class Identity:
    def __init__(self, jwks: JwksServer, key: SigningKey) -> None:
        self.jwks, self.key = jwks, key
        self.tokens = {name: mint_token() for name in ("alice", "carol", "dave", "mallory")}

    def bob(self) -> str:
        return make_jwt(self.key, claims("bob", tenant_id=2, groups=["finance"]))

    def token(self, who: str) -> str:
        return self.bob() if who == "bob" else self.tokens[who]


@pytest.fixture(scope="module")
def role(pg_database: TestDatabase) -> Iterator[str]:
    for name in reader_role(pg_database, tenant_tables(holes=True), "authhttp"):
        pg_database.run_sql(tenant_copies((1, 2), reader=name))
        yield name


@pytest.fixture(scope="module")
def identity() -> Iterator[Identity]:
    key = SigningKey("test-key")
    with JwksServer([key]) as jwks:
        yield Identity(jwks, key)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def write_auth_config(folder: Path, db: TestDatabase, role: str, identity: Identity, llm_url: str) -> Path:
    (folder / "tenants.yaml").write_text(CLAIM_POLICY)
    (folder / "analysts.yaml").write_text(ANALYSTS)
    dsn = role_dsn(db, role)
    tokens = identity.tokens
    config = {
        "databases": {
            "shop": {"dsn": dsn, "description": "orders of every tenant", "policies": ["tenants.yaml"],
                     "access": [{"principals": ["alice", "bob", "carol", "dave", "mallory"]},
                                {"groups": ["analysts"], "policies": ["analysts.yaml"]}]},
            "finance": {"dsn": dsn, "description": "alice only", "policies": ["tenants.yaml"],
                        "access": [{"principals": ["alice"]}]},
        },
        "llm": openai_llm(llm_url),
        "logging": {"level": "INFO", "audit_file": "audit.jsonl"},
        "auth": {
            "tokens": [
                {"principal": "alice", "sha256": token_hash(tokens["alice"]),
                 "claims": {"tenant_id": 1, "groups": ["analysts"]}},
                {"principal": "carol", "sha256": token_hash(tokens["carol"])},
                {"principal": "dave", "sha256": token_hash(tokens["dave"]), "claims": {"tenant_id": 1}},
                # A claim trying to be SQL: it can only ever be one string literal.
                {"principal": "mallory", "sha256": token_hash(tokens["mallory"]),
                 "claims": {"tenant_id": "1 OR true"}},
            ],
            "jwt": {"jwks_url": identity.jwks.url, "issuer": ISSUER, "audience": AUDIENCE},
            "rate_limit": "1000/min",
            "rate_limits": {"dave": "3/min"},
        },
    }
    path = folder / "pgmcp.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, role: str, identity: Identity,
    llm: FakeLLMServer,
) -> Iterator[HttpServer]:
    folder = tmp_path_factory.mktemp("auth")
    running = HttpServer(write_auth_config(folder, pg_database, role, identity, llm.openai_url), folder / "serve.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@asynccontextmanager
async def connect(server: HttpServer, token: str, **options: Any) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(server.base + "/mcp", http_client=http), **options) as client:
        yield client


def post_mcp(server: HttpServer, body: dict[str, Any], token: str | None) -> tuple[int, dict[str, str], str]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server.base + "/mcp", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}
READ_RESOURCE = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "pgmcp://databases"}}

BAD_TOKENS: list[tuple[str, Any]] = [
    ("missing", lambda i: None),
    ("unknown-static", lambda i: mint_token()),
    ("expired", lambda i: make_jwt(i.key, claims("bob", tenant_id=2, exp=claims("bob")["iat"] - 3600))),
    ("not-yet-valid", lambda i: make_jwt(i.key, claims("bob", tenant_id=2, nbf=claims("bob")["iat"] + 3600))),
    ("wrong-issuer", lambda i: make_jwt(i.key, claims("bob", tenant_id=2, iss="https://evil.example"))),
    ("wrong-audience", lambda i: make_jwt(i.key, claims("bob", tenant_id=2, aud="someone-else"))),
    ("wrong-key", lambda i: make_jwt(SigningKey(i.key.kid), claims("bob", tenant_id=2))),
    ("alg-none", lambda i: forge_alg_none(claims("bob", tenant_id=2), i.key.kid)),
    ("hs256-with-public-key", lambda i: forge_hs256_with_public_key(i.key, claims("bob", tenant_id=2))),
    ("tampered-payload", lambda i: tamper(i.bob(), tenant_id=1)),
]


@pytest.mark.parametrize(("name", "make"), BAD_TOKENS, ids=[b[0] for b in BAD_TOKENS])
@pytest.mark.parametrize("body", [INITIALIZE, READ_RESOURCE], ids=["initialize", "resources-read"])
def test_every_bad_token_gets_401(
    server: HttpServer, identity: Identity, name: str, make: Any, body: dict[str, Any]
) -> None:
    status, headers, answer = post_mcp(server, body, make(identity))
    assert status == 401, (name, status, answer)
    challenge = {k.lower(): v for k, v in headers.items()}["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert "resource_metadata=" in challenge and "/.well-known/oauth-protected-resource/mcp" in challenge
    assert "rows" not in answer and "tenant" not in answer


def test_good_tokens_get_in_and_open_routes_show_no_data(server: HttpServer, identity: Identity) -> None:
    for who in ("alice", "bob"):
        status, _, answer = post_mcp(server, INITIALIZE, identity.token(who))
        assert status == 200, answer
    status, _, body = get(server.base + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}  # no database names, no errors
    status, _, body = get(server.base + "/metrics")
    assert status == 200 and "pgmcp_requests_total" in body
    assert "alice" not in body and "bob" not in body and "principal" not in body
    status, _, body = get(server.base + "/.well-known/oauth-protected-resource/mcp")
    assert status == 200 and json.loads(body)["resource"] == f"{server.base}/mcp"


async def run_as_tenant(conn: asyncpg.Connection, tenant: int, sql: str) -> list[list[Any]]:
    async with conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL search_path = t{tenant}only, public")
        return [list(r) for r in await conn.fetch(sql)]


def normal(rows: Any) -> list[list[Any]]:
    return json.loads(json.dumps(rows, default=str))


async def test_each_principal_sees_only_its_tenant_through_every_attack(
    server: HttpServer, identity: Identity, pg_database: TestDatabase, role: str
) -> None:
    conn = await asyncpg.connect(role_dsn(pg_database, role))
    try:
        for who, tenant in (("alice", 1), ("bob", 2)):
            allowed, refused = 0, []
            async with connect(server, identity.token(who)) as client:
                for name, sql in QUERIES:
                    result = await client.call_tool("execute_sql", {"sql": sql, "database": "shop"})
                    body = text_of(result)
                    if result.is_error and "[query_failed]" in body:
                        # It fails on the tenant's own rows (bob's notes are not numbers): so
                        # must the query over the tenant's copy.
                        with pytest.raises(asyncpg.PostgresError):
                            await run_as_tenant(conn, tenant, sql)
                        allowed += 1
                        continue
                    if result.is_error:
                        assert "[policy_denied]" in body, (who, name, body)
                        refused.append(name)
                        continue
                    allowed += 1
                    assert result.structured_content is not None
                    expected = normal(await run_as_tenant(conn, tenant, sql))
                    assert normal(result.structured_content["rows"]) == expected, (who, name)
                    if tenant == 1:
                        shown = json.dumps(result.structured_content["rows"])
                        assert "SECRET-T2" not in shown and "ARCHIVED-T2" not in shown, (who, name)
                for sql, rule in HOLES:
                    hole = await client.call_tool("execute_sql", {"sql": sql, "database": "shop"})
                    assert hole.is_error and rule in text_of(hole), (who, sql, text_of(hole))
            assert allowed >= len(QUERIES) - 1, (who, refused)
    finally:
        await conn.close()


async def test_query_tool_runs_under_the_principals_filter(
    server: HttpServer, identity: Identity, llm: FakeLLMServer
) -> None:
    sql = "SELECT id, tenant_id FROM orders ORDER BY id"
    for who, tenant in (("alice", 1), ("bob", 2)):
        llm.script(text(sql))
        async with connect(server, identity.token(who)) as client:
            result = await client.call_tool("query", {"question": "Which orders?", "database": "shop"})
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        rows = result.structured_content["rows"]
        assert rows and {r[1] for r in rows} == {tenant}, (who, rows)


async def test_access_lists_hide_databases_and_refuse_them(server: HttpServer, identity: Identity) -> None:
    async with connect(server, identity.token("bob")) as client:
        listed = await client.call_tool("list_databases", {})
        assert listed.structured_content is not None
        assert [d["name"] for d in listed.structured_content["databases"]] == ["shop"]
        refused = await client.call_tool("execute_sql", {"sql": "SELECT 1", "database": "finance"})
        assert refused.is_error and text_of(refused).startswith("[access_denied]"), text_of(refused)
        assert "finance" in text_of(refused)
        schema = await client.call_tool("describe_schema", {"database": "finance"})
        assert schema.is_error and "[access_denied]" in text_of(schema)
        resource = await client.read_resource("pgmcp://databases")
        contents = resource.contents[0]
        assert isinstance(contents, types.TextResourceContents)
        assert [d["name"] for d in json.loads(contents.text)["databases"]] == ["shop"]
        with pytest.raises(Exception, match="access_denied"):
            await client.read_resource("pgmcp://finance/schema")
        # Bob is not an analyst: the analysts' policy does not apply to him.
        names = await client.call_tool("execute_sql", {"sql": "SELECT name FROM customers ORDER BY id",
                                                       "database": "shop"})
        assert not names.is_error, text_of(names)
    async with connect(server, identity.token("alice")) as client:
        listed = await client.call_tool("list_databases", {})
        assert listed.structured_content is not None
        assert [d["name"] for d in listed.structured_content["databases"]] == ["shop", "finance"]
        ok = await client.call_tool("execute_sql", {"sql": "SELECT count(*) FROM orders", "database": "finance"})
        assert not ok.is_error and ok.structured_content is not None
        assert ok.structured_content["rows"] == [[21]]  # tenant 1: 20 orders and one archived
        # Alice is an analyst: customers.name is denied to her (merged policy, deny wins).
        names = await client.call_tool("execute_sql", {"sql": "SELECT name FROM customers", "database": "shop"})
        assert names.is_error and "PGM301" in text_of(names)


async def test_missing_claim_refuses_naming_it(server: HttpServer, identity: Identity) -> None:
    async with connect(server, identity.token("carol")) as client:
        refused = await client.call_tool("execute_sql", {"sql": "SELECT id FROM orders", "database": "shop"})
        body = text_of(refused)
        assert refused.is_error and body.startswith("[access_denied]") and "'tenant_id'" in body, body
        checked = await client.call_tool("check_sql", {"sql": "SELECT * FROM orders", "database": "shop"})
        assert checked.is_error and "[access_denied]" in text_of(checked)
        other = await client.call_tool("execute_sql", {"sql": "SELECT count(*) FROM customers", "database": "shop"})
        assert not other.is_error, text_of(other)
        schema = await client.call_tool("describe_schema", {"database": "shop"})
        assert schema.structured_content is not None
        names = {r["name"] for r in schema.structured_content["relations"]}
        assert "customers" in names and "orders" not in names


async def test_a_claim_is_a_literal_never_sql(server: HttpServer, identity: Identity) -> None:
    async with connect(server, identity.token("mallory")) as client:
        result = await client.call_tool("execute_sql", {"sql": "SELECT count(*) FROM orders", "database": "shop"})
    body = text_of(result)
    # '1 OR true' compared with an integer column: PostgreSQL rejects the literal, no row is read.
    assert result.is_error and "[query_failed]" in body and "invalid input syntax for type integer" in body, body


async def test_rate_limit_is_per_principal(server: HttpServer, identity: Identity) -> None:
    async with connect(server, identity.token("dave")) as dave, connect(server, identity.token("alice")) as alice:
        for _ in range(3):
            ok = await dave.call_tool("execute_sql", {"sql": "SELECT 1", "database": "shop"})
            assert not ok.is_error, text_of(ok)
        limited = await dave.call_tool("execute_sql", {"sql": "SELECT 1", "database": "shop"})
        body = text_of(limited)
        assert limited.is_error and body.startswith("[rate_limited]") and "try again in" in body, body
        for _ in range(5):
            fine = await alice.call_tool("execute_sql", {"sql": "SELECT 1", "database": "shop"})
            assert not fine.is_error, text_of(fine)
    _, _, metrics = get(server.base + "/metrics")
    assert 'status="rate_limited"' in metrics and "dave" not in metrics


async def test_audit_and_log_name_the_principal(server: HttpServer, identity: Identity) -> None:
    async with connect(server, identity.token("bob")) as client:
        await client.call_tool("execute_sql", {"sql": "SELECT count(*) FROM orders", "database": "shop"})
    audit_file = server.log.parent / "audit.jsonl"
    for _ in range(50):
        lines = [json.loads(line) for line in audit_file.read_text().splitlines()] if audit_file.exists() else []
        if any(e.get("principal") == "bob" for e in lines):
            break
        await asyncio.sleep(0.1)
    assert {e["principal"] for e in lines} >= {"alice", "bob", "carol"}
    log = server.log.read_text()
    assert "principal=bob" in log
    for token in identity.tokens.values():
        assert token not in log and token not in audit_file.read_text()


async def test_principal_holds_on_the_2025_protocol_sessions(server: HttpServer, identity: Identity) -> None:
    """Legacy clients keep a session; every request of it still runs as its token's principal."""
    for who, expected in (("bob", ["shop"]), ("alice", ["shop", "finance"])):
        async with connect(server, identity.token(who), mode="legacy") as client:
            listed = await client.call_tool("list_databases", {})
            assert listed.structured_content is not None
            assert [d["name"] for d in listed.structured_content["databases"]] == expected
            resource = await client.read_resource("pgmcp://databases")
            contents = resource.contents[0]
            assert isinstance(contents, types.TextResourceContents)
            assert [d["name"] for d in json.loads(contents.text)["databases"]] == expected
            counted = await client.call_tool("execute_sql", {"sql": "SELECT DISTINCT tenant_id FROM orders",
                                                             "database": "shop"})
            assert counted.structured_content is not None
            assert counted.structured_content["rows"] == [[1 if who == "alice" else 2]]


async def test_completions_and_prompts_follow_the_access_lists(server: HttpServer, identity: Identity) -> None:
    prompt = types.PromptReference(name="explore_database")
    async with connect(server, identity.token("bob")) as client:
        offered = await client.complete(prompt, {"name": "database", "value": ""})
        assert offered.completion.values == ["shop"]  # finance is alice's: never offered to bob
        tables = await client.complete(types.PromptReference(name="explain_table"), {"name": "table", "value": ""},
                                       context_arguments={"database": "finance"})
        assert tables.completion.values == []
        with pytest.raises(Exception, match="access_denied"):
            await client.get_prompt("explore_database", {"database": "finance"})
    async with connect(server, identity.token("alice")) as client:
        offered = await client.complete(prompt, {"name": "database", "value": ""})
        assert offered.completion.values == ["finance", "shop"]
        tables = await client.complete(types.PromptReference(name="explain_table"), {"name": "table", "value": "o"},
                                       context_arguments={"database": "finance"})
        assert tables.completion.values == ["orders", "orders_archive", "orders_v"]
        rendered = await client.get_prompt("explore_database", {"database": "finance"})
        assert rendered.messages
