"""What each database contains: introspection, the snapshot value, and the TTL cache."""
