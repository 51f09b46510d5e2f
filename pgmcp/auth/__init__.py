"""Who is calling over HTTP: bearer tokens (static or JWT), principals, access and rate limits."""
