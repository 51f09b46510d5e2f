"""The audit trail: one JSON line per policy decision, with who asked and what came of it.

Every SQL pgmcp judges passes through `Runtime.check` or `Runtime.execute`, which call
`record_verdict` and `record_execution` here. The outermost layer (the MCP tool wrapper,
`pgmcp ask`) opens an `audit_scope` per request saying who asked, over which transport and
through which tool; the decisions of the request are collected in it and written when it
ends, so a statement that was checked and then run (the query pipeline does both) is one
line, not two. A request that ends without any decision (an unknown database, an LLM that
could not be reached) still leaves one line with its error code. Outside any scope a decision
is written at once. Lines go to `logging.audit_file` through `pgmcp.observe.logs.audit`, which adds
the time and the request id and redacts every string; without an audit file nothing is kept.

The log lines of the policy verdict and of the SQL that ran are written here too, so the log
and the audit trail cannot disagree: refusals and failures at INFO, the rest at DEBUG (the tool
wrapper writes the one INFO line of a successful call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from pgmcp.observe.logs import audit, audit_enabled
from pgmcp.policy.verdict import Verdict


@dataclass(frozen=True)
class Caller:
    """Who asked: the MCP client's name and version (from its `initialize`), or "cli"."""

    client: str = "unknown"
    version: str | None = None
    transport: str = "unknown"  # "stdio" | "http" | "cli"
    principal: str | None = None  # the authenticated principal (HTTP with auth); None: the local user


CLI = Caller("cli", None, "cli")


@dataclass
class _Decision:
    database: str
    sql: str
    allowed: bool | None = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    sql_run: str | None = None
    executed: bool = False
    row_count: int | None = None
    truncated: bool | None = None
    error_code: str | None = None
    duration_ms: float = 0.0


@dataclass
class AuditScope:
    """The decisions of one request; `error_code` is set by the caller when the request fails."""

    caller: Caller
    tool: str
    question: str | None = None
    error_code: str | None = None
    decisions: list[_Decision] = field(default_factory=list)
    paused: bool = False

    def pause(self) -> None:
        """The call stops to let the client answer (MCP protocol 2026-07-28) and will be replayed
        from the start: keep only the decisions whose SQL ran or failed in the database (they
        happened); verdicts alone are made again by the replay and written by its last round."""
        self.paused = True
        self.decisions = [d for d in self.decisions if d.executed or d.error_code is not None]

    def decision(self, database: str, sql: str) -> _Decision:
        # A check followed by the execution of the same text is the same decision.
        for found in reversed(self.decisions):
            if found.database == database and found.sql == sql and found.allowed and not found.executed:
                return found
        made = _Decision(database, sql)
        self.decisions.append(made)
        return made


def shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_scope: ContextVar[AuditScope | None] = ContextVar("pgmcp_audit_scope", default=None)
_repeated: ContextVar[bool] = ContextVar("pgmcp_repeated_decisions", default=False)


@contextlib.contextmanager
def audit_scope(caller: Caller, tool: str, question: str | None = None) -> Iterator[AuditScope]:
    """Collect the decisions made inside the block and write them (one line each) at its end."""
    scope = AuditScope(caller, tool, question)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
        if audit_enabled():
            pending: list[_Decision | None] = [*scope.decisions] or ([] if scope.paused else [None])
            for decision in pending:
                _write(scope, decision)


@contextlib.contextmanager
def repeated_decisions(repeated: bool = True) -> Iterator[None]:
    """Inside the block (when `repeated`), verdicts repeat ones an earlier round of this call
    logged (MCP protocol 2026-07-28 replays the call): kept for the audit line, not logged again."""
    token = _repeated.set(repeated)
    try:
        yield
    finally:
        _repeated.reset(token)


def record_verdict(database: str, sql: str, verdict: Verdict, elapsed_ms: float) -> None:
    """Note the policy's verdict on `sql` (log it; keep it for the audit line)."""
    rules = [v.rule for v in verdict.violations]
    decision = _current_decision(database, sql)
    if decision.allowed is not None or _repeated.get():
        pass  # judged already (the executor's re-check, or an earlier round): logged once
    elif verdict.allowed:
        # DEBUG: the tool's own INFO line already says the call succeeded (one INFO line a call).
        rewritten = verdict.rewritten_sql is not None and verdict.rewritten_sql != sql
        logger.debug("policy allowed the SQL for {}{}", database, " (rewritten)" if rewritten else "",
                     stage="check", verdict="allowed", relations=list(verdict.relations))
    else:
        logger.info("policy refused the SQL for {}: {}", database, shorten(verdict.reason()),
                    stage="check", verdict="refused", rules=rules)
    # lazy: the trace is only formatted when DEBUG is on
    logger.opt(lazy=True).debug(
        "verdict on {}: {}", lambda: repr(shorten(sql, 500)),
        lambda: [f"{t.rule} {t.effect}: {t.detail}" for t in verdict.trace],
        stage=lambda: "check", check_ms=lambda: round(elapsed_ms, 3),
    )
    decision.allowed = verdict.allowed
    decision.violations = [{"rule": v.rule, "name": v.name, "message": v.message} for v in verdict.violations]
    decision.sql_run = verdict.executable_sql if verdict.allowed else None
    decision.duration_ms += elapsed_ms
    _flush_unscoped(decision)


def record_execution(
    database: str, sql: str, *, sql_run: str | None, row_count: int | None, truncated: bool | None,
    error_code: str | None, elapsed_ms: float,
) -> None:
    """Note what running `sql` gave: the text that ran and its row count, or the error code."""
    if error_code is None:
        logger.debug("SQL ran on {}: {} rows in {:.1f} ms", database, row_count, elapsed_ms, stage="execute",
                     truncated=truncated)
        logger.debug("SQL that ran: {}", sql_run, stage="execute")
    else:
        logger.info("SQL failed on {}: {} after {:.1f} ms", database, error_code, elapsed_ms, stage="execute")
    decision = _current_decision(database, sql)
    decision.executed = error_code is None
    decision.sql_run = sql_run or decision.sql_run
    decision.row_count = row_count
    decision.truncated = truncated
    decision.error_code = error_code
    decision.duration_ms += elapsed_ms
    _flush_unscoped(decision)


def _current_decision(database: str, sql: str) -> _Decision:
    scope = _scope.get()
    return scope.decision(database, sql) if scope is not None else _Decision(database, sql)


def _flush_unscoped(decision: _Decision) -> None:
    if _scope.get() is None and audit_enabled():
        _write(AuditScope(Caller(), "unknown"), decision)


def _write(scope: AuditScope, decision: _Decision | None) -> None:
    entry: dict[str, Any] = {
        "event": "decision",
        "client": {"name": scope.caller.client, "version": scope.caller.version},
        "transport": scope.caller.transport,
        "principal": scope.caller.principal,
        "tool": scope.tool,
    }
    if scope.question is not None:
        entry["question"] = scope.question
    if decision is None:
        entry.update(database=None, sql=None, allowed=None, violations=[], error_code=scope.error_code)
    else:
        entry.update(
            database=decision.database, sql=decision.sql, sql_run=decision.sql_run, allowed=decision.allowed,
            violations=decision.violations, executed=decision.executed, row_count=decision.row_count,
            truncated=decision.truncated, error_code=decision.error_code or _refused(decision),
            duration_ms=round(decision.duration_ms, 3),
        )
    audit(entry)


def _refused(decision: _Decision) -> str | None:
    return "policy_denied" if decision.allowed is False else None
