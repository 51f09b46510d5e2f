"""OpenAI chat completions, and every OpenAI-compatible endpoint via `base_url`
(Ollama, vLLM, LM Studio, LiteLLM, gateways).

The SDK is imported when the provider first calls the model, not when it is built. Its exceptions
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
from pgmcp.llm.base import Completion, Prompt
from pgmcp.llm.vendor_sdk import Vendor, completion, raise_translated

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

DEFAULT_MODEL = "gpt-4o-mini"
OPENAI = Vendor("OpenAI", "OPENAI_API_KEY", "api.openai.com")
# Local OpenAI-compatible servers (Ollama, vLLM) accept any key; the SDK insists on one.
_NO_KEY_PLACEHOLDER = "unused"


class OpenAIProvider:
    name = "openai"

    def __init__(self, config: LLMConfig) -> None:
        self._config = config
        self._model = config.model or DEFAULT_MODEL
        key = config.api_key.value or os.environ.get("OPENAI_API_KEY") or ""
        if not key:
            if config.base_url is None:
                raise LLMUnavailable(
                    "no OpenAI API key: set OPENAI_API_KEY in the environment (or llm.api_key in "
                    "the config)",
                    hint="or set llm.base_url to an OpenAI-compatible server that needs no key",
                )
            key = _NO_KEY_PLACEHOLDER
        self._key = key
        self._made: AsyncOpenAI | None = None

    @property
    def _client(self) -> AsyncOpenAI:
        """The SDK's client, built (and the SDK imported: about half a second) on first use, so
        that a server whose callers never ask in plain language does not start slower for it."""
        if self._made is None:
            import openai

            self._made = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self._config.base_url,
                timeout=self._config.timeout,
                max_retries=self._config.max_retries,
            )
        return self._made

    async def aclose(self) -> None:
        if self._made is not None:
            await self._made.close()

    async def complete(self, prompt: Prompt) -> Completion:
        import openai

        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": prompt.system}]
        for m in prompt.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": m.text})
            else:
                messages.append({"role": "assistant", "content": m.text})
        started = time.perf_counter()
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                temperature=self._config.temperature,
                max_tokens=self._config.max_tokens,
            )
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise_translated(exc, openai, OPENAI, self._config, self._model, self._key)
        latency_ms = (time.perf_counter() - started) * 1000
        return _to_completion(response, self._model, latency_ms)


def _to_completion(response: Any, requested_model: str, latency_ms: float) -> Completion:
    # The SDK builds models without validation, so a gateway's odd answer shows up as
    # missing attributes rather than an exception: check the shape ourselves.
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise GenerationFailed("OpenAI returned no choices")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str) or not text.strip():
        raise GenerationFailed("OpenAI returned an empty answer")
    logger.debug("openai answered in {:.0f} ms", latency_ms)
    return completion(
        text, response, requested_model, latency_ms, input_tokens="prompt_tokens", output_tokens="completion_tokens"
    )
