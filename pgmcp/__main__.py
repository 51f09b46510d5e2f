"""`python -m pgmcp` is the `pgmcp` command."""

from pgmcp.cli.main import main

raise SystemExit(main())
