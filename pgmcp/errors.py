"""The project's exceptions, in one small tree.

Exceptions mean "cannot proceed"; policy refusals are values (`Verdict`), not exceptions.
Foreign exceptions (asyncpg, openai, anthropic, yaml, jsonschema) are translated once, at the
boundary where they are caught, with `raise ... from`. Every error carries a stable `code`
that the MCP layer and the CLI show to callers, and a message written for whoever must act
on it (a person or a model). Messages never contain secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class PgmcpError(Exception):
    """Base of every error pgmcp raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


@dataclass(frozen=True)
class SourceLocation:
    """Where in which YAML file something lives (1-based line and column)."""

    file: str
    line: int | None = None
    column: int | None = None
    key_path: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.key_path:
            where += f" at {self.key_path}"
        return where


class DocumentError(PgmcpError):
    """A YAML document (config or policy) is broken: names file, line, key path, and a fix."""

    code = "invalid_document"

    def __init__(self, message: str, location: SourceLocation, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.location = location

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class ConfigError(DocumentError):
    code = "invalid_config"


class PolicyError(DocumentError):
    code = "invalid_policy"


class UsageError(PgmcpError):
    """A command-line or tool call was malformed."""

    code = "invalid_request"


class DatabaseNotFound(PgmcpError):
    code = "database_not_found"


class DatabaseError(PgmcpError):
    """A database operation failed; subclasses say how.

    `sqlstate` is PostgreSQL's error code when the server reported one; `position` is the
    1-based character offset into the SQL that PostgreSQL pointed at, when it did.
    """

    code = "database_error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        sqlstate: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate
        self.position = position


class DatabaseUnavailable(DatabaseError):
    code = "database_unavailable"


class QueryTimeout(DatabaseError):
    code = "query_timeout"


class PermissionDenied(DatabaseError):
    code = "permission_denied"


class UndefinedObject(DatabaseError):
    code = "undefined_object"


class QueryFailed(DatabaseError):
    code = "query_failed"


class UnsafeRole(DatabaseError):
    code = "unsafe_role"


class RefusalReason(Protocol):
    """What a refusal says about one violation (`pgmcp.policy.verdict.Violation` is one)."""

    @property
    def rule(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def line(self) -> int | None: ...
    @property
    def column(self) -> int | None: ...


class Refusal(Protocol):
    """The refusing decision a `PolicyDenied` carries (`pgmcp.policy.verdict.Verdict` is one).

    A protocol, so that this module imports nothing of pgmcp: errors sit below every layer,
    and the policy's value types depend on them, not the other way round.
    """

    @property
    def allowed(self) -> bool: ...
    @property
    def violations(self) -> Sequence[RefusalReason]: ...


class PolicyDenied(PgmcpError):
    """Raised where a refusal must stop a flow (the verdict itself stays a value).

    `verdict` is the refusing `Verdict` when there is one.
    """

    code = "policy_denied"

    def __init__(self, message: str, *, hint: str | None = None, verdict: Refusal | None = None) -> None:
        super().__init__(message, hint=hint)
        self.verdict = verdict


class LLMError(PgmcpError):
    code = "llm_error"
    # Set when the failure comes from an answer given in an earlier round of a resumed MCP call
    # (protocol 2026-07-28): it was counted and logged when it first happened.
    replayed = False


class LLMUnavailable(LLMError):
    code = "llm_unavailable"


class GenerationFailed(LLMError):
    """No usable SQL: the model's answer was unusable, or the pipeline's attempts ran out.

    `attempts` holds the pipeline's `Attempt` values (each with its error) when it gave up
    after retrying; empty otherwise.
    """

    code = "generation_failed"

    def __init__(self, message: str, *, hint: str | None = None, attempts: Sequence[object] = ()) -> None:
        super().__init__(message, hint=hint)
        self.attempts = tuple(attempts)


class Overloaded(PgmcpError):
    code = "overloaded"


class BrokenInstall(PgmcpError):
    """pgmcp's own installation is inconsistent (e.g. sqlglot and sqlglotc of different releases)."""

    code = "broken_install"


class PostgresNotFound(PgmcpError):
    """PostgreSQL's server binaries (initdb, pg_ctl) are not installed or not found."""

    code = "postgres_not_found"


class AccessDenied(PgmcpError):
    """The authenticated principal may not use this database or table (its access list, or a
    row filter that needs a claim its token does not carry)."""

    code = "access_denied"


class RateLimited(PgmcpError):
    """The principal has used up its calls for now; `retry_after` is the seconds to wait."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
