"""A least-privilege reader role over a fixture schema, for the tests that check SQL the policy
lets through against what PostgreSQL really returns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg

from tests.conftest import TestDatabase


def reader_role(db: TestDatabase, setup_sql: str, prefix: str) -> Iterator[str]:
    """Run `setup_sql`, yield a LOGIN role that may only read schema public, then drop it.

    Meant for module fixtures: `yield from reader_role(pg_database, FIXTURE, "analyst")`.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    db.run_sql(setup_sql)
    db.run_sql(
        f"CREATE ROLE {name} LOGIN; GRANT USAGE ON SCHEMA public TO {name};"
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name};"
    )
    yield name
    db.run_sql(f"DROP OWNED BY {name}; DROP ROLE {name};")


async def run_read_only(conn: asyncpg.Connection, sql: str) -> list[asyncpg.Record]:
    """`sql` as written (no pgmcp in between), read-only, with search_path public."""
    async with conn.transaction(readonly=True):
        await conn.execute("SET LOCAL search_path = public")
        return list(await conn.fetch(sql))
