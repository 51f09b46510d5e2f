"""FROM items (PostgreSQL's range table entries) and the columns each one exposes.

Mirrors parse_relation.c: every FROM item has an ordered list of columns (expandRTE), possibly
renamed by a column alias list (a partial list renames the leading columns only), and a name
that qualifies them (refname; none for an unaliased join). A column is what a reference to it
reads: for a physical relation the physical column behind the (maybe renamed) name; for a
join (parse_clause.c, transformFromClauseItem) the columns of both sides, a USING/NATURAL
merged column reading both; for a derived table, CTE, VALUES list or table function nothing
more than what its own query level reads, which the walk counts where it is written.

Columns are not always known: a relation without a snapshot, a derived table whose `*` covers
such a relation. Then `lookup` answers "maybe" and the caller keeps looking outward too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from pgmcp.policy.analysis.names import TableKey
from pgmcp.schema.snapshot import RelationInfo

# (schema, table, column); column None: a column whose physical name cannot be known offline.
Read = tuple[str, str, str | None]
NOTHING: frozenset[Read] = frozenset()
SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "xmax", "cmin", "cmax", "ctid"})


class Match(NamedTuple):
    """What a name means in one FROM item: the reads, and whether the item surely has it.

    (A named tuple: one is made per name looked up, and it is cheaper to make than a frozen
    dataclass.)"""

    reads: frozenset[Read]
    certain: bool


@dataclass
class Item:
    """One FROM item. `names` are its columns in order (None: a column whose name is unknown);
    `complete` is False when further columns may exist beyond `names`. A join keeps its two
    sides in `children` and its USING/NATURAL columns in `merged`."""

    alias: str | None
    names: list[str | None]
    complete: bool
    reads: list[frozenset[Read]]  # what each column of `names` reads
    physical: TableKey | None = None
    relation: RelationInfo | None = None
    children: list[Item] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    hides_children: bool = False  # an aliased join hides its sides' names
    bare_relation: bool = False  # a relation without alias: `schema.table.column` may name it
    what: str = "FROM item"
    _index: dict[str, list[int]] | None = field(default=None, repr=False, compare=False)

    # -- columns ---------------------------------------------------------------------------

    def lookup(self, name: str) -> Match | None:
        """The column `name` of this item (scanRTEForColumn), None when it surely has none."""
        if self.children and (not self.hides_children or not (self.names or self.complete)):
            # An unaliased join, or an aliased one without a column list: its sides' columns.
            found = [m for child in self.children if (m := child.lookup(name)) is not None]
            if not found:
                return None
            certain = name in self.merged or any(m.certain for m in found)
            return Match(frozenset().union(*(m.reads for m in found)), certain)
        index = self._index
        if index is None:
            index = self._index = {}
            for position, have in enumerate(self.names):
                if have is not None:
                    index.setdefault(have, []).append(position)
        positions = index.get(name)
        if positions:
            if len(positions) == 1:
                return Match(self.reads[positions[0]], True)
            return Match(frozenset().union(*(self.reads[i] for i in positions)), True)
        if self.physical is not None and name in SYSTEM_COLUMNS:
            return Match(NOTHING, True)
        if self.certain:
            return None
        if self.physical is not None and self.relation is None:
            return Match(frozenset({(*self.physical, name)}), False)
        if self.hides_children:
            unknown = self.all_reads()
            return Match(frozenset(r for r in unknown if r[2] is None or r[2] == name), False)
        return Match(NOTHING, False)

    @property
    def certain(self) -> bool:
        """Every column is known by name (and position)."""
        if self.children and not self.hides_children:
            return all(c.certain for c in self.children)
        return self.complete and None not in self.names

    def columns(self) -> tuple[list[str | None], list[frozenset[Read]]]:
        """The columns in order as `*` expands them (expandRTE; USING columns first)."""
        if not self.children or self.hides_children:
            return list(self.names), list(self.reads)
        sides = [c.columns() for c in self.children]
        names: list[str | None] = list(self.merged)
        reads: list[frozenset[Read]] = []
        for merged in self.merged:
            both = [c.lookup(merged) for c in self.children]
            reads.append(frozenset().union(*(m.reads for m in both if m is not None)))
        for side_names, side_reads in sides:
            for name, read in zip(side_names, side_reads, strict=True):
                if name is None or name not in self.merged:
                    names.append(name)
                    reads.append(read)
        return names, reads

    def all_reads(self) -> frozenset[Read]:
        """Every column of the item: what `*` or a whole-row reference reads."""
        out: set[Read] = set()
        for reads in self.reads:
            out |= reads
        for child in self.children:
            out |= child.all_reads()
        if self.physical is not None and self.relation is None:
            out.add((*self.physical, None))
        return frozenset(out)

    # -- names -----------------------------------------------------------------------------

    def named(self, alias: str) -> Item | None:
        """The item or join member a qualifier `alias.` names (refnameNamespaceItem)."""
        if self.alias == alias:
            return self
        if self.hides_children:
            return None
        for child in self.children:
            found = child.named(alias)
            if found is not None:
                return found
        return None

    def unaliased(self, key: TableKey) -> Item | None:
        """The unaliased relation `schema.table` a three-part name `schema.table.column` names."""
        if self.physical == key and self.bare_relation:
            return self
        if self.hides_children:
            return None
        for child in self.children:
            found = child.unaliased(key)
            if found is not None:
                return found
        return None

    def leaves(self) -> list[Item]:
        """The relations, derived tables and functions the item is made of."""
        if not self.children:
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]


def _one(key: TableKey, column: str | None) -> frozenset[Read]:
    read: Read = (key[0], key[1], column)
    return frozenset({read})


# The columns of a snapshot relation and what each reads, per relation object (kept in the
# value, so its id stays its own): every reference to the relation, in every statement, has them.
_PHYSICAL: dict[int, tuple[RelationInfo, TableKey, tuple[str, ...], tuple[frozenset[Read], ...]]] = {}


def _physical(key: TableKey, relation: RelationInfo) -> tuple[tuple[str, ...], tuple[frozenset[Read], ...]]:
    cached = _PHYSICAL.get(id(relation))
    if cached is not None and cached[0] is relation and cached[1] == key:
        return cached[2], cached[3]
    names = tuple(c.name for c in relation.columns)
    reads = tuple(_one(key, c) for c in names)
    if len(_PHYSICAL) >= 4096:
        _PHYSICAL.clear()  # snapshots come and go: keep only the recent ones' relations
    _PHYSICAL[id(relation)] = (relation, key, names, reads)
    return names, reads


def physical_item(alias: str, key: TableKey, relation: RelationInfo | None, columns: list[str], bare: bool) -> Item:
    """A table, view, sequence... read by `key`, named `alias`, with its column alias list."""
    what = f"{key[0]}.{key[1]}"
    if relation is not None:
        physical, physical_reads = _physical(key, relation)
        names: list[str | None] = [*columns, *physical[len(columns) :]]
        reads: list[frozenset[Read]] = list(physical_reads[: len(names)])
        reads += [NOTHING] * (len(names) - len(reads))
        return Item(alias, names, True, reads, key, relation, bare_relation=bare, what=what)
    # No snapshot: a renamed position stands for a physical column whose name is unknown.
    unknown: frozenset[Read] = frozenset({(*key, None)})
    renamed: list[str | None] = list(columns)
    return Item(alias, renamed, False, [unknown] * len(columns), key, None, bare_relation=bare, what=what)


def derived_item(alias: str | None, names: list[str | None], complete: bool, columns: list[str], what: str) -> Item:
    """A derived table, CTE reference, VALUES list or table function: its outputs, renamed."""
    out: list[str | None] = [*columns, *names[len(columns) :]]
    return Item(alias, out, complete and len(columns) <= len(names), [NOTHING] * len(out), what=what)


def join_item(left: Item, right: Item, merged: list[str], alias: str | None, columns: list[str]) -> Item:
    """`left JOIN right` (USING/NATURAL columns `merged`), optionally aliased `AS j(x, y)`."""
    join = Item(None, [], True, [], children=[left, right], merged=merged, what="the join")
    if alias is None:
        return join
    names, reads = join.columns()
    if join.certain:
        names = [*columns, *names[len(columns) :]]
        return Item(alias, names, True, reads, children=[left, right], hides_children=True, what=f"the join {alias}")
    # Which physical column a renamed position stands for is unknown: it may be any of them,
    # and a name past the list may be any column of either side.
    unknown = frozenset((s, t, None) for s, t, _ in join.all_reads())
    return Item(alias, list(columns), False, [unknown] * len(columns), children=[left, right],
                hides_children=True, what=f"the join {alias}")
