"""The database enforces the policy too: generated grants and row-level security
(`pgmcp policy grants`), and the privilege audit of the role pgmcp connects as."""
