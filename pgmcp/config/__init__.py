"""The configuration: its model, the loader that validates and converts the YAML."""
