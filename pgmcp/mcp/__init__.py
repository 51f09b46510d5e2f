"""The MCP layer: tools, resources and prompts over the core. It only adapts."""
