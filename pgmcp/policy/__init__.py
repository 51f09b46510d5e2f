"""The policy engine: policy documents in, verdicts over SQL out. Pure: no driver, no LLM, no MCP."""

from pgmcp.policy.sqlglot_version import check_sqlglot

check_sqlglot()  # before any policy module parses SQL with a mismatched sqlglot
