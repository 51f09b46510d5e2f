"""Anthropic's Messages API (and compatible gateways via `base_url`).

The SDK is imported when the provider is built, not when pgmcp is imported. Its exceptions
are translated here, once: cannot reach a usable model -> `LLMUnavailable`; reached it but
the answer is unusable -> `GenerationFailed`. Messages never include the API key.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from pgmcp.config import LLMConfig
from pgmcp.errors import GenerationFailed, LLMUnavailable
from pgmcp.llm.base import Completion, Prompt, redact, shorten

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import MessageParam

DEFAULT_MODEL = "claude-sonnet-4-5"


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, config: LLMConfig) -> None:
        import anthropic

        self._config = config
        self._model = config.model or DEFAULT_MODEL
        self._key = config.api_key.value
        # With no key in the config the SDK looks in the environment (ANTHROPIC_API_KEY,
        # ANTHROPIC_AUTH_TOKEN) and in its profile files.
        try:
            self._client: AsyncAnthropic = anthropic.AsyncAnthropic(
                api_key=self._key or None,
                base_url=config.base_url,
                timeout=config.timeout,
                max_retries=config.max_retries,
            )
        except anthropic.AnthropicError as exc:  # a broken credentials profile
            raise LLMUnavailable(f"cannot load Anthropic credentials: {shorten(str(exc))}") from exc
        client = self._client
        if client.api_key is None and client.auth_token is None and client.credentials is None:
            raise LLMUnavailable(
                "no Anthropic API key: set ANTHROPIC_API_KEY in the environment (or llm.api_key "
                "in the config)"
            )
        if client.api_key:
            self._key = client.api_key

    async def aclose(self) -> None:
        await self._client.close()

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
        except anthropic.AuthenticationError as exc:
            raise LLMUnavailable(
                f"Anthropic rejected the credentials (HTTP {exc.status_code}): check your API key "
                "(ANTHROPIC_API_KEY or llm.api_key)"
            ) from None  # the SDK error echoes the rejected key: do not chain it
        except anthropic.PermissionDeniedError as exc:
            raise LLMUnavailable(
                f"Anthropic refused access to model {self._model!r} (HTTP 403): check your API "
                "key's permissions and the model name"
            ) from exc
        except anthropic.APITimeoutError as exc:
            raise LLMUnavailable(
                f"Anthropic did not answer within {self._config.timeout:g}s "
                f"({self._config.max_retries} retries)",
                hint="raise llm.timeout or try again later",
            ) from exc
        except anthropic.APIConnectionError as exc:
            where = self._config.base_url or "api.anthropic.com"
            raise LLMUnavailable(f"cannot reach Anthropic at {where}: {shorten(exc.message)}") from exc
        except anthropic.RateLimitError as exc:
            raise LLMUnavailable(
                f"Anthropic rate limit (HTTP 429) after {self._config.max_retries} retries",
                hint="wait and try again, or lower llm.max_concurrency",
            ) from exc
        except anthropic.APIStatusError as exc:
            # 529 "overloaded" and every 5xx: the service, not the request, is at fault.
            if exc.status_code >= 500:
                raise LLMUnavailable(
                    f"Anthropic server error (HTTP {exc.status_code}) after "
                    f"{self._config.max_retries} retries"
                ) from exc
            detail = redact(shorten(exc.api_message or exc.message), self._key)
            raise GenerationFailed(
                f"Anthropic refused the request (HTTP {exc.status_code}): {detail}",
                hint="check llm.model and llm.max_tokens",
            ) from exc
        except (anthropic.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise GenerationFailed("Anthropic returned a malformed response") from exc
        except anthropic.AnthropicError as exc:
            raise GenerationFailed(
                f"Anthropic call failed: {redact(shorten(str(exc)), self._key)}"
            ) from exc
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
    usage = getattr(response, "usage", None)
    model = getattr(response, "model", None)
    logger.debug("anthropic answered in {:.0f} ms", latency_ms)
    return Completion(
        text=text,
        model=model if isinstance(model, str) and model else requested_model,
        input_tokens=_int_or_none(getattr(usage, "input_tokens", None)),
        output_tokens=_int_or_none(getattr(usage, "output_tokens", None)),
        latency_ms=latency_ms,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
