"""Anthropic's Messages API (and compatible gateways via `base_url`).

The SDK is imported when the provider first needs it (or when it is built without a key
in the config or the environment, to look for one), not when pgmcp is imported. Its exceptions
are translated once, at this boundary (by `pgmcp.llm.vendor_sdk`, shared with the other SDK):
cannot reach a usable model -> `LLMUnavailable`; reached it but the answer is unusable ->
`GenerationFailed`. Messages never include the API key.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from pgmcp.config.model import LLMConfig
from pgmcp.errors import GenerationFailed, LLMUnavailable
from pgmcp.llm.base import Completion, Prompt, shorten
from pgmcp.llm.vendor_sdk import Vendor, completion, raise_translated

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import MessageParam

DEFAULT_MODEL = "claude-sonnet-4-5"
ANTHROPIC = Vendor("Anthropic", "ANTHROPIC_API_KEY", "api.anthropic.com", has_api_message=True)


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, config: LLMConfig) -> None:
        self._config = config
        self._model = config.model or DEFAULT_MODEL
        self._key = config.api_key.value or os.environ.get("ANTHROPIC_API_KEY") or ""
        self._made: AsyncAnthropic | None = None
        if not self._key:
            # Without a key in the config or the environment the SDK looks further
            # (ANTHROPIC_AUTH_TOKEN, its profile files): ask it now, so a missing key fails early.
            client = self._client
            if client.api_key is None and client.auth_token is None and client.credentials is None:
                raise LLMUnavailable(
                    "no Anthropic API key: set ANTHROPIC_API_KEY in the environment (or llm.api_key "
                    "in the config)"
                )
            self._key = client.api_key or ""

    @property
    def _client(self) -> AsyncAnthropic:
        """The SDK's client, built (and the SDK imported: about half a second) on first use when
        the key is known without it, so that startup does not pay for it."""
        if self._made is None:
            import anthropic

            try:
                self._made = anthropic.AsyncAnthropic(
                    api_key=self._key or None,
                    base_url=self._config.base_url,
                    timeout=self._config.timeout,
                    max_retries=self._config.max_retries,
                )
            except anthropic.AnthropicError as exc:  # a broken credentials profile
                raise LLMUnavailable(f"cannot load Anthropic credentials: {shorten(str(exc))}") from exc
        return self._made

    async def aclose(self) -> None:
        if self._made is not None:
            await self._made.close()

    async def complete(self, prompt: Prompt) -> Completion:
        """Render `prompt` as a Messages API call. `llm.temperature` is not sent: the Messages
        API of the 2.x SDK no longer takes one."""
        import anthropic

        messages: list[MessageParam] = []
        for m in prompt.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": m.text})
            else:
                messages.append({"role": "assistant", "content": m.text})
        started = time.perf_counter()
        try:
            response = await self._client.messages.create(
                model=self._model,
                system=prompt.system,
                messages=messages,
                max_tokens=self._config.max_tokens,
            )
        except (anthropic.AnthropicError, json.JSONDecodeError) as exc:
            raise_translated(exc, anthropic, ANTHROPIC, self._config, self._model, self._key)
        latency_ms = (time.perf_counter() - started) * 1000
        return _to_completion(response, self._model, latency_ms)


def _to_completion(response: Any, requested_model: str, latency_ms: float) -> Completion:
    # The SDK builds models without validation: check the shape ourselves.
    blocks = getattr(response, "content", None)
    if not isinstance(blocks, list):
        raise GenerationFailed("Anthropic returned no content")
    text = "".join(
        block.text for block in blocks if getattr(block, "type", None) == "text" and isinstance(
            getattr(block, "text", None), str
        )
    )
    if not text.strip():
        raise GenerationFailed("Anthropic returned an empty answer")
    logger.debug("anthropic answered in {:.0f} ms", latency_ms)
    return completion(
        text, response, requested_model, latency_ms, input_tokens="input_tokens", output_tokens="output_tokens"
    )
