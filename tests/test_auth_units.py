"""The parts of HTTP auth that need no server: static tokens, JWT verification against a JWKS
served over real HTTP on 127.0.0.1, rate-limit buckets, and claims bound into row filters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from pgmcp.auth import jwt_verifier
from pgmcp.auth.jwt_verifier import JWTError, JWTVerifier
from pgmcp.auth.ratelimit import RateLimiter
from pgmcp.auth.static_tokens import config_line, find_token, mint_token, token_hash
from pgmcp.auth.verifier import PgmcpTokenVerifier, PrincipalToken
from pgmcp.config.model import AuthConfig, JWTConfig, RateLimit, StaticToken
from pgmcp.errors import RateLimited
from pgmcp.policy.checker import check
from pgmcp.policy.claims import bind_condition, bind_spec_filters
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from tests.cli_inprocess import run_pgmcp
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

KEY = SigningKey("key-1")
OTHER = SigningKey("key-1")  # same kid, another key: "wrong key"


# -- static tokens -----------------------------------------------------------------------------

def test_minted_tokens_are_distinct_and_only_their_hash_is_stored() -> None:
    first, second = mint_token(), mint_token()
    assert first != second and first.startswith("pgmcp_") and len(first) > 40
    line = config_line("alice", first)
    assert first not in line and token_hash(first) in line and "principal: alice" in line


def test_find_token_matches_only_the_exact_token() -> None:
    token = mint_token()
    tokens = (StaticToken("bob", token_hash(mint_token())), StaticToken("alice", token_hash(token)))
    found = find_token(tokens, token)
    assert found is not None and found.principal == "alice"
    assert find_token(tokens, token[:-1]) is None
    assert find_token(tokens, token + "x") is None
    assert find_token(tokens, token_hash(token)) is None  # the hash itself is no token


def test_token_new_prints_the_token_once_and_the_config_line() -> None:
    done = run_pgmcp("token", "new", "--principal", "alice")  # in-process (tests/cli_inprocess.py)
    assert done.returncode == 0, done.stderr
    token, line = done.stdout.splitlines()
    assert line == config_line("alice", token)
    assert token not in done.stderr and "Authorization: Bearer" in done.stderr


# -- JWT ---------------------------------------------------------------------------------------

@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer([KEY]) as server:
        yield server


def verifier_for(jwks: JwksServer) -> JWTVerifier:
    return JWTVerifier(JWTConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url))


def _expired() -> dict[str, Any]:
    return claims("bob", exp=claims("bob")["iat"] - 3600)


REFUSED: list[tuple[str, Any]] = [
    ("expired", lambda: make_jwt(KEY, _expired())),
    ("not-yet-valid", lambda: make_jwt(KEY, claims("bob", nbf=claims("bob")["iat"] + 3600))),
    ("wrong-issuer", lambda: make_jwt(KEY, claims("bob", iss="https://evil.example"))),
    ("wrong-audience", lambda: make_jwt(KEY, claims("bob", aud="another-service"))),
    ("no-audience", lambda: make_jwt(KEY, {k: v for k, v in claims("bob").items() if k != "aud"})),
    ("no-expiry", lambda: make_jwt(KEY, {k: v for k, v in claims("bob").items() if k != "exp"})),
    ("wrong-key", lambda: make_jwt(OTHER, claims("bob"))),
    ("alg-none", lambda: forge_alg_none(claims("bob"), KEY.kid)),
    ("hs256-with-public-key", lambda: forge_hs256_with_public_key(KEY, claims("bob"))),
    ("tampered-payload", lambda: tamper(make_jwt(KEY, claims("bob", tenant_id=2)), tenant_id=1)),
    ("unknown-kid", lambda: make_jwt(KEY, claims("bob"), kid="nobody")),
    ("no-principal", lambda: make_jwt(KEY, {k: v for k, v in claims("bob").items() if k != "sub"})),
    ("not-a-jwt", lambda: "pgmcp_not-a-jwt"),
]


@pytest.mark.parametrize(("name", "make"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_jwt_refused(jwks: JwksServer, name: str, make: Any) -> None:
    with pytest.raises(JWTError):
        await verifier_for(jwks).verify(make())


async def test_jwt_accepted_with_its_claims(jwks: JwksServer) -> None:
    verified = await verifier_for(jwks).verify(make_jwt(KEY, claims("bob", tenant_id=2, groups=["finance"])))
    assert verified.principal == "bob" and verified.claims["tenant_id"] == 2


async def test_unknown_kid_refetches_the_jwks_at_most_once_a_minute(jwks: JwksServer) -> None:
    verifier = verifier_for(jwks)
    await verifier.verify(make_jwt(KEY, claims("bob")))
    assert jwks.fetches == 1
    rotated = SigningKey("key-2")
    jwks.keys.append(rotated)
    token = make_jwt(rotated, claims("bob"))
    for _ in range(3):  # a fetch happened less than a minute ago: no new fetch, refused
        with pytest.raises(JWTError, match="no key with kid 'key-2'"):
            await verifier.verify(token)
    assert jwks.fetches == 1
    assert verifier._fetched_at is not None
    verifier._fetched_at -= jwt_verifier.REFETCH_INTERVAL  # a minute later
    assert (await verifier.verify(token)).principal == "bob"
    assert jwks.fetches == 2
    await verifier.verify(token)  # known now: no fetch
    assert jwks.fetches == 2


async def test_public_key_file_verifies_and_refuses_confusion(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(KEY.public_pem())
    verifier = JWTVerifier(JWTConfig(issuer=ISSUER, audience=AUDIENCE, public_key_file=str(pem)))
    assert (await verifier.verify(make_jwt(KEY, claims("carol")))).principal == "carol"
    with pytest.raises(JWTError, match="HS256"):
        await verifier.verify(forge_hs256_with_public_key(KEY, claims("carol")))


async def test_token_verifier_gives_static_tokens_then_jwts(jwks: JwksServer) -> None:
    token = mint_token()
    config = AuthConfig(tokens=(StaticToken("alice", token_hash(token), {"tenant_id": 1, "groups": ["analysts"]}),),
                        jwt=JWTConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url))
    verifier = PgmcpTokenVerifier(config)
    alice = await verifier.verify_token(token)
    assert isinstance(alice, PrincipalToken)
    assert alice.principal().name == "alice" and alice.principal().groups == {"analysts"}
    bob = await verifier.verify_token(make_jwt(KEY, claims("bob", groups="finance")))
    assert isinstance(bob, PrincipalToken) and bob.principal().groups == {"finance"}
    assert await verifier.verify_token(mint_token()) is None
    assert await verifier.verify_token(make_jwt(KEY, _expired())) is None


# -- rate limits -------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_per_principal_with_override() -> None:
    clock = Clock()
    limiter = RateLimiter(AuthConfig(rate_limit=RateLimit(2, 60.0), rate_limits=(("etl", RateLimit(5, 60.0)),)),
                          clock=clock)
    limiter.take("alice")
    limiter.take("alice")
    with pytest.raises(RateLimited) as caught:
        limiter.take("alice")
    assert caught.value.code == "rate_limited" and caught.value.retry_after == 30.0
    assert "try again in 30 seconds" in str(caught.value)
    limiter.take("bob")  # another principal has its own bucket
    for _ in range(5):
        limiter.take("etl")
    with pytest.raises(RateLimited):
        limiter.take("etl")
    clock.now += 30.0  # one token back
    limiter.take("alice")
    with pytest.raises(RateLimited):
        limiter.take("alice")


def test_no_rate_limit_configured_means_unlimited() -> None:
    limiter = RateLimiter(AuthConfig(rate_limits=(("etl", RateLimit(1, 1.0)),)))
    for _ in range(100):
        limiter.take("alice")


# -- claims bound into row filters -------------------------------------------------------------

BINDINGS = [
    ("tenant_id = :tenant_id", {"tenant_id": 1}, "tenant_id = 1"),
    ("tenant_id = :tenant_id", {"tenant_id": -3}, "tenant_id = -3"),
    ("tenant_id = :tenant_id", {"tenant_id": 1.5}, "tenant_id = 1.5"),
    ("active = :flag", {"flag": True}, "active = TRUE"),
    ("region = :region", {"region": "eu"}, "region = 'eu'"),
    ("region = :region", {"region": "x' OR true --"}, "region = 'x'' OR true --'"),
    ("region = :region", {"region": "a\\' OR 1=1 --"}, "region = 'a\\'' OR 1=1 --'"),
    ("region IN (:regions)", {"regions": ["eu", "us"]}, "region IN ('eu', 'us')"),
    ("region = ANY(:regions)", {"regions": ["eu"]}, "region = ANY(ARRAY['eu'])"),
    ("region = ANY(:regions)", {"regions": "eu"}, "region = ANY(ARRAY['eu'])"),
    ("t = :t AND (r = :r OR r IS NULL)", {"t": 2, "r": "eu"}, "t = 2 AND (r = 'eu' OR r IS NULL)"),
]


@pytest.mark.parametrize(("condition", "values", "bound"), BINDINGS)
def test_claims_bind_as_literals(condition: str, values: dict[str, Any], bound: str) -> None:
    text, problem = bind_condition(condition, values)
    assert problem is None and text == bound
    # The value is one literal node: the bound condition has exactly the original's shape.
    original = sqlglot.parse_one(condition, read="postgres")
    again = sqlglot.parse_one(text, read="postgres")
    assert len(list(again.find_all(sqlglot.exp.Column))) == len(list(original.find_all(sqlglot.exp.Column)))


UNBINDABLE = [
    ("tenant_id = :tenant_id", {}, "tenant_id", "is missing"),
    ("tenant_id = :tenant_id", {"tenant_id": None}, "tenant_id", "is missing"),
    ("tenant_id = :tenant_id", {"tenant_id": [1, 2]}, "tenant_id", "must be one value"),
    ("tenant_id = :tenant_id", {"tenant_id": {"id": 1}}, "tenant_id", "must be one value"),
    ("tenant_id = :tenant_id", {"tenant_id": float("nan")}, "tenant_id", "must be a string, a number"),
    ("region IN (:regions)", {"regions": []}, "regions", "empty list"),
    ("region IN (:regions)", {"regions": [["eu"]]}, "regions", "list of strings"),
    ("a = :a AND b = :b", {"a": 1}, "b", "is missing"),
]


@pytest.mark.parametrize(("condition", "values", "claim", "problem"), UNBINDABLE)
def test_claims_that_cannot_bind_are_named(condition: str, values: dict[str, Any], claim: str, problem: str) -> None:
    _, found = bind_condition(condition, values)
    assert found is not None and found[0] == claim and problem in found[1]


def test_missing_claim_denies_the_table_never_drops_the_filter(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        'name: tenants\nextends: [baseline]\ntables: {"public.*": allow}\n'
        'row_filters:\n  public.orders: "tenant_id = :tenant_id"\n')
    policy = compile_policy(load_policy_spec(["p.yaml"], tmp_path))
    bound, unbound = bind_spec_filters(policy, {"tenant_id": 7})
    verdict = check("SELECT id FROM orders", bound)
    assert verdict.allowed and "tenant_id = 7" in (verdict.executable_sql or "")
    missing, unbound = bind_spec_filters(policy, {})
    assert [u.claim for u in unbound] == ["tenant_id"]
    refused = check("SELECT id FROM orders", missing)
    assert not refused.allowed and "needs claim 'tenant_id'" in refused.reason()
    assert check("SELECT id FROM customers", missing).allowed  # other tables are unaffected
    # The unbound policy itself never runs a placeholder: the rewrite refuses it.
    raw = check("SELECT id FROM orders", policy)
    assert not raw.allowed and "claim" in raw.reason()
