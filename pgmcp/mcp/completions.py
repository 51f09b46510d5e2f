"""MCP completions (`completion/complete`) for the `database` and `table` arguments.

A host completes what a person types into a prompt's or a resource template's argument:
`database` from the configured databases the caller may use, `table` from the relations the
caller's policy shows on that database (the policy-filtered snapshot, so a hidden table is
never offered). The caller is the request's principal (`pgmcp.auth`), set by the server. A table is offered
as its bare name when its schema is on the policy's search path, else schema-qualified, and
matches what was typed at the start of either form. Anything else completes to nothing.
"""

from __future__ import annotations

from mcp_types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from pgmcp.errors import PgmcpError
from pgmcp.service.runtime import Runtime

MAX_VALUES = 100  # the protocol's cap on the values of one completion


def _completion(values: list[str]) -> Completion:
    return Completion(values=values[:MAX_VALUES], total=len(values), has_more=len(values) > MAX_VALUES)


async def complete(
    runtime: Runtime | None,
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
    *,
    arguments_of: dict[str, frozenset[str]],
) -> Completion | None:
    """The completion of `argument` of the prompt or resource template `ref`.

    `arguments_of` maps each prompt name and resource template URI to the arguments it takes
    that name a database or a table; other references and arguments get no completion.
    """
    key = ref.name if isinstance(ref, PromptReference) else ref.uri
    if runtime is None or argument.name not in arguments_of.get(key, frozenset()):
        return None
    typed = argument.value
    try:
        if argument.name == "database":
            names = runtime.access.visible(runtime.access.principal())
            return _completion(sorted(name for name in names if name.startswith(typed)))
        if argument.name != "table":
            return None
        given = (context.arguments or {}) if context is not None else {}
        database = runtime.resolve(given.get("database"))
        snapshot = await runtime.visible_snapshot(database)
        path = runtime.policy_for(database)[0].search_path
    except PgmcpError:
        return _completion([])  # no principal, no such database (for it), or unreadable now
    values = []
    for rel in snapshot.relations:
        shown = rel.name if rel.schema in path else rel.qualified_name
        if rel.name.startswith(typed) or rel.qualified_name.startswith(typed):
            values.append(shown)
    return _completion(sorted(set(values)))
