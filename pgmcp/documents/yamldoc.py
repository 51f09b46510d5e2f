"""YAML documents that remember where every key and list item was written.

Config and policy files are written by people, so every error must name the file, the line
and the key path. PyYAML's `SafeLoader` composes a node graph that carries marks; we walk it
ourselves, building plain Python values (dicts, lists, scalars) and, beside them, a map from
key path to (line, column). Foreign exceptions (yaml) are translated here, once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pgmcp.errors import DocumentError, SourceLocation

PathKey = tuple[str | int, ...]

MAX_DEPTH = 64
# Aliases let a small document expand into a huge one ("billion laughs"); no real config
# or policy comes anywhere near this many values.
MAX_NODES = 100_000

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_key_path(path: PathKey) -> str:
    """`("databases", "shop", "pool", "max_size")` -> `databases.shop.pool.max_size`.

    Keys that are not plain identifiers (table globs like `public.*`) are quoted in brackets,
    `tables["public.*"]`, so the path stays unambiguous; list items are `[index]`.
    """
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _PLAIN_KEY.match(key):
            text += f".{key}" if text else key
        else:
            text += f'["{key}"]'
    return text


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML document: plain values plus the (line, column) of every key and item."""

    file: str
    data: Any
    marks: Mapping[PathKey, tuple[int, int]]

    def location(self, path: PathKey) -> SourceLocation:
        """Where `path` was written; for a path that is not in the file (a missing key), the
        nearest enclosing key that is."""
        probe = path
        while probe and probe not in self.marks:
            probe = probe[:-1]
        line, column = self.marks.get(probe, (1, 1))
        return SourceLocation(self.file, line, column, format_key_path(path))

    def replace_data(self, data: Any) -> YamlDocument:
        return YamlDocument(self.file, data, self.marks)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, file: str, error: type[DocumentError]) -> None:
        self.loader = loader
        self.file = file
        self.error = error
        self.marks: dict[PathKey, tuple[int, int]] = {}
        self.nodes = 0

    def fail(self, message: str, node: Node, path: PathKey, hint: str | None = None) -> DocumentError:
        mark = node.start_mark
        where = SourceLocation(self.file, mark.line + 1, mark.column + 1, format_key_path(path))
        return self.error(message, where, hint=hint)

    def build(self, node: Node, path: PathKey) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or len(path) > MAX_DEPTH:
            raise self.fail("document is too large or too deeply nested (check anchors/aliases)", node, path)
        if isinstance(node, MappingNode):
            return self.build_mapping(node, path)
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.marks[(*path, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                items.append(self.build(item, (*path, index)))
            return items
        try:
            return self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            raise self.fail(
                f"cannot read this value: {exc}", node, path, "quote it to keep it as text"
            ) from exc

    def build_mapping(self, node: MappingNode, path: PathKey) -> dict[str, Any]:
        try:
            self.loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.YAMLError as exc:
            raise self.fail(f"bad merge key: {exc}", node, path) from exc
        result: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.fail("a key must be a plain string, not a list or mapping", key_node, path)
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str):
                shown = key_node.value
                raise self.fail(
                    f"key {shown!r} is read as {type(key).__name__}, not text",
                    key_node,
                    path,
                    f'quote it: "{shown}"',
                )
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in result:
                raise self.fail(
                    f"duplicate key {key!r}",
                    key_node,
                    child,
                    f"each key may appear once in a mapping; it is already set on line {first_seen[key]}",
                )
            first_seen[key] = line
            self.marks[child] = (line, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child)
        return result


def parse_yaml(text: str, file: str, error: type[DocumentError]) -> YamlDocument:
    """Parse one YAML document from `text`; `file` names it in errors."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
            problem = exc.problem or exc.context or "cannot parse"
            context = f" ({exc.context})" if exc.context and exc.problem else ""
            raise error(
                f"YAML syntax error: {problem}{context}",
                SourceLocation(file, line, column),
                hint="check indentation (spaces, not tabs), colons after keys, and quotes around "
                "values that contain ': ', '#', '{' or '['",
            ) from exc
        except yaml.YAMLError as exc:
            raise error(f"YAML error: {exc}", SourceLocation(file)) from exc
        if node is None:
            return YamlDocument(file, None, {(): (1, 1)})
        builder = _Builder(loader, file, error)
        builder.marks[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
        data = builder.build(node, ())
        return YamlDocument(file, data, builder.marks)
    finally:
        loader.dispose()


def read_yaml(path: Path, error: type[DocumentError]) -> YamlDocument:
    """Read and parse the YAML file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"file not found: {path}", SourceLocation(str(path))) from exc
    except UnicodeDecodeError as exc:
        raise error(
            f"not UTF-8 text: {exc.reason}", SourceLocation(str(path)), hint="save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", SourceLocation(str(path))) from exc
    return parse_yaml(text, str(path), error)
