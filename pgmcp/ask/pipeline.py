"""The query pipeline: a question in, checked SQL and its rows out.

The one place where the LLM and the database meet. `Pipeline.query` runs, in order: a request
id (every log line of the request carries it); the database (the only one, or the named one);
the policy-filtered schema snapshot; generation (prompt -> provider through the circuit
breaker -> SQL extraction -> policy check), retried with the refusal or parse error as
feedback up to `llm.attempts` times; execution, where a database error the model can fix
(an unknown name, a syntax or type error) is fed back for one more attempt; and the optional
result check, which never blocks or fails the answer. LLM calls go through a `Limiter` (the
executor has its own for queries): past its queue a request is refused at once with
`Overloaded`.

The stages it joins arrive as callables (schema, check, execute), so the pipeline knows
nothing of pools, caches or compiled policies.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from loguru import logger

from pgmcp.ask.answer import Attempt, QueryAnswer
from pgmcp.ask.prompt import build_prompt
from pgmcp.ask.result_check import ResultCheck, build_judge_prompt, parse_judgement
from pgmcp.config.model import LLMConfig
from pgmcp.db.concurrency import Limiter
from pgmcp.errors import (
    DatabaseError,
    DatabaseNotFound,
    GenerationFailed,
    LLMError,
    LLMUnavailable,
    Overloaded,
    PgmcpError,
    QueryFailed,
    UndefinedObject,
    UsageError,
)
from pgmcp.llm.base import Completion, Prompt, Provider, RequestSuspended, shorten
from pgmcp.llm.breaker import CircuitBreaker
from pgmcp.llm.extract import extract_sql
from pgmcp.observe.audit import repeated_decisions
from pgmcp.observe.logs import current_request_id, request_scope
from pgmcp.observe.metrics import LLM_CALLS_TOTAL, LLM_LATENCY, LLM_TOKENS_TOTAL, POLICY_REFUSALS_TOTAL
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.snapshot import SchemaSnapshot

if TYPE_CHECKING:
    from pgmcp.db.result import QueryResult

__all__ = ["Attempt", "Pipeline", "Progress", "QueryAnswer", "ReturnType", "is_fixable"]

ReturnType = Literal["result", "sql"]
Progress = Callable[[float, str], Awaitable[None]]
STAGES = ("schema", "generate", "check", "execute", "result_check", "total")
# SQLSTATE classes of errors in the SQL itself: 42 syntax/semantics (42501, no privilege, is
# PermissionDenied and not fixable by rewriting), 22 data (bad cast, division by zero).
_FIXABLE_CLASSES = ("42", "22")


@dataclass
class _Run:
    """The mutable bookkeeping of one request."""

    question: str
    progress: Progress | None
    attempts: list[Attempt] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] += (time.perf_counter() - started) * 1000

    async def report(self, fraction: float, message: str) -> None:
        if self.progress is None:
            return
        try:
            await self.progress(fraction, message)
        except Exception as exc:  # a client that cannot take progress must not fail the query
            logger.debug("progress notification failed: {!r}", exc)

    def fail_last(self, error: PgmcpError) -> None:
        self.attempts[-1] = dataclasses.replace(
            self.attempts[-1], error_code=error.code, error=str(error)
        )


def _replayed(exc: BaseException) -> bool:
    return isinstance(exc, LLMError) and exc.replayed


def is_fixable(error: DatabaseError) -> bool:
    """Whether a database error is in the generated SQL itself, so the model can correct it."""
    if isinstance(error, UndefinedObject):
        return True
    return type(error) is QueryFailed and (error.sqlstate or "")[:2] in _FIXABLE_CLASSES


class Pipeline:
    """Questions to SQL to rows, for a fixed set of databases (see the module docstring).

    `schema_for(database)` returns the policy-filtered snapshot; `check(database, sql)` the
    policy's verdict; `execute(database, sql)` runs it (checking again) and returns the
    result; `max_rows_for(database)` is the row cap the prompt asks for.
    """

    def __init__(
        self,
        provider: Provider,
        breaker: CircuitBreaker,
        llm_config: LLMConfig,
        *,
        schema_for: Callable[[str], Awaitable[SchemaSnapshot]],
        check: Callable[[str, str], Awaitable[Verdict]],
        execute: Callable[[str, str], Awaitable[QueryResult]],
        databases: Sequence[str],
        max_rows_for: Callable[[str], int],
        llm_limiter: Limiter,
    ) -> None:
        self._provider = provider
        self._breaker = breaker
        self._config = llm_config
        self._schema_for = schema_for
        self._check = check
        self._execute = execute
        self._databases = tuple(databases)
        self._max_rows_for = max_rows_for
        self._llm_limiter = llm_limiter

    def resolve_database(self, name: str | None) -> str:
        """The database a request means: `name`, or the only one configured."""
        valid = ", ".join(self._databases) or "(none)"
        if name is None or not name.strip():
            if len(self._databases) == 1:
                return self._databases[0]
            if not self._databases:
                raise DatabaseNotFound("no databases are configured", hint="add one under databases:")
            raise UsageError(
                f"several databases are configured ({valid}); say which one to ask",
                hint=f"pass database as one of: {valid}",
            )
        if name in self._databases:
            return name
        close = difflib.get_close_matches(name, self._databases, n=1)
        raise DatabaseNotFound(
            f"unknown database '{name}'; configured databases: {valid}",
            hint=(f"did you mean '{close[0]}'? " if close else "") + f"use one of: {valid}",
        )

    async def query(
        self,
        question: str,
        database: str | None = None,
        return_type: ReturnType = "result",
        *,
        progress: Progress | None = None,
    ) -> QueryAnswer:
        """Answer `question` (see the module docstring). `return_type="sql"` stops after the
        check and returns the SQL without running it. Raises `PgmcpError`s: DatabaseNotFound,
        UsageError, LLMUnavailable, GenerationFailed (with `.attempts`), Overloaded, and the
        database errors the model cannot fix (QueryTimeout, DatabaseUnavailable, ...)."""
        if return_type not in ("result", "sql"):
            raise UsageError(f"return_type must be 'result' or 'sql', not {return_type!r}")
        if not question.strip():
            raise UsageError("the question is empty", hint="ask a question about the data")
        with request_scope(current_request_id()) as request_id:  # join the caller's request, if any
            run = _Run(question, progress)
            started = time.perf_counter()
            try:
                answer = await self._answer(run, request_id, database, return_type)
            except PgmcpError as exc:
                logger.info("query failed: {}: {}", exc.code, exc.message, stage="done",
                            attempts=len(run.attempts))
                raise
            run.timings["total"] = (time.perf_counter() - started) * 1000
            answer = dataclasses.replace(answer, timings_ms=dict(run.timings))
            logger.info("query answered in {:.0f} ms after {} attempt(s)", run.timings["total"],
                        len(run.attempts), stage="done", timings_ms=answer.timings_ms)
            return answer

    async def _answer(
        self, run: _Run, request_id: str, database: str | None, return_type: ReturnType
    ) -> QueryAnswer:
        db = self.resolve_database(database)
        logger.info("question for {}: {}", db, shorten(run.question), stage="start", return_type=return_type)
        await run.report(0.0, f"reading the schema of {db}")
        with run.timed("schema"):
            schema = await self._schema_for(db)
        sql, verdict = await self._generate(run, db, schema, None, self._config.attempts)
        answer = QueryAnswer(request_id, db, run.question, sql, verdict, None, (), {})
        if return_type == "sql":
            return dataclasses.replace(answer, attempts=tuple(run.attempts))
        try:
            result = await self._run_query(run, db, sql)
        except DatabaseError as exc:
            if not is_fixable(exc):
                raise
            run.fail_last(exc)
            logger.info("the database refused the SQL ({}); asking once more", exc.code, stage="execute")
            sql, verdict = await self._generate(run, db, schema, (sql, str(exc)), 1)
            try:
                result = await self._run_query(run, db, sql)
            except DatabaseError as again:
                if not is_fixable(again):
                    raise
                run.fail_last(again)
                raise self._exhausted(run) from again
        check = await self._check_result(run, result) if self._config.result_check else None
        await run.report(1.0, "done")
        return dataclasses.replace(
            answer, sql=sql, verdict=verdict, result=result, attempts=tuple(run.attempts), result_check=check
        )

    async def _generate(
        self, run: _Run, db: str, schema: SchemaSnapshot, feedback: tuple[str, str] | None, budget: int
    ) -> tuple[str, Verdict]:
        """Up to `budget` attempts at SQL the policy allows; `GenerationFailed` when none is."""
        for _ in range(max(1, budget)):
            number = len(run.attempts) + 1
            prompt = build_prompt(
                run.question, schema, max_rows=self._max_rows_for(db), context=self._config.context,
                examples=self._config.examples, previous_attempt=feedback,
                token_budget=self._config.token_budget,
            )
            logger.debug("prompt for attempt {}: {} chars", number, prompt.chars, stage="generate")
            await run.report(0.1 + 0.1 * min(number - 1, 4), f"writing SQL (attempt {number})")
            text = ""
            replayed = False  # an answer from an earlier round: counted and logged there
            with run.timed("generate"):
                try:
                    completion = await self._complete(prompt, "generate")
                    text, replayed = completion.text, completion.replayed
                    sql = extract_sql(text)
                except GenerationFailed as exc:  # reached the model, but no SQL came back
                    run.attempts.append(Attempt(number, None, text, exc.code, str(exc)))
                    if not (replayed or exc.replayed):
                        logger.info("attempt {} gave no SQL: {}", number, exc.message, stage="generate")
                    continue
            with run.timed("check"), repeated_decisions(replayed):
                verdict = await self._check(db, sql)
            if verdict.allowed:
                run.attempts.append(Attempt(number, sql, text))
                if not replayed:
                    logger.info("attempt {} allowed", number, stage="check", verdict="allowed",
                                relations=list(verdict.relations))
                return sql, verdict
            reason = verdict.reason()
            run.attempts.append(Attempt(number, sql, text, "policy_denied", reason))
            if not replayed:
                for violation in verdict.violations:
                    POLICY_REFUSALS_TOTAL.labels(database=db, rule=violation.rule).inc()
                logger.info("attempt {} refused: {}", number, reason, stage="check", verdict="refused",
                            rules=[v.rule for v in verdict.violations])
            feedback = (sql, f"Refused by the policy: {reason}")
        raise self._exhausted(run)

    async def _complete(self, prompt: Prompt, operation: str) -> Completion:
        """One provider call through the breaker and the LLM limiter, with metrics.

        The breaker is asked first, so that while it is open a request is refused at once
        rather than after waiting for a slot; `Overloaded` from the limiter passes through the
        breaker without counting as a provider failure. A call that stops for the client's next
        round (`RequestSuspended`) has not happened yet, and an answer (or unusable answer)
        replayed from an earlier round happened then: neither is counted or logged.
        """
        provider = self._provider.name
        called = False

        async def limited() -> Completion:
            nonlocal called
            async with self._llm_limiter.slot():
                called = True
                started = time.perf_counter()
                try:
                    completion = await self._provider.complete(prompt)
                except RequestSuspended:
                    raise
                except BaseException as exc:
                    if not _replayed(exc):
                        LLM_LATENCY.labels(provider=provider).observe(time.perf_counter() - started)
                    raise
                if not completion.replayed:
                    LLM_LATENCY.labels(provider=provider).observe(time.perf_counter() - started)
                return completion

        try:
            completion = await self._breaker.call(limited)
        except PgmcpError as exc:
            if _replayed(exc):
                raise
            if not called:
                status = "overloaded" if isinstance(exc, Overloaded) else "circuit_open"
            else:
                status = "unavailable" if isinstance(exc, LLMUnavailable) else "failed"
            LLM_CALLS_TOTAL.labels(provider=provider, operation=operation, status=status).inc()
            logger.info("{} call failed: {}: {}", provider, exc.code, exc.message, stage=operation,
                        breaker=self._breaker.state)
            raise
        if completion.replayed:
            return completion
        LLM_CALLS_TOTAL.labels(provider=provider, operation=operation, status="ok").inc()
        for direction, tokens in (("input", completion.input_tokens), ("output", completion.output_tokens)):
            if tokens:
                LLM_TOKENS_TOTAL.labels(provider=provider, direction=direction).inc(tokens)
        logger.info("{} answered in {:.0f} ms", provider, completion.latency_ms, stage=operation,
                    model=completion.model, input_tokens=completion.input_tokens,
                    output_tokens=completion.output_tokens)
        return completion

    async def _run_query(self, run: _Run, db: str, sql: str) -> QueryResult:
        await run.report(0.7, "running the query")
        with run.timed("execute"):
            try:
                result = await self._execute(db, sql)
            except DatabaseError as exc:
                logger.info("query failed: {}: {}", exc.code, exc.message, stage="execute")
                raise
        logger.info("query returned {} rows in {:.0f} ms", result.row_count, result.elapsed_ms,
                    stage="execute", truncated=result.truncated)
        return result

    async def _check_result(self, run: _Run, result: QueryResult) -> ResultCheck | None:
        """The judge's opinion of `result`, or None when it could not be had (only logged)."""
        await run.report(0.9, "checking the result")
        with run.timed("result_check"):
            try:
                completion = await self._complete(build_judge_prompt(run.question, result), "result_check")
                judgement = parse_judgement(completion.text)
            except PgmcpError as exc:
                logger.warning("result check skipped: {}: {}", exc.code, exc.message, stage="result_check")
                return None
            except RequestSuspended:
                raise  # the judge's answer comes in the client's next round
            except Exception as exc:  # the answer stands whatever goes wrong in the judge
                logger.opt(exception=exc).warning("result check failed", stage="result_check")
                return None
        logger.info("result check: confidence {:.2f}", judgement.confidence, stage="result_check")
        return judgement

    def _exhausted(self, run: _Run) -> GenerationFailed:
        lines = [f"attempt {a.number} ({a.error_code}): {a.error}" for a in run.attempts if a.error]
        return GenerationFailed(
            f"no acceptable SQL after {len(run.attempts)} attempt(s):\n" + "\n".join(lines),
            hint="rephrase the question, name the tables and columns to use, or ask for data "
                 "the policy allows",
            attempts=run.attempts,
        )
