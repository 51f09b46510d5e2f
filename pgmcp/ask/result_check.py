"""The optional result check: a second LLM call judges whether a result answers the question.

The judge sees the question, the SQL that ran, the columns and the first rows (already cut
by the policy and the row cap; at most `SAMPLE_ROWS` rows and `SAMPLE_CHARS` characters), and
answers with a small JSON object `{"confidence": 0..1, "explanation": "..."}`. The judgement
is advice for the caller; the pipeline never lets it block or fail an answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgmcp.errors import GenerationFailed
from pgmcp.llm.base import Message, Prompt, shorten

if TYPE_CHECKING:
    from pgmcp.db.result import QueryResult

SAMPLE_ROWS = 20
SAMPLE_CHARS = 4000
_OBJECT = re.compile(r"\{.*\}", re.S)

JUDGE_SYSTEM = (
    "You check whether the result of a SQL query answers the question it was written for. "
    "Judge the SQL's logic (right tables, joins, filters, grouping) and whether the rows "
    "plausibly answer the question. Answer with one JSON object and nothing else: "
    '{"confidence": <number from 0 to 1>, "explanation": "<one or two sentences>"}'
)


@dataclass(frozen=True)
class ResultCheck:
    """How sure the judge is that the result answers the question (0..1), and why."""

    confidence: float
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "explanation": self.explanation}


def build_judge_prompt(question: str, result: QueryResult) -> Prompt:
    """The judge's prompt: question, SQL, columns and a bounded sample of the rows."""
    columns = ", ".join(f"{c.name} ({c.type})" for c in result.columns) or "(none)"
    rows = json.dumps(result.rows[:SAMPLE_ROWS], ensure_ascii=False, default=str)
    if len(rows) > SAMPLE_CHARS:
        rows = rows[: SAMPLE_CHARS - 1] + "…"
    shown = min(result.row_count, SAMPLE_ROWS)
    more = " (truncated)" if result.truncated else ""
    text = (
        f"Question:\n{question.strip()}\n\n"
        f"SQL:\n```sql\n{result.sql.strip()}\n```\n\n"
        f"Columns: {columns}\n"
        f"Rows: {result.row_count}{more}; the first {shown} as JSON:\n{rows}\n\n"
        "Does this result answer the question?"
    )
    return Prompt(system=JUDGE_SYSTEM, messages=(Message("user", text),))


def parse_judgement(text: str) -> ResultCheck:
    """The judge's answer as a `ResultCheck`; `GenerationFailed` when it is not the JSON asked for.

    Accepts the object inside a code fence or surrounded by prose; a confidence outside 0..1
    is clamped, one given as a percentage (1 < c <= 100) is scaled.
    """
    match = _OBJECT.search(text)
    if match is None:
        raise GenerationFailed(f"the result check answer is not JSON: {shorten(text, 120)!r}")
    try:
        data = json.loads(match.group(0))
    except ValueError as exc:
        raise GenerationFailed(f"the result check answer is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise GenerationFailed("the result check answer is not a JSON object")
    raw = data.get("confidence")
    if isinstance(raw, str):
        try:
            raw = float(raw.strip().rstrip("%"))
        except ValueError:
            raw = None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise GenerationFailed("the result check answer has no numeric 'confidence'")
    confidence = float(raw) / 100 if 1 < raw <= 100 else float(raw)
    explanation = data.get("explanation", "")
    return ResultCheck(
        confidence=min(1.0, max(0.0, confidence)),
        explanation=explanation.strip() if isinstance(explanation, str) else json.dumps(explanation),
    )
