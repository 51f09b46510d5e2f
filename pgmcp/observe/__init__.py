"""Logs, secret redaction, audit, metrics and the stats file."""
