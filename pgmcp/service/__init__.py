"""The running core (Runtime) and its concurrency limits; knows nothing of MCP."""
