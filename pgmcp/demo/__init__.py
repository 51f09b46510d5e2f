"""`pgmcp demo`: the bundled sample database and what it takes to show pgmcp on it."""
