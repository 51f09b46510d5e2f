"""Compile a `PolicySpec` into a `CompiledPolicy`: fast, cached decisions over resolved names.

A decision never sees raw SQL: the checker resolves every name first (pg_catalog, search
path, case folding) and asks with the folded `schema`, `name`. Deny always wins over allow;
a relation no allow rule matches is denied; the built-in dangerous functions can never be
allowed; other functions need the built-in safe set or an allow rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from pgmcp.errors import SourceLocation
from pgmcp.policy.functions import FunctionSets, function_sets, pg_catalog_functions
from pgmcp.policy.rules import PGM201, PGM202, PGM301, PGM401, PGM402, PGM403, Rule
from pgmcp.policy.spec import ColumnRule, FunctionRule, PolicySpec, RowFilter, StatementKind, TableRule

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Decision:
    """The answer for one name: allowed or not, why, and which policy rule decided.

    `code` is the rule code a refusal reports (PGM201, PGM402...); `explicit` is True when
    an allow came from a pattern without wildcards (needed to open views over denied tables
    and foreign tables).
    """

    allowed: bool
    reason: str
    source: SourceLocation | None = None
    code: Rule | None = None
    explicit: bool = False

    @property
    def rule(self) -> Rule:
        """The rule a refusal reports (asked only of a refusal)."""
        if self.code is None:
            raise ValueError(f"an allowing decision has no refusal rule: {self.reason}")
        return self.code


def _is_explicit(pattern: str) -> bool:
    return not any(c in _GLOB_CHARS for c in pattern)


@dataclass
class CompiledPolicy:
    """A policy ready for the checker. Build it with `compile_policy`."""

    spec: PolicySpec
    functions: FunctionSets = field(default_factory=function_sets)
    _tables: dict[tuple[str, str], Decision] = field(default_factory=dict, repr=False)
    _columns: dict[tuple[str, str, str], Decision] = field(default_factory=dict, repr=False)
    _funcs: dict[tuple[str | None, str], Decision] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def statements(self) -> frozenset[StatementKind]:
        return self.spec.statements

    @property
    def explain_analyze(self) -> bool:
        return self.spec.explain_analyze

    @property
    def max_rows(self) -> int | None:
        return self.spec.max_rows

    @property
    def statement_timeout_ms(self) -> int | None:
        return self.spec.statement_timeout_ms

    @property
    def search_path(self) -> tuple[str, ...]:
        return self.spec.search_path or ("public",)

    # -- relations -------------------------------------------------------------------------

    def table_decision(self, schema: str, name: str) -> Decision:
        key = (schema, name)
        if (hit := self._tables.get(key)) is not None:
            return hit
        decision = self._decide_table(f"{schema}.{name}")
        self._tables[key] = decision
        return decision

    def _decide_table(self, qualified: str) -> Decision:
        deny = _first(self.spec.tables, qualified, "deny")
        if deny is not None:
            return Decision(
                False, f"denied by {self._where(deny.source, 'tables', deny.pattern)}", deny.source, PGM201
            )
        allows = [r for r in self.spec.tables if r.action == "allow" and fnmatchcase(qualified, r.pattern)]
        if allows:
            best = next((r for r in allows if _is_explicit(r.pattern)), allows[0])
            return Decision(
                True,
                f"allowed by {self._where(best.source, 'tables', best.pattern)}",
                best.source,
                None,
                _is_explicit(best.pattern),
            )
        return Decision(False, f"not matched by any allow rule of policy {self.name}", None, PGM202)

    def table_visible(self, schema: str, name: str) -> bool:
        return self.table_decision(schema, name).allowed

    # -- columns ---------------------------------------------------------------------------

    def column_decision(self, schema: str, table: str, column: str) -> Decision:
        key = (schema, table, column)
        if (hit := self._columns.get(key)) is not None:
            return hit
        qualified = f"{schema}.{table}.{column}"
        deny = _first(self.spec.columns, qualified, "deny")
        if deny is not None:
            decision = Decision(
                False,
                f"denied by {self._where(deny.source, 'columns.deny', deny.pattern)}",
                deny.source,
                PGM301,
            )
        elif any(r.action == "allow" for r in self.spec.columns):
            allow = _first(self.spec.columns, qualified, "allow")
            if allow is None:
                decision = Decision(False, f"not in the column allow list of policy {self.name}", None, PGM301)
            else:
                decision = Decision(True, "allowed by a column rule", allow.source, None, True)
        else:
            decision = Decision(True, "no column rule applies")
        self._columns[key] = decision
        return decision

    def columns_restricted(self, schema: str, table: str) -> bool:
        """True when some column of `schema.table` may be denied (so stars must be proven)."""
        qualified = f"{schema}.{table}"
        for rule in self.spec.columns:
            if rule.action == "allow":
                return True
            table_part = rule.pattern.rsplit(".", 1)[0] if rule.pattern.count(".") >= 2 else "*"
            if fnmatchcase(qualified, table_part):
                return True
        return False

    def column_visible(self, schema: str, table: str, column: str) -> bool:
        return self.table_visible(schema, table) and self.column_decision(schema, table, column).allowed

    # -- functions -------------------------------------------------------------------------

    def function_decision(self, schema: str | None, name: str) -> Decision:
        """Decide a call of `name` (folded); `schema` None means the call was unqualified."""
        key = (schema, name)
        if (hit := self._funcs.get(key)) is not None:
            return hit
        decision = self._decide_function(schema, name)
        self._funcs[key] = decision
        return decision

    def _decide_function(self, schema: str | None, name: str) -> Decision:
        if self.functions.is_dangerous(name):
            return Decision(False, "it is in pgmcp's built-in dangerous set and can never be allowed", None, PGM401)
        builtin = schema in (None, "pg_catalog") and self.functions.is_safe(name)
        # An unqualified call resolves in pg_catalog first, then along the search path.
        forms = (
            [f"{schema}.{name}"]
            if schema
            else (
                ([f"pg_catalog.{name}"] if name in pg_catalog_functions() else [])
                + [f"{s}.{name}" for s in self.search_path]
            )
        )
        for rule in self.spec.functions:
            if rule.action == "deny" and _function_match(rule, name, forms, any_form=True):
                return Decision(
                    False,
                    f"denied by {self._where(rule.source, 'functions.deny', rule.pattern)}",
                    rule.source,
                    PGM402,
                )
        if builtin:
            return Decision(True, "in the built-in safe set")
        for rule in self.spec.functions:
            if rule.action == "allow" and _function_match(rule, name, forms, any_form=False):
                return Decision(
                    True,
                    f"allowed by {self._where(rule.source, 'functions.allow', rule.pattern)}",
                    rule.source,
                    None,
                    _is_explicit(rule.pattern),
                )
        return Decision(
            False,
            f"it is not a built-in safe function and policy {self.name} does not allow it",
            None,
            PGM403,
        )

    # -- row filters -----------------------------------------------------------------------

    def row_filter(self, schema: str, table: str) -> RowFilter | None:
        """The row filter of `schema.table`; several (from `extends`) are AND-ed together."""
        qualified = f"{schema}.{table}"
        found = [f for f in self.spec.row_filters if f.table == qualified]
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        return RowFilter(qualified, " AND ".join(f"({f.condition})" for f in found), found[0].source)

    def row_filtered_tables(self) -> frozenset[str]:
        return frozenset(f.table for f in self.spec.row_filters)

    # -- text ------------------------------------------------------------------------------

    def _where(self, source: SourceLocation | None, section: str, pattern: str) -> str:
        key = source.key_path if source and source.key_path else f'{section}."{pattern}"'
        if source is None:
            return f"policy {self.name} ({key})"
        line = f":{source.line}" if source.line is not None else ""
        return f"policy {self.name} ({source.file}{line} {key})"

    def summary(self) -> str:
        spec = self.spec
        stmts = ", ".join(sorted(spec.statements))
        analyze = " (+analyze)" if spec.explain_analyze else ""
        return (
            f"policy {spec.name}: statements [{stmts}{analyze}], {len(spec.tables)} table rules, "
            f"{len(spec.columns)} column rules, {len(spec.row_filters)} row filters, "
            f"{len(spec.functions)} function rules, max_rows {spec.max_rows}, "
            f"search_path {','.join(self.search_path)}"
        )


def _first(
    rules: tuple[TableRule, ...] | tuple[ColumnRule, ...], qualified: str, action: str
) -> TableRule | ColumnRule | None:
    for rule in rules:
        if rule.action == action and fnmatchcase(qualified, rule.pattern):
            return rule
    return None


def _function_match(rule: FunctionRule, name: str, forms: list[str], *, any_form: bool) -> bool:
    if "." not in rule.pattern:
        return fnmatchcase(name, rule.pattern)
    hits = [fnmatchcase(f, rule.pattern) for f in forms]
    return any(hits) if any_form else bool(hits) and all(hits)


def compile_policy(spec: PolicySpec) -> CompiledPolicy:
    """Compile once per policy; the result caches every decision it makes."""
    return CompiledPolicy(spec)
