"""`pgmcp token new --principal NAME`: mint a bearer token for the HTTP transport.

The token is printed once and never stored: the config keeps only its SHA-256, in the
`auth.tokens` line printed after it. stdout holds exactly two lines, the token and the config
line (scripts read them); what to do with them goes to stderr. Give the token
to its holder through a secret channel; rotate by minting a new one, adding its line, and
removing the old line once clients use the new token (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import re
import sys

from pgmcp.auth.static_tokens import config_line, mint_token

EXIT_OK, EXIT_USAGE = 0, 2
_PRINCIPAL = re.compile(r"^[A-Za-z0-9_.@:+-]{1,200}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--principal", required=True, metavar="NAME",
                        help="who the token's bearer is (audit, access lists, rate limits)")


def run(args: argparse.Namespace) -> int:
    principal = args.principal
    if not _PRINCIPAL.match(principal):
        print(f"error: principal {principal!r} must be 1-200 letters, digits or _ . @ : + -", file=sys.stderr)
        return EXIT_USAGE
    token = mint_token()
    print("The token (shown only this once; pgmcp keeps only its SHA-256). Clients send it as the "
          "header  Authorization: Bearer <token>", file=sys.stderr)
    print(token)
    print("\nThe line for auth.tokens in pgmcp.yaml (claims: {...} may be added to it):", file=sys.stderr)
    print(config_line(principal, token))
    return EXIT_OK
