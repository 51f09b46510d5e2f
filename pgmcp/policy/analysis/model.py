"""What the resolution pass finds in one statement: plain values every rule reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from sqlglot import exp

from pgmcp.policy.analysis.items import Read
from pgmcp.policy.analysis.names import RelationRef, Unresolved

AccessKind = Literal["column", "star", "whole_row", "ambiguous", "natural"]


class AnalysisError(Exception):
    """A shape the analysis cannot map to PostgreSQL's rules: the statement is refused."""


class Access(NamedTuple):
    """One reference and the physical columns it reads (a column, `*`, a whole row...).

    A read whose column is None stands for a column pgmcp cannot name (no snapshot). For
    `ambiguous`, `reads` are the candidates: the name belongs to one of them. (A named tuple:
    one is made per reference, and it is cheaper to make than a frozen dataclass.)
    """

    kind: AccessKind
    reads: frozenset[Read]
    node: exp.Expr
    label: str


@dataclass(frozen=True)
class RowCall:
    """`t.name` that PostgreSQL reads (or may read) as the call name(t) (transformColumnRef)."""

    node: exp.Column
    alias: str
    name: str
    why: str


@dataclass(frozen=True)
class FieldSelection:
    """`(expr).name` proven a field selection (ParseFuncOrColumn tries the projection first)."""

    node: exp.Dot
    name: str
    type: str


@dataclass(frozen=True)
class UnknownColumn:
    """A name no FROM item has, where every FROM item's columns are known (a typo?)."""

    node: exp.Column
    name: str


@dataclass
class Analysis:
    """Everything one statement reads, resolved once: relations, columns, calls on rows."""

    relations: list[RelationRef] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    accesses: list[Access] = field(default_factory=list)
    row_calls: list[RowCall] = field(default_factory=list)
    fields: dict[int, FieldSelection] = field(default_factory=dict)
    unknown: list[UnknownColumn] = field(default_factory=list)
