"""build_prompt: snapshot tests of the full prompt text, and large-schema selection.

Snapshots live in tests/snapshots/prompt_*.txt. After an intended change to the prompt, run
with PGMCP_UPDATE_SNAPSHOTS=1 once, read the diff, and commit it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgmcp.ask.prompt import build_prompt, rank_relations, render_schema
from pgmcp.llm.base import estimate_tokens
from pgmcp.schema.snapshot import ColumnInfo, EnumType, ForeignKey, RelationInfo, SchemaSnapshot

SNAPSHOTS = Path(__file__).parent / "snapshots"


def assert_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("PGMCP_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with PGMCP_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8")


def col(name: str, type_: str, nullable: bool = True, comment: str | None = None) -> ColumnInfo:
    return ColumnInfo(name=name, type=type_, nullable=nullable, comment=comment)


def fk(column: str, table: str, ref: str = "id", schema: str = "shop") -> ForeignKey:
    return ForeignKey(f"{column}_fkey", (column,), schema, table, (ref,))


SHOP_TABLES = (
    RelationInfo(
        "shop", "customers", "table",
        (col("id", "integer", False), col("email", "text", False, "login e-mail"),
         col("country", "character(2)"), col("created_at", "timestamp with time zone", False)),
        comment="People who bought something",
        primary_key=("id",),
    ),
    RelationInfo(
        "shop", "orders", "table",
        (col("id", "integer", False), col("customer_id", "integer", False),
         col("status", "shop.order_status", False), col("placed_at", "timestamp with time zone", False),
         col("total", "numeric(10,2)", comment="gross, in EUR")),
        primary_key=("id",),
        foreign_keys=(fk("customer_id", "customers"),),
    ),
    RelationInfo(
        "shop", "order_items", "table",
        (col("order_id", "integer", False), col("product_id", "integer", False),
         col("quantity", "integer", False)),
        primary_key=("order_id", "product_id"),
        foreign_keys=(fk("order_id", "orders"), fk("product_id", "products")),
    ),
    RelationInfo(
        "shop", "products", "table",
        (col("id", "integer", False), col("name", "text", False), col("price", "numeric(10,2)"),
         col("tags", "text[]")),
        primary_key=("id",),
    ),
    RelationInfo(
        "shop", "revenue_by_month", "view",
        (col("month", "date"), col("revenue", "numeric")),
        comment="Paid orders only",
    ),
)
SHOP = SchemaSnapshot(
    database="shop",
    relations=SHOP_TABLES,
    enums=(EnumType("shop", "order_status", ("new", "paid", "shipped", "cancelled")),),
)
COMMON = {
    "dialect_rules": "The server is PostgreSQL 16.",
    "allowed_functions_note": "the built-in safe set (count, sum, avg, date_trunc, lower, ...)",
    "max_rows": 100,
    "context": "Amounts are in EUR. 'Last month' means the previous calendar month.",
    "examples": (("How many customers are there?", "SELECT count(*) FROM shop.customers AS c LIMIT 1"),),
}


def test_small_schema_prompt() -> None:
    question = "Which 5 customers spent the most on paid orders?"
    prompt = build_prompt(question, SHOP, token_budget=4000, **COMMON)
    assert_snapshot("prompt_small.txt", prompt.render_text())
    assert [m.role for m in prompt.messages] == ["user", "assistant", "user"]


def test_retry_prompt_carries_the_failed_attempt_and_its_error() -> None:
    prompt = build_prompt(
        "Which 5 customers spent the most on paid orders?",
        SHOP,
        token_budget=4000,
        previous_attempt=(
            "SELECT c.email, sum(o.total) FROM shop.customers c JOIN shop.orders o ON o.customer = c.id",
            "PGM203 unresolvable-table ... column o.customer does not exist; and there is no LIMIT",
        ),
        **COMMON,
    )
    assert_snapshot("prompt_retry.txt", prompt.render_text())
    assert [m.role for m in prompt.messages] == ["user", "assistant", "user", "assistant", "user"]


def test_denied_objects_never_appear() -> None:
    # The snapshot is policy-filtered before it reaches the builder: the builder adds nothing.
    # A foreign key to a hidden table is not even named as a join hint.
    visible = SchemaSnapshot(database="shop", relations=SHOP_TABLES[1:2])
    text = build_prompt("anything", visible).render_text()
    assert "customers" not in text.replace("customer_id", "")
    assert "table shop.orders" in text


def test_empty_schema_says_so() -> None:
    text = build_prompt("anything", SchemaSnapshot(database="x")).render_text()
    assert "(no tables are visible under the policy)" in text


# --- large schemas ----------------------------------------------------------------------

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
         "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]


def big_schema(n: int = 2000) -> SchemaSnapshot:
    rels = list(SHOP_TABLES)
    for i in range(n - len(rels)):
        a, b = WORDS[i % 20], WORDS[(i // 20) % 20]
        name = f"{a}_{b}_{i:04d}"
        parent = f"{WORDS[(i - 1) % 20]}_{b}_{i - 1:04d}"
        fks = (ForeignKey("p_fkey", ("parent_id",), "misc", parent, ("id",)),) if i % 20 else ()
        rels.append(RelationInfo(
            "misc", name, "table",
            (col("id", "bigint", False), col("parent_id", "bigint"), col(f"{a}_code", "text"),
             col("updated_at", "timestamp with time zone"), col("note", "text", comment=f"{b} notes")),
            primary_key=("id",), foreign_keys=fks,
        ))
    return SchemaSnapshot("big", tuple(rels), enums=SHOP.enums)


def test_large_schema_keeps_named_tables_and_fits_the_budget() -> None:
    schema = big_schema()
    assert len(schema.relations) == 2000
    question = "Which products did the customers from Germany order most often?"
    schema_text = render_schema(question, schema, 2000)
    assert estimate_tokens(schema_text) <= 2000
    for kept in ("customers", "products", "orders", "order_items"):
        assert f"table shop.{kept}" in schema_text
    assert "Left out to fit the prompt" in schema_text
    prompt = build_prompt(question, schema, token_budget=2000, **COMMON)
    assert_snapshot("prompt_large.txt", prompt.render_text())


def test_relevance_ranking_follows_foreign_keys() -> None:
    ranked = [r.name for r in rank_relations("order items per product", SHOP)]
    # order_items matches best by name; orders and products match by name and are its partners.
    assert ranked[0] == "order_items"
    assert set(ranked[1:3]) == {"orders", "products"}
    # customers only joins orders: a join partner, ranked above the unrelated view.
    assert ranked[3:] == ["customers", "revenue_by_month"]


@pytest.mark.parametrize(
    ("question", "first"),
    [
        ("total revenue by month", "revenue_by_month"),  # table name words
        ("how many cancelled orders", "orders"),  # enum label + name
        ("customers by country", "customers"),  # plural folding + column
        ("what was shipped last week", "orders"),  # enum label only
        ("show every e-mail", "customers"),  # column comment / name
    ],
)
def test_relevance_first_choice(question: str, first: str) -> None:
    assert rank_relations(question, SHOP)[0].name == first


def test_prompt_is_pure() -> None:
    one = build_prompt("orders per customer", big_schema(300), token_budget=1500)
    two = build_prompt("orders per customer", big_schema(300), token_budget=1500)
    assert one == two
