"""The database layer: connection pools, the policy-checked executor, the throwaway server."""
