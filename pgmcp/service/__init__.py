"""The running core (Runtime): everything one process serves; knows nothing of MCP."""
