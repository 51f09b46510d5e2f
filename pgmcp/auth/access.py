"""Which databases a principal may use, and the policy it gets on each.

`databases.<name>.access` (absent: everyone) lists entries of principals and groups; a
principal matching none may not use the database: it gets `[access_denied]` and the database
is left out of `list_databases` and the resources. The principal's policy is the database's
own policies followed by the `policies` of every entry it matches, merged by the usual rules
(`pgmcp.policy.merge`: deny rules accumulate, so deny wins), then its claims are bound into
the row filters (`pgmcp.policy.claims`). Merged policies are built once per set of matched
entries; bound ones are cached per claim value. The local stdio/CLI user holds the config
and its credentials: every database, the databases' own policies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pgmcp.auth.principal import Principal, current_principal, local_principal
from pgmcp.auth.ratelimit import RateLimiter
from pgmcp.config.model import Config, DatabaseConfig
from pgmcp.errors import AccessDenied
from pgmcp.policy.claims import ClaimBinder, Unbound
from pgmcp.policy.compiler import CompiledPolicy

PolicyBuilder = Callable[[DatabaseConfig, Sequence[str]], CompiledPolicy]


class AccessControl:
    def __init__(
        self, config: Config, base: dict[str, CompiledPolicy], build: PolicyBuilder, *, auth_required: bool = False
    ) -> None:
        self._config = {db.name: db for db in config.databases}
        self._build = build
        self.auth_required = auth_required
        self.rate_limiter = RateLimiter(config.auth)
        self._local = local_principal()
        self._binders: dict[tuple[str, tuple[int, ...]], ClaimBinder] = {
            (name, ()): ClaimBinder(policy) for name, policy in base.items()
        }
        for db in config.databases:  # build every entry's policies now: a broken one fails at startup
            for index, entry in enumerate(db.access or ()):
                if entry.policies:
                    self._binder(db, (index,))

    def principal(self) -> Principal:
        """Who the current call runs as (`pgmcp.auth.principal`): the authenticated principal,
        else the local user, unless authentication is required."""
        found = current_principal()
        if found is not None:
            return found
        if self.auth_required:
            raise AccessDenied("this call carries no authenticated principal",
                               hint="send a valid bearer token (Authorization: Bearer ...)")
        return self._local

    def admit(self) -> None:
        """Let the current call in: it has a principal and is within that principal's rate limit."""
        principal = self.principal()
        if not principal.local:
            self.rate_limiter.take(principal.name)

    def may_use(self, database: str, principal: Principal) -> bool:
        db = self._config.get(database)
        if db is None:
            return False
        return principal.local or db.access is None or bool(self._matched(db, principal))

    def visible(self, principal: Principal) -> list[str]:
        return [name for name in self._config if self.may_use(name, principal)]

    def require(self, database: str, principal: Principal) -> None:
        if not self.may_use(database, principal):
            raise AccessDenied(
                f"principal {principal.name} may not use database '{database}'",
                hint="call list_databases for the databases you may use; ask an administrator for access",
            )

    def policy(self, database: str, principal: Principal) -> tuple[CompiledPolicy, tuple[Unbound, ...]]:
        """`principal`'s policy on `database` with its claims bound, and the filters left unbound."""
        self.require(database, principal)
        db = self._config[database]
        matched = () if principal.local or db.access is None else self._matched(db, principal)
        with_policies = tuple(i for i in matched if db.access is not None and db.access[i].policies)
        return self._binder(db, with_policies).bind(principal.claims)

    def _matched(self, db: DatabaseConfig, principal: Principal) -> tuple[int, ...]:
        return tuple(i for i, e in enumerate(db.access or ()) if e.matches(principal.name, principal.groups))

    def _binder(self, db: DatabaseConfig, entries: tuple[int, ...]) -> ClaimBinder:
        key = (db.name, entries)
        binder = self._binders.get(key)
        if binder is None:
            access = db.access or ()
            extra = [ref for i in entries for ref in access[i].policies]
            binder = ClaimBinder(self._build(db, extra))
            self._binders[key] = binder
        return binder
