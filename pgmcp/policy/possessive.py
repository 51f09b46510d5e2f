"""`compile_pattern`: `re.compile` for patterns with possessive quantifiers, right on every Python 3.11.

CPython 3.11.0 to 3.11.4 match some possessive quantifiers wrongly: past a lookahead inside
the repeated part (gh-100061) and where the repeated part itself backtracks (gh-106052); both
were fixed in 3.11.5. Debian 12's Python is 3.11.2. On those versions the SQL splitter's
patterns ran past a `;` (`pgmcp check-sql` stopped with an internal error). There, each
`X*+`, `X++`, `X?+` and `X{m,n}+` is compiled as the atomic group `(?>X*)` (and so on) that
Python's documentation says it is equivalent to, which is also what 3.11.5 made of it: the
pattern is parsed, its possessive repeats are replaced in the parse tree, and the tree is
compiled. On later versions this is `re.compile` itself (a possessive repeat is faster than
its atomic group there: 2.6x on a 4 MB statement).
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any

BROKEN = sys.version_info < (3, 11, 5)


def compile_pattern(pattern: str, flags: int = 0, *, rewrite: bool = BROKEN) -> re.Pattern[str]:
    """`re.compile(pattern, flags)`; with `rewrite` (the default on 3.11.0-3.11.4), its
    possessive repeats compiled as atomic groups. Such a pattern's `.pattern` is None."""
    if not rewrite:
        return re.compile(pattern, flags)
    parser: Any = importlib.import_module("re._parser")
    compiler: Any = importlib.import_module("re._compiler")
    tree = parser.parse(pattern, flags)
    _atomic(tree, parser)
    compiled: re.Pattern[str] = compiler.compile(tree, flags)
    return compiled


def _atomic(sub: Any, parser: Any) -> None:
    """Replace, in the parsed `sub` and everything inside it, each possessive repeat by an atomic
    group around the greedy repeat (re/_parser.py builds both shapes)."""
    c = importlib.import_module("re._constants")
    for index, (op, av) in enumerate(sub.data):
        if op is c.POSSESSIVE_REPEAT:
            low, high, item = av
            _atomic(item, parser)
            sub.data[index] = (c.ATOMIC_GROUP, parser.SubPattern(sub.state, [(c.MAX_REPEAT, (low, high, item))]))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            _atomic(av[2], parser)
        elif op is c.SUBPATTERN:
            _atomic(av[3], parser)
        elif op is c.BRANCH:
            for branch in av[1]:
                _atomic(branch, parser)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            _atomic(av[1], parser)
        elif op is c.ATOMIC_GROUP:
            _atomic(av, parser)
        elif op is c.GROUPREF_EXISTS:
            _atomic(av[1], parser)
            if av[2] is not None:
                _atomic(av[2], parser)
