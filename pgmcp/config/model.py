"""The configuration, as frozen values. Loading lives in `pgmcp.config.loader`.

Everything else receives these objects; nothing here knows about the rest of pgmcp.
Durations are stored in seconds (float). Secrets (passwords, API keys) are kept in
`Secret` wrappers whose repr never shows the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pgmcp.errors import SourceLocation


@dataclass(frozen=True)
class Secret:
    """A secret value whose str/repr never reveals it."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "***" if self.value else ""

    def __repr__(self) -> str:
        return "Secret(***)" if self.value else "Secret('')"

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class PoolConfig:
    min_size: int = 1
    max_size: int = 5


@dataclass(frozen=True)
class AccessEntry:
    """One entry of `databases.<name>.access`: who it matches (principal names or groups) and
    the policies it adds on top of the database's own (merged with the existing rules)."""

    principals: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    policies: tuple[str, ...] = ()  # resolved file paths or shipped policy names
    source: SourceLocation | None = None

    def matches(self, principal: str, groups: frozenset[str]) -> bool:
        return principal in self.principals or bool(self.groups & groups)


@dataclass(frozen=True)
class DatabaseConfig:
    name: str
    # Either a DSN or discrete fields; `dsn` never holds the password (it is split out into
    # `password` at load time so that the DSN can be shown in logs).
    dsn: str | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    dbname: str | None = None
    password: Secret = Secret("")
    sslmode: str | None = None
    description: str = ""
    policies: tuple[str, ...] = ()  # resolved file paths or shipped policy names
    role: str | None = None  # applied with SET ROLE on every connection
    pool: PoolConfig = PoolConfig()
    pgbouncer: bool = False  # transaction pooling: no prepared-statement cache
    refuse_unsafe_role: bool = False  # refuse (rather than warn) superuser/BYPASSRLS/... roles
    require_grants: bool = False  # privilege-audit findings are fatal for this database
    search_path: tuple[str, ...] | None = None  # None: take the policy's
    statement_timeout: float | None = None  # seconds; None: take limits / the policy's
    # None: every principal may use the database; else only those some entry matches.
    access: tuple[AccessEntry, ...] | None = None
    source: SourceLocation | None = None


LLMProviderName = Literal["openai", "anthropic", "client"]


@dataclass(frozen=True)
class LLMConfig:
    provider: LLMProviderName = "client"
    model: str | None = None
    api_key: Secret = Secret("")
    base_url: str | None = None
    timeout: float = 30.0
    max_retries: int = 2
    temperature: float = 0.0
    max_tokens: int = 1024
    attempts: int = 3  # generation attempts per question (with error feedback)
    context: str = ""  # extra instructions for the prompt
    examples: tuple[tuple[str, str], ...] = ()  # (question, sql) pairs
    token_budget: int = 8000  # schema part of the prompt
    result_check: bool = False
    max_concurrency: int = 4
    queue_size: int = 16
    breaker_failures: int = 5
    breaker_recovery: float = 30.0


@dataclass(frozen=True)
class SchemaCacheConfig:
    ttl: float = 600.0
    refresh_ahead: float = 0.8  # refresh in the background at this fraction of the TTL


@dataclass(frozen=True)
class LimitsConfig:
    max_rows: int = 1000
    max_result_bytes: int = 1_000_000
    max_value_bytes: int = 1_000_000
    work_mem: str = "16MB"  # PostgreSQL memory units (kB, MB, GB); SET LOCAL in every query
    statement_timeout: float = 5.0
    lock_timeout: float = 1.0
    idle_in_transaction_timeout: float = 10.0
    max_concurrent_queries: int = 8
    queue_size: int = 32
    decimal_as_float: bool = False
    bytes_format: Literal["base64", "hex"] = "base64"
    # Applied to the role by `pgmcp policy grants` (needs a superuser); PostgreSQL memory units.
    temp_file_limit: str | None = "1GB"


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    audit_file: str | None = None


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `calls` per `per` seconds (burst up to `calls`)."""

    calls: int
    per: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.per, f"{self.per:g}s")
        return f"{self.calls}/{unit}"


@dataclass(frozen=True)
class StaticToken:
    """`auth.tokens[]`: a bearer token known by its SHA-256 (hex); the token itself is never stored."""

    principal: str
    sha256: str
    claims: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class JWTConfig:
    """`auth.jwt`: how to verify JWTs (exactly one key source) and read the principal from them."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: str | None = None
    public_key_file: str | None = None
    principal_claim: str = "sub"
    groups_claim: str = "groups"
    leeway: float = 30.0  # seconds of clock skew allowed on exp/nbf


@dataclass(frozen=True)
class AuthConfig:
    """`auth`: bearer-token authentication of the HTTP transport (see docs/deployment.md)."""

    tokens: tuple[StaticToken, ...] = ()
    jwt: JWTConfig | None = None
    rate_limit: RateLimit | None = None
    rate_limits: tuple[tuple[str, RateLimit], ...] = ()  # per principal
    resource_url: str | None = None  # this server's /mcp URL as clients reach it
    issuer_url: str | None = None  # the authorization server named in the resource metadata


@dataclass(frozen=True)
class Config:
    path: Path | None
    databases: tuple[DatabaseConfig, ...]
    llm: LLMConfig = LLMConfig()
    schema_cache: SchemaCacheConfig = SchemaCacheConfig()
    limits: LimitsConfig = LimitsConfig()
    logging: LoggingConfig = LoggingConfig()
    auth: AuthConfig | None = None
    # "VAR (at key.path)" of each secret left unset, when loaded with need_secrets=False
    unset_secrets: tuple[str, ...] = ()

    def database(self, name: str) -> DatabaseConfig | None:
        for db in self.databases:
            if db.name == name:
                return db
        return None
