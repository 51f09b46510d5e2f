"""The database layer: connection pools, the policy-checked executor and its results, the query limiter."""
