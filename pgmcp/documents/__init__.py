"""Reading the documents pgmcp ships and loads.

YAML with line numbers, JSON Schema validation, ${VAR} expansion, durations, shipped files.
"""
