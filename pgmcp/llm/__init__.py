"""LLM providers behind one small interface (`Provider`), the circuit breaker, and SQL
extraction. Vendor SDKs are imported only by the provider that uses them."""

from __future__ import annotations

from pgmcp.llm.base import Completion, Message, Prompt, Provider, estimate_tokens
from pgmcp.llm.breaker import BreakerState, CircuitBreaker
from pgmcp.llm.client_provider import ClientSamplingProvider, Sampler, context_sampler, use_sampler
from pgmcp.llm.extract import extract_sql
from pgmcp.llm.factory import make_provider

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "ClientSamplingProvider",
    "Completion",
    "Message",
    "Prompt",
    "Provider",
    "Sampler",
    "context_sampler",
    "estimate_tokens",
    "extract_sql",
    "make_provider",
    "use_sampler",
]
