"""Build the provider-neutral prompt that asks a model for one SQL query.

A pure function of its inputs: the question, the policy-filtered schema snapshot (so no
denied table or column can appear), the rules, the configured context and examples, and the
previous failed attempt when retrying. The schema part is held to a token budget (about four
characters per token): when the whole schema does not fit, the tables most relevant to the
question are chosen (word overlap with names, columns, comments and enum labels, plus their
foreign-key join partners) and the prompt names the tables that were left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pgmcp.llm.base import Message, Prompt, estimate_tokens
from pgmcp.schema.snapshot import ColumnInfo, ForeignKey, RelationInfo, SchemaSnapshot

DEFAULT_FUNCTIONS_NOTE = (
    "ordinary built-in functions (aggregates, date/time, string and math functions); never "
    "functions that read files, change settings, sleep, lock, or administer the server"
)
LEFT_OUT_NAMES = 30  # how many left-out table names the prompt lists
_KIND_WORD = {
    "table": "table",
    "view": "view",
    "materialized_view": "materialized view",
    "foreign_table": "foreign table",
    "partitioned_table": "table",
}


def build_prompt(
    question: str,
    schema: SchemaSnapshot,
    *,
    dialect_rules: str = "",
    allowed_functions_note: str = "",
    max_rows: int = 1000,
    context: str = "",
    examples: Sequence[tuple[str, str]] = (),
    previous_attempt: tuple[str, str] | None = None,
    token_budget: int = 8000,
) -> Prompt:
    """The prompt for `question` over `schema` (already filtered by the policy).

    `dialect_rules` adds to the SQL rules (e.g. the server version); `allowed_functions_note`
    says which functions the policy allows; `examples` are (question, sql) pairs given as
    earlier turns; `previous_attempt` is (sql, error) of the attempt being retried;
    `token_budget` bounds the schema part of the prompt.
    """
    rules = [
        "Write SQL for PostgreSQL." + (f" {dialect_rules.strip()}" if dialect_rules.strip() else ""),
        "Write exactly one read-only SELECT statement (WITH ... SELECT is fine). Never write "
        "INSERT, UPDATE, DELETE, MERGE, DDL, COPY, locking clauses or more than one statement.",
        "Use only the tables and columns listed below. Qualify every table with its schema and "
        "give every table an alias; prefix every column with its table's alias.",
        f"Include a LIMIT of at most {max_rows} rows.",
        "Use only these functions: " + (allowed_functions_note.strip() or DEFAULT_FUNCTIONS_NOTE) + ".",
        "Answer with the query in a single ```sql fenced code block and nothing else.",
    ]
    system = [
        "You translate questions about a PostgreSQL database into one SQL query.",
        "",
        "Rules:",
        *[f"{i}. {rule}" for i, rule in enumerate(rules, 1)],
    ]
    if context.strip():
        system += ["", "Context:", context.strip()]
    system += ["", render_schema(question, schema, token_budget)]

    messages: list[Message] = []
    for example_question, example_sql in examples:
        messages.append(Message("user", example_question.strip()))
        messages.append(Message("assistant", _fence(example_sql)))
    messages.append(Message("user", question.strip()))
    if previous_attempt is not None:
        sql, error = previous_attempt
        messages.append(Message("assistant", _fence(sql)))
        messages.append(
            Message(
                "user",
                "That query was rejected:\n"
                f"{error.strip()}\n"
                "Write a corrected query for the same question, following all the rules.",
            )
        )
    return Prompt(system="\n".join(system), messages=tuple(messages))


def render_schema(question: str, schema: SchemaSnapshot, token_budget: int) -> str:
    """The schema section: every relation when it fits `token_budget`, otherwise the most
    relevant ones for `question` and a line naming the ones left out."""
    header = f'Schema of database "{schema.database}":'
    # Sequences are left out: serial and identity columns already say what they number, and a
    # question is answered from tables and views.
    relations = sorted((r for r in schema.relations if r.kind != "sequence"), key=lambda r: (r.schema, r.name))
    if not relations:
        return header + "\n(no tables are visible under the policy)"
    enums = _enum_labels(schema)
    visible = {r.qualified_name: r for r in relations}
    blocks = {r.qualified_name: render_relation(r, enums, visible) for r in relations}
    full = "\n\n".join(blocks[r.qualified_name] for r in relations)
    if estimate_tokens(header) + estimate_tokens(full) + 1 <= token_budget:
        return f"{header}\n\n{full}"

    ranked = [r for r in rank_relations(question, schema) if r.qualified_name in blocks]
    longest = sorted((len(r.qualified_name) for r in relations), reverse=True)[:LEFT_OUT_NAMES]
    reserve = estimate_tokens(_left_out_line(["x" * n for n in longest], len(relations))) + 2
    room = token_budget - estimate_tokens(header) - reserve
    chosen: set[str] = set()
    for rel in ranked:
        cost = estimate_tokens(blocks[rel.qualified_name]) + 1
        if cost <= room:
            chosen.add(rel.qualified_name)
            room -= cost
    left_out = [r.qualified_name for r in ranked if r.qualified_name not in chosen]
    shown = "\n\n".join(blocks[r.qualified_name] for r in relations if r.qualified_name in chosen)
    parts = [header, f"(showing {len(chosen)} of {len(relations)} tables, chosen for this question)"]
    if shown:
        parts.append(shown)
    if left_out:
        parts.append(_left_out_line(left_out, len(left_out)))
    return "\n\n".join(parts)


def render_relation(
    rel: RelationInfo, enums: dict[str, tuple[str, ...]], visible: dict[str, RelationInfo] | None = None
) -> str:
    """One relation as compact text: columns with types, keys, join hints, enum values, comments.

    With `visible` (qualified name -> relation), join hints to relations or columns not in it
    are dropped: a foreign key must not name a table the policy hides.
    """
    head = f"{_KIND_WORD.get(rel.kind, rel.kind)} {rel.qualified_name}"
    if rel.comment:
        head += f"  -- {_one_line(rel.comment)}"
    lines = [head]
    lines += ["  " + _render_column(col, enums) for col in rel.columns]
    if rel.primary_key:
        lines.append(f"  primary key ({', '.join(rel.primary_key)})")
    for fk in rel.foreign_keys:
        if visible is not None and not _fk_visible(rel, fk, visible):
            continue
        on = " AND ".join(
            f"{rel.name}.{c} = {fk.ref_table}.{r}" for c, r in zip(fk.columns, fk.ref_columns, strict=False)
        )
        lines.append(f"  join {fk.ref_schema}.{fk.ref_table} ON {on}")
    return "\n".join(lines)


def _fk_visible(rel: RelationInfo, fk: ForeignKey, visible: dict[str, RelationInfo]) -> bool:
    target = visible.get(f"{fk.ref_schema}.{fk.ref_table}")
    return (
        target is not None
        and all(rel.column(c) is not None for c in fk.columns)
        and all(target.column(c) is not None for c in fk.ref_columns)
    )


def _render_column(col: ColumnInfo, enums: dict[str, tuple[str, ...]]) -> str:
    text = f"{col.name} {col.type}"
    if not col.nullable:
        text += " not null"
    labels = enums.get(col.type.removesuffix("[]"))
    if labels:
        text += " (one of: " + ", ".join(f"'{label}'" for label in labels) + ")"
    if col.comment:
        text += f"  -- {_one_line(col.comment)}"
    return text


# --- relevance --------------------------------------------------------------------------

_STOPWORD_TEXT = (
    "a an and any are as at be by did do does each for from had has have how i in is it its "
    "list many me much my no not of on or our per show shows than that the their them there "
    "these they this to us was we were what when where which who whose why with all give "
    "find get number count total top most least"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[a-z][a-z0-9]*")


def rank_relations(question: str, schema: SchemaSnapshot) -> list[RelationInfo]:
    """Relations in order of relevance to `question`; ties (and the unrelated) by name.

    A relation scores by words shared with the question: its name (10 each), its columns (3),
    its enum labels (2), its comments (1). Join partners inherit part of a scoring relation's
    score: the tables it references (half) and tables that reference it (40%, summed, so a
    bridge table between two relevant tables ranks high).
    """
    asked = _words(question)
    enums = _enum_labels(schema)
    own: dict[str, float] = {}
    for rel in schema.relations:
        score = 10.0 * len(asked & _words(rel.name)) + 2.0 * len(asked & _words(rel.schema))
        column_words = set().union(*(_words(c.name) for c in rel.columns)) if rel.columns else set()
        score += 3.0 * len(asked & column_words)
        labels = {
            word
            for col in rel.columns
            for label in enums.get(col.type.removesuffix("[]"), ())
            for word in _words(label)
        }
        score += 2.0 * len(asked & labels)
        comments = _words(" ".join([rel.comment or "", *(c.comment or "" for c in rel.columns)]))
        score += 1.0 * len(asked & comments)
        own[rel.qualified_name] = score
    total = dict(own)
    for rel in schema.relations:
        mine = own[rel.qualified_name]
        for fk in rel.foreign_keys:
            target = f"{fk.ref_schema}.{fk.ref_table}"
            if target in total and target != rel.qualified_name:
                # rel references target: target is a join partner of rel, and vice versa.
                total[target] = max(total[target], own[target] + 0.5 * mine)
                total[rel.qualified_name] += 0.4 * own[target]
    return sorted(schema.relations, key=lambda r: (-total[r.qualified_name], r.schema, r.name))


def _words(text: str) -> set[str]:
    """Lower-case words of `text` (identifiers split on _ and digits), plurals folded."""
    return {_singular(w) for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _STOPWORDS}


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _enum_labels(schema: SchemaSnapshot) -> dict[str, tuple[str, ...]]:
    # format_type() qualifies a type name only when its schema is not on the search path.
    out: dict[str, tuple[str, ...]] = {}
    for enum in schema.enums:
        for name in (enum.name, f"{enum.schema}.{enum.name}", f'"{enum.schema}"."{enum.name}"'):
            out.setdefault(name, enum.labels)
    return out


def _left_out_line(names: Sequence[str], count: int) -> str:
    listed = ", ".join(names[:LEFT_OUT_NAMES])
    more = f", and {count - LEFT_OUT_NAMES} more" if count > LEFT_OUT_NAMES else ""
    return f"Left out to fit the prompt ({count} tables, not shown above): {listed}{more}"


def _fence(sql: str) -> str:
    return f"```sql\n{sql.strip()}\n```"


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
