"""The provider seam: a neutral prompt in, a completion out.

`Prompt` is what the prompt builder produces and knows nothing of any vendor; each provider
renders it for its own API (OpenAI: a system message followed by the messages; Anthropic: the
`system` parameter plus the messages; the MCP client: a sampling request). Providers raise
only `LLMUnavailable` (cannot reach a model: network, timeout, 5xx, 429 after retries, bad
credentials) or `GenerationFailed` (reached it, but the answer is unusable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Role = Literal["user", "assistant"]


class RequestSuspended(Exception):
    """A provider's call stops here to be resumed: the client whose model answers must reply
    first (MCP sampling on protocol 2026-07-28) and then calls again. Deliberately not a
    `PgmcpError`, and never swallowed: nothing may treat it as a failure (retry, breaker count,
    skipped result check); it unwinds to the layer that started the call (the MCP layer),
    which turns it into the client's next round. It lives with the provider seam because
    the pipeline must let it through without knowing any protocol."""


@dataclass(frozen=True)
class Message:
    role: Role
    text: str


@dataclass(frozen=True)
class Prompt:
    """System instructions plus a conversation, in the order the model should read them."""

    system: str
    messages: tuple[Message, ...]

    @property
    def chars(self) -> int:
        return len(self.system) + sum(len(m.text) for m in self.messages)

    def render_text(self) -> str:
        """The whole prompt as plain text (snapshot tests, logs at DEBUG, token estimates)."""
        parts = [f"### system\n{self.system}"]
        parts += [f"### {m.role}\n{m.text}" for m in self.messages]
        return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class Completion:
    """A model's answer. `replayed`: the answer was given in an earlier round of a resumed MCP
    call (protocol 2026-07-28 replays the call each round), so it was counted and logged then."""

    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float = 0.0
    replayed: bool = False


@runtime_checkable
class Provider(Protocol):
    """Anything that can answer a `Prompt`. `name` is the config name (openai/anthropic/client)."""

    @property
    def name(self) -> str: ...

    async def complete(self, prompt: Prompt) -> Completion: ...

    async def aclose(self) -> None:
        """Release connections (the vendor SDK's HTTP pool); the provider is unusable after."""
        ...


def estimate_tokens(text: str) -> int:
    """A vendor-neutral token estimate: about four characters per token for English and SQL."""
    return (len(text) + 3) // 4


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` (an API key) replaced, for error messages."""
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
