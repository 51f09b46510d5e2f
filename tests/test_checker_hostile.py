"""Attack SQL, one row each: ways around a read-only SQL gateway (hidden statements,
parser-level features, functions with side effects or that run SQL from a string).

Each statement is judged by the shop-analyst policy (which allows EXPLAIN but not ANALYZE)
and must be refused with the given rule code among its violations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec

REPO = Path(__file__).parent.parent
POLICY = compile_policy(load_policy_spec(["shop-analyst"], REPO))

ATTACKS: list[tuple[str, str]] = [
    # statements the parser turns into opaque commands or harmless-looking expressions
    ("DO $$BEGIN DELETE FROM users; END$$", "PGM003"),
    ("CALL my_proc(1)", "PGM003"),
    ("VACUUM FULL users", "PGM003"),
    ("SET ROLE postgres", "PGM003"),
    ("SET LOCAL statement_timeout = 0", "PGM101"),
    ("PREPARE p AS DELETE FROM users", "PGM003"),
    ("EXECUTE p", "PGM003"),
    ("LOCK TABLE users IN ACCESS EXCLUSIVE MODE", "PGM003"),
    ("DECLARE c CURSOR FOR SELECT id FROM users", "PGM003"),
    ("LISTEN chan", "PGM003"),
    ("DISCARD ALL", "PGM003"),
    ("CHECKPOINT", "PGM003"),
    ("NOTIFY chan, 'x'", "PGM001"),
    ("COPY users TO '/tmp/x'", "PGM101"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "PGM101"),
    # writes hidden under a SELECT root
    ("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", "PGM102"),
    ("WITH x AS (SELECT 1), d AS (UPDATE users SET name = '' RETURNING id) SELECT * FROM x", "PGM102"),
    ("SELECT * INTO TEMP t2 FROM users", "PGM103"),
    ("SELECT id FROM users FOR UPDATE SKIP LOCKED", "PGM104"),
    ("SELECT id FROM (SELECT id FROM users FOR KEY SHARE) s", "PGM104"),
    # EXPLAIN executes with ANALYZE, in every spelling
    ("EXPLAIN ANALYZE SELECT pg_sleep(10)", "PGM106"),
    ("EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM users", "PGM106"),
    ("EXPLAIN (analyze true, format json) SELECT id FROM users", "PGM106"),
    ("EXPLAIN ANALYZE DELETE FROM users", "PGM101"),
    ("EXPLAIN SELECT pg_sleep(1)", "PGM401"),
    ("EXPLAIN /* c */ SELECT * FROM secrets", "PGM201"),
    # more than one statement, however disguised
    ("SELECT 1; COMMIT; DROP TABLE users", "PGM002"),
    ("SELECT $x$ ; $x$; DELETE FROM users", "PGM002"),
    ("SELECT $a$ $b$ ; $b$ $a$; DELETE FROM users", "PGM002"),
    ("SELECT '\\'; DELETE FROM users; --'", "PGM002"),
    ("/* outer /* inner */ ; */ SELECT 1; DELETE FROM users", "PGM002"),
    ("SELECT x$a$ FROM users; DELETE FROM users; -- $a$", "PGM002"),
    ("EXPLAIN SELECT 1; DELETE FROM users", "PGM002"),
    # names: unicode escapes, pg_catalog shadowing, case, quoting
    ('SELECT U&"\\0073sn" FROM users', "PGM004"),
    ("SELECT * FROM U&\"pg_read_fil\\0065\"('/etc/passwd')", "PGM004"),
    ("SELECT * FROM pg_settings", "PGM201"),
    ("SELECT * FROM PG_CATALOG.PG_AUTHID", "PGM201"),
    ("SELECT * FROM information_schema.tables", "PGM201"),
    ("SELECT * FROM pg_stat_activity", "PGM201"),
    ("SELECT * FROM SECRETS", "PGM201"),
    ("SELECT 1 AS _pgmcp_rf", "PGM005"),
    # functions, however spelled and wherever called
    ("SELECT PG_SLEEP(1)", "PGM401"),
    ('SELECT "pg_sleep"(1)', "PGM401"),
    ("SELECT pg_catalog.pg_sleep(1)", "PGM401"),
    ("SELECT (1).pg_sleep", "PGM401"),
    ("SELECT (total).pg_sleep FROM orders", "PGM401"),
    ("SELECT * FROM pg_read_file('/etc/passwd')", "PGM401"),
    ("SELECT * FROM pg_catalog.pg_ls_dir('.') d", "PGM401"),
    ("SELECT * FROM ROWS FROM (generate_series(1, 2), pg_ls_dir('.')) r", "PGM401"),
    ("SELECT id FROM users, LATERAL pg_catalog.pg_read_file('x') f", "PGM401"),
    ("SELECT id FROM users WHERE pg_sleep(1) IS NOT NULL", "PGM401"),
    ("SELECT id FROM users ORDER BY pg_sleep(1)", "PGM401"),
    ("SELECT count(*) FILTER (WHERE pg_sleep(1) IS NULL) FROM users", "PGM401"),
    ("SELECT lo_create(0)", "PGM401"),
    ("SELECT lo_from_bytea(0, 'x')", "PGM401"),
    ("SELECT pg_advisory_lock(1)", "PGM401"),
    ("SELECT pg_notify('c', 'x')", "PGM401"),
    ("SELECT txid_current()", "PGM401"),
    ("SELECT pg_current_xact_id()", "PGM401"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "PGM401"),
    ("SELECT current_setting('data_directory')", "PGM401"),
    ("SELECT query_to_xml('SELECT * FROM secrets', true, true, '')", "PGM401"),
    ("SELECT table_to_xml('secrets', true, true, '')", "PGM401"),
    ("SELECT * FROM ts_stat('SELECT to_tsvector(secret) FROM secrets')", "PGM401"),
    ("SELECT ts_rewrite('a'::tsquery, 'SELECT 1')", "PGM401"),
    ("SELECT dblink_exec('dbname=x', 'DROP TABLE users')", "PGM401"),
    ("SELECT pg_terminate_backend(1)", "PGM401"),
    ("SELECT version()", "PGM401"),
    ("SELECT inet_server_addr()", "PGM401"),
    ("SELECT nextval('s')", "PGM401"),
    ("SELECT users.pg_sleep FROM users", "PGM401"),
    ("SELECT my_secret_definer_fn()", "PGM403"),
    ("SELECT public.lower(name) FROM users", "PGM403"),
    # columns: every way to read a denied one
    ("SELECT password_hash FROM users", "PGM301"),
    ("SELECT id FROM users WHERE ssn LIKE '1%'", "PGM301"),
    ("SELECT id FROM users u JOIN orders o ON o.id = u.id ORDER BY u.password_hash", "PGM301"),
    ("SELECT * FROM users", "PGM302"),
    ("SELECT u FROM users u", "PGM303"),
    ("SELECT to_jsonb(users) FROM users", "PGM303"),
]


@pytest.mark.parametrize(("sql", "code"), ATTACKS, ids=[f"{i:02d}" for i in range(len(ATTACKS))])
def test_attack_is_refused(sql: str, code: str) -> None:
    verdict = check(sql, POLICY)
    assert not verdict.allowed, f"allowed: {sql}"
    assert code in [v.rule for v in verdict.violations], verdict.reason()


@pytest.mark.parametrize("depth", [5000, 1000])
def test_deep_nesting_is_a_clean_refusal(depth: int) -> None:
    for sql in (
        "SELECT " + "(" * depth + "1" + ")" * depth,
        "SELECT " + "ARRAY[" * depth + "1" + "]" * depth,
        "SELECT 1 " + "+ 1 " * depth * 2,
        "SELECT " + "NOT " * depth + "true",
        "SELECT " + "(SELECT " * depth + "1" + ")" * depth,
    ):
        verdict = check(sql, POLICY)
        assert not verdict.allowed
        assert verdict.violations[0].rule in ("PGM006", "PGM001")


def test_rewritten_filter_is_fenced_and_rechecked() -> None:
    verdict = check("SELECT o.id FROM orders o WHERE 1/(o.tenant_id - 2) > 0", POLICY)
    assert verdict.allowed
    assert verdict.rewritten_sql is not None
    assert "_pgmcp_rf.tenant_id = 1 OFFSET 0" in verdict.rewritten_sql


def test_plain_query_runs_as_written() -> None:
    verdict = check("SELECT id, name FROM public.users LIMIT 10", POLICY)
    assert verdict.allowed and verdict.rewritten_sql is None
