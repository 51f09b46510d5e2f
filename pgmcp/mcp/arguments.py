"""The arguments of pgmcp's tools and prompts, each with the description a host shows a model.

One place for each argument's type and words, so that the same argument (`database`) reads
the same in every tool and prompt, and a tool's docstring becomes clean one-paragraph text.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Literal

from pydantic import Field

Question = Annotated[str, Field(description="The question, in plain language, about the data in the database")]
Database = Annotated[
    str | None,
    Field(description="Name of a configured database (see list_databases); may be left out when only one "
                      "database is configured"),
]
ReturnType = Annotated[
    Literal["result", "sql"],
    Field(description='"result" (default) runs the checked SQL and returns its rows; "sql" returns the '
                      "checked SQL without running it"),
]
Sql = Annotated[
    str,
    Field(description="One PostgreSQL statement: a SELECT, or an EXPLAIN of one when the policy allows EXPLAIN"),
]
Tables = Annotated[
    list[str] | None,
    Field(description='Only these tables ("schema.table", or "table" in any schema); every table the policy '
                      "shows when left out"),
]
PromptDatabase = Annotated[str, Field(description="Name of a configured database (see list_databases)")]
PromptTable = Annotated[str, Field(description='A table of that database, "schema.table" or "table"')]


def clean_doc(text: str | None) -> str:
    """A docstring as a description: indentation gone, each paragraph on one line."""
    paragraphs = inspect.cleandoc(text or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
