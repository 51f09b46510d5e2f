"""What each MCP tool does with the core: call a `Runtime` method, map its value to the tool's
typed output (`pgmcp.mcp.models`).

The runtime returns core values (`QueryResult`, `Verdict`, `QueryAnswer`, ...) and knows
nothing of MCP; the mapping to the wire lives here, next to the models, and `server.py` only
registers the tools. `query` is the one tool with protocol work of its own: it lends the
pipeline a sampler for the client's model (`pgmcp.mcp.sampling`) when the provider is
`client`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pgmcp.mcp import models

if TYPE_CHECKING:  # (the pipeline and the sampling code load on first use: a fast start)
    from mcp.server.mcpserver import Context

    from pgmcp.ask.answer import QueryAnswer
    from pgmcp.ask.pipeline import ReturnType
    from pgmcp.db.result import QueryResult
    from pgmcp.policy.verdict import Violation
    from pgmcp.service.runtime import Runtime


async def query(
    runtime: Runtime, question: str, database: str | None, return_type: ReturnType, ctx: Context[Any, Any] | None
) -> models.QueryOut:
    from pgmcp.llm.client_provider import use_sampler
    from pgmcp.mcp.sampling import sampler_for

    async def progress(fraction: float, message: str) -> None:
        if ctx is not None:
            await ctx.report_progress(fraction * 100, 100, message)

    with contextlib.ExitStack() as stack:
        if ctx is not None:
            # Every sample the pipeline can take: its attempts, one after a fixable database
            # error, the result check. On protocol 2026-07-28 each is one more round.
            samples = runtime.config.llm.attempts + 2
            stack.enter_context(use_sampler(sampler_for(ctx, samples)))
        answer = await runtime.ask(question, database, return_type, progress)
    return answer_out(answer)


async def execute_sql(runtime: Runtime, sql: str, database: str | None) -> models.QueryOut:
    return result_out(await runtime.execute_named(sql, database))


async def check_sql(runtime: Runtime, sql: str, database: str | None) -> models.CheckOut:
    name, verdict = await runtime.check_named(sql, database)
    return models.CheckOut(
        database=name,
        allowed=verdict.allowed,
        violations=[violation_out(v) for v in verdict.violations],
        rewritten_sql=verdict.rewritten_sql,
        sql_to_run=verdict.executable_sql if verdict.allowed else None,
    )


def list_databases(runtime: Runtime) -> models.DatabasesOut:
    return models.DatabasesOut(databases=[
        models.DatabaseOut(name=d.name, description=d.description, policy=d.policy, status=d.status)
        for d in runtime.databases()
    ])


async def describe_schema(runtime: Runtime, database: str | None, tables: list[str] | None) -> models.SchemaOut:
    view = await runtime.schema_view(database, tables)
    desc = view.description
    return models.SchemaOut(
        database=view.database,
        relations=desc["relations"],
        enums=desc.get("enums", []),
        functions=desc.get("functions", []),
        unknown=desc.get("unknown", []),
        suggestions=view.suggestions,
        age_seconds=view.age_seconds,
    )


async def refresh_schema(runtime: Runtime, database: str | None) -> models.RefreshOut:
    done = await runtime.refresh(database)
    snap = done.snapshot
    return models.RefreshOut(
        database=done.database, relations=len(snap.relations), functions=len(snap.functions),
        catalog_queries=snap.catalog_queries, stale=done.stale, message=done.message,
    )


def violation_out(v: Violation) -> models.ViolationOut:
    source = f"{v.source.file}:{v.source.line}" if v.source is not None and v.source.line else None
    return models.ViolationOut(
        rule=v.rule, name=v.name, message=v.message, line=v.line, column=v.column, policy_source=source
    )


def result_out(result: QueryResult, **extra: Any) -> models.QueryOut:
    out = models.QueryOut(
        database=result.database, sql=result.sql,
        columns=[models.ColumnOut(name=c.name, type=c.type) for c in result.columns],
        rows=result.rows, row_count=result.row_count, truncated=result.truncated,
        truncated_reason=result.truncated_reason, timings_ms={"execute": round(result.elapsed_ms, 3)},
        **extra,
    )
    out._rows_json = result.rows_json  # the rows' JSON as encoded once, reused for the text block
    return out


def answer_out(answer: QueryAnswer) -> models.QueryOut:
    extra: dict[str, Any] = {
        "question": answer.question, "attempts": len(answer.attempts),
        "result_check": (
            {"confidence": answer.result_check.confidence, "explanation": answer.result_check.explanation}
            if answer.result_check else None
        ),
    }
    if answer.result is None:
        return models.QueryOut(
            database=answer.database, sql=answer.verdict.executable_sql, executed=False,
            timings_ms={k: round(v, 3) for k, v in answer.timings_ms.items()}, **extra,
        )
    out = result_out(answer.result, **extra)
    out.timings_ms = {k: round(v, 3) for k, v in answer.timings_ms.items()}
    return out
