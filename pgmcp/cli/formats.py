"""What `pgmcp check-sql` found, and its four renderings: text, json, github, sarif.

A `StatementResult` is one statement of one file with its verdict; its violations are given
positions in the whole file (the checker counts lines and columns inside the statement).
Text reads like a compiler's diagnostics (`path:line:col: PGM301 column-denied: message`),
`github` is GitHub Actions workflow commands (annotations on the pull request), `sarif` is
SARIF 2.1.0 for code-scanning tools, `json` is one object with every result and a summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgmcp import __version__
from pgmcp.policy.rules import RULES
from pgmcp.policy.verdict import Verdict, Violation

FORMATS = ("text", "json", "github", "sarif")
INFO_RULES = frozenset({"PGM501"})  # reported, never a reason for refusal
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


@dataclass(frozen=True)
class Finding:
    """One violation placed in its file (1-based line and column)."""

    violation: Violation
    line: int
    column: int

    @property
    def level(self) -> str:
        return "note" if self.violation.rule in INFO_RULES else "error"


@dataclass(frozen=True)
class StatementResult:
    """One statement (`index` is 1-based in its file) starting at `line`:`column`."""

    path: str
    index: int
    line: int
    column: int
    sql: str
    verdict: Verdict

    def findings(self) -> list[Finding]:
        out = []
        for v in self.verdict.violations:
            if v.line is None:
                line, column = self.line, self.column
            elif v.line == 1:
                line, column = self.line, self.column + (v.column or 1) - 1
            else:
                line, column = self.line + v.line - 1, v.column or 1
            out.append(Finding(v, line, column))
        return out


@dataclass(frozen=True)
class Report:
    """Everything one run of check-sql judged."""

    results: tuple[StatementResult, ...]
    files: int
    policy: str
    live_schema: bool

    @property
    def denied(self) -> int:
        return sum(not r.verdict.allowed for r in self.results)

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "statements": len(self.results),
            "allowed": len(self.results) - self.denied,
            "denied": self.denied,
            "policy": self.policy,
            "live_schema": self.live_schema,
        }


def render(report: Report, fmt: str) -> str:
    """The report in format `fmt` (one of FORMATS), ending with a newline when not empty."""
    renderer: Callable[[Report], str] = {
        "text": render_text,
        "json": render_json,
        "github": render_github,
        "sarif": render_sarif,
    }[fmt]
    return renderer(report)


def render_text(report: Report) -> str:
    lines = []
    for result in report.results:
        for f in result.findings():
            v = f.violation
            lines.append(f"{result.path}:{f.line}:{f.column}: {v.rule} {v.name}: {v.message}")
    s = report.summary()
    lines.append(
        f"{s['statements']} statement{'' if s['statements'] == 1 else 's'} in {s['files']} "
        f"file{'' if s['files'] == 1 else 's'}: {s['allowed']} allowed, {s['denied']} denied "
        f"(policy {report.policy}{', live schema' if report.live_schema else ''})"
    )
    return "\n".join(lines) + "\n"


def result_dict(result: StatementResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": result.path,
        "statement": result.index,
        "line": result.line,
        "column": result.column,
        "sql": result.sql,
        "allowed": result.verdict.allowed,
        "violations": [
            {**f.violation.to_dict(), "line": f.line, "column": f.column, "level": f.level}
            for f in result.findings()
        ],
    }
    if result.verdict.rewritten_sql is not None:
        out["rewritten_sql"] = result.verdict.rewritten_sql
    return out


def render_json(report: Report) -> str:
    doc = {"results": [result_dict(r) for r in report.results], "summary": report.summary()}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report) -> str:
    lines = []
    for result in report.results:
        for f in result.findings():
            v = f.violation
            command = "notice" if f.level == "note" else "error"
            props = (
                f"file={_gh_property(result.path)},line={f.line},col={f.column},"
                f"title={_gh_property(f'{v.rule} {v.name}')}"
            )
            lines.append(f"::{command} {props}::{_gh_data(v.message)}")
    return "".join(line + "\n" for line in lines)


def _sarif_uri(path: str) -> str:
    return "stdin" if path == "<stdin>" else path.replace("\\", "/")


def _sarif_rules() -> tuple[list[dict[str, Any]], dict[str, int]]:
    rules: list[dict[str, Any]] = [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "defaultConfiguration": {"level": "note" if rule.code in INFO_RULES else "error"},
        }
        for rule in RULES.values()
    ]
    return rules, {rule["id"]: i for i, rule in enumerate(rules)}


def render_sarif(report: Report) -> str:
    rules, index = _sarif_rules()
    results: list[dict[str, Any]] = []
    for result in report.results:
        for f in result.findings():
            v = f.violation
            entry: dict[str, Any] = {
                "ruleId": v.rule,
                "level": f.level,
                "message": {"text": v.message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _sarif_uri(result.path)},
                            "region": {"startLine": f.line, "startColumn": f.column},
                        }
                    }
                ],
            }
            if v.rule in index:
                entry["ruleIndex"] = index[v.rule]
            results.append(entry)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "pgmcp",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

