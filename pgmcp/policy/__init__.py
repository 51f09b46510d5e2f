"""The policy engine: policy documents in, verdicts over SQL out. Pure: no driver, no LLM, no MCP."""
