"""Test doubles for networks pgmcp does not own (LLM vendors). They speak the real wire
protocol so the real client libraries run against them."""
