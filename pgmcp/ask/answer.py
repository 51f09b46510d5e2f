"""The values a question's answer is made of: `QueryAnswer` and its `Attempt`s.

Produced by `pgmcp.ask.pipeline.Pipeline.query`; the MCP layer and the CLI turn them into output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgmcp.ask.result_check import ResultCheck
from pgmcp.policy.verdict import Verdict

if TYPE_CHECKING:
    from pgmcp.db.result import QueryResult


@dataclass(frozen=True)
class Attempt:
    """One generation attempt: the model's answer, the SQL taken from it, and what was wrong
    (`error_code`/`error` are None for the attempt that was accepted and ran)."""

    number: int
    sql: str | None  # None when the answer held no SQL or the call failed
    raw: str  # the model's answer text ("" when there was none)
    error_code: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class QueryAnswer:
    """What `Pipeline.query` returns. `sql` is the generated SQL that passed the check
    (`verdict.executable_sql` is what runs, after the policy's rewrites); `result` is None
    when only the SQL was asked for."""

    request_id: str
    database: str
    question: str
    sql: str
    verdict: Verdict
    result: QueryResult | None
    attempts: tuple[Attempt, ...]
    timings_ms: Mapping[str, float]
    result_check: ResultCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "database": self.database,
            "question": self.question,
            "sql": self.sql,
            "verdict": self.verdict.to_dict(),
            "result": self.result.to_dict() if self.result is not None else None,
            "attempts": [a.to_dict() for a in self.attempts],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "result_check": self.result_check.to_dict() if self.result_check else None,
        }
