"""Build the provider the config names. Vendor SDKs are imported here, on demand, so that
`import pgmcp` (and `pgmcp check-sql`) never pays for them."""

from __future__ import annotations

from pgmcp.config.model import LLMConfig
from pgmcp.errors import UsageError
from pgmcp.llm.base import Provider
from pgmcp.llm.client_provider import ClientSamplingProvider, Sampler


def make_provider(config: LLMConfig, *, sampler: Sampler | None = None) -> Provider:
    """The provider for `config.provider`. `sampler` is only used by the `client` provider
    (without it, that provider uses the sampler set with `use_sampler` at call time).

    Raises `LLMUnavailable` when a vendor provider has no API key to use.
    """
    if config.provider == "openai":
        from pgmcp.llm.openai_provider import OpenAIProvider

        return OpenAIProvider(config)
    if config.provider == "anthropic":
        from pgmcp.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider(config)
    if config.provider == "client":
        return ClientSamplingProvider(config, sampler)
    raise UsageError(f"unknown llm.provider {config.provider!r}; use openai, anthropic or client")
