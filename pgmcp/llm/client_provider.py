"""The `client` provider: ask the connected MCP client's own model (MCP sampling).

No API key: the MCP host (Claude Desktop, an IDE) answers `sampling/createMessage` with its
model. The provider only needs a `Sampler`, a small callable the MCP layer supplies per tool
call, so this module knows nothing of MCP itself; `context_sampler` builds one from an MCP
SDK tool `Context` (imported lazily). The sampler is passed to the provider directly, or set
for the current task with `use_sampler` so that one long-lived provider serves every call.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pgmcp.config.model import LLMConfig
from pgmcp.errors import GenerationFailed, LLMError, LLMUnavailable
from pgmcp.llm.base import Completion, Prompt, shorten

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context
    from mcp_types import CreateMessageRequest, CreateMessageResult

NO_SAMPLING = (
    "the connected MCP client does not support sampling; configure llm.provider openai or anthropic"
)


class Sampler(Protocol):
    """Ask the client's model: (system, [(role, text)], max_tokens) -> (text, model name or None)."""

    async def __call__(
        self, system: str, messages: list[tuple[str, str]], max_tokens: int
    ) -> tuple[str, str | None]: ...


@runtime_checkable
class ReplayingSampler(Sampler, Protocol):
    """A `Sampler` that may answer from an earlier round of a resumed call (`pgmcp.mcp.sampling`)."""

    @property
    def replayed(self) -> bool:
        """Whether the answer of the last call (or its failure) was given in an earlier round."""
        ...


def _replayed(sampler: Sampler) -> bool:
    return isinstance(sampler, ReplayingSampler) and sampler.replayed


_current_sampler: contextvars.ContextVar[Sampler | None] = contextvars.ContextVar(
    "pgmcp_sampler", default=None
)


@contextmanager
def use_sampler(sampler: Sampler) -> Iterator[None]:
    """Make `sampler` the one `ClientSamplingProvider`s use inside this block (this task only)."""
    token = _current_sampler.set(sampler)
    try:
        yield
    finally:
        _current_sampler.reset(token)


class ClientSamplingProvider:
    name = "client"

    def __init__(self, config: LLMConfig, sampler: Sampler | None = None) -> None:
        self._config = config
        self._sampler = sampler

    async def aclose(self) -> None:
        pass  # the MCP session owns the connection

    async def complete(self, prompt: Prompt) -> Completion:
        sampler = self._sampler or _current_sampler.get()
        if sampler is None:
            raise LLMUnavailable(
                "llm.provider is 'client' but this request did not come from an MCP client that "
                "can be asked (no sampling channel)",
                hint="use the MCP server, or configure llm.provider openai or anthropic",
            )
        messages: list[tuple[str, str]] = [(m.role, m.text) for m in prompt.messages]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._config.timeout):
                text, model = await sampler(prompt.system, messages, self._config.max_tokens)
        except TimeoutError as exc:
            raise LLMUnavailable(
                f"the MCP client's model did not answer within {self._config.timeout:g}s",
                hint="raise llm.timeout",
            ) from exc
        except GenerationFailed as exc:  # an unusable answer: say whether it is an old one
            exc.replayed = _replayed(sampler)
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        replayed = _replayed(sampler)
        if not text.strip():
            empty = GenerationFailed("the MCP client's model returned an empty answer")
            empty.replayed = replayed
            raise empty
        return Completion(text=text, model=model or "client", latency_ms=latency_ms, replayed=replayed)


def sampling_request(system: str, messages: list[tuple[str, str]], max_tokens: int) -> CreateMessageRequest:
    """The `sampling/createMessage` request for a prompt: the same on every protocol version, and
    a pure function of its arguments (multi-round sampling relies on that to replay rounds)."""
    import mcp_types as types

    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(
            messages=[
                types.SamplingMessage(
                    role="assistant" if role == "assistant" else "user",
                    content=types.TextContent(type="text", text=text),
                )
                for role, text in messages
            ],
            system_prompt=system,
            max_tokens=max_tokens,
            include_context="none",
        )
    )


def sampled_text(result: CreateMessageResult) -> tuple[str, str | None]:
    """The text and model name of a sampling answer; `GenerationFailed` when it is not text."""
    import mcp_types as types

    content = result.content
    if not isinstance(content, types.TextContent):
        raise GenerationFailed(
            f"the MCP client's model answered with {content.type} content instead of text"
        )
    return content.text, result.model or None


def check_sampling_capability(ctx: Context[Any, Any]) -> None:
    """`LLMUnavailable(NO_SAMPLING)` unless the client declared the sampling capability."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.sampling is None:
        raise LLMUnavailable(NO_SAMPLING)


def context_sampler(ctx: Context[Any, Any]) -> Sampler:
    """A `Sampler` that sends `sampling/createMessage` to the client behind an MCP tool call,
    in the middle of the call (protocol versions up to 2025-11-25).

    Raises `LLMUnavailable` (when called) if the client did not declare the sampling
    capability, if the connection cannot carry a server-to-client request in the middle of
    a tool call (protocol 2026-07-28 has no such back-channel: `pgmcp.mcp.sampling` asks
    across rounds instead), or if the client errs.
    """

    async def sample(
        system: str, messages: list[tuple[str, str]], max_tokens: int
    ) -> tuple[str, str | None]:
        import mcp_types as types
        from mcp.shared.exceptions import MCPError
        from mcp.shared.message import ServerMessageMetadata

        check_sampling_capability(ctx)
        if not ctx.session.can_send_request:
            raise LLMUnavailable(
                f"this MCP connection (protocol {ctx.protocol_version}) cannot send a sampling "
                "request during a tool call; configure llm.provider openai or anthropic"
            )
        request = sampling_request(system, messages, max_tokens)
        try:
            # send_request rather than session.create_message: the latter is marked deprecated
            # (sampling is deprecated from protocol 2026-07-28) and warns on every call.
            result = await ctx.session.send_request(
                request,
                types.CreateMessageResult,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
            )
        except LLMError:
            raise
        except MCPError as exc:
            if exc.error.code == types.METHOD_NOT_FOUND or "not supported" in exc.error.message.lower():
                raise LLMUnavailable(NO_SAMPLING) from exc
            raise LLMUnavailable(
                f"the MCP client refused the sampling request: {shorten(exc.error.message)}"
            ) from exc
        return sampled_text(result)

    return sample
