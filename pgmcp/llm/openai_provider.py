"""OpenAI chat completions, and every OpenAI-compatible endpoint via `base_url`
(Ollama, vLLM, LM Studio, LiteLLM, gateways).

The SDK is imported when the provider is built, not when pgmcp is imported. Its exceptions
are translated here, once: cannot reach a usable model -> `LLMUnavailable`; reached it but
the answer is unusable -> `GenerationFailed`. Messages never include the API key.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from pgmcp.config import LLMConfig
from pgmcp.errors import GenerationFailed, LLMUnavailable
from pgmcp.llm.base import Completion, Prompt, redact, shorten

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

DEFAULT_MODEL = "gpt-4o-mini"
# Local OpenAI-compatible servers (Ollama, vLLM) accept any key; the SDK insists on one.
_NO_KEY_PLACEHOLDER = "unused"


class OpenAIProvider:
    name = "openai"

    def __init__(self, config: LLMConfig) -> None:
        import openai

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
        self._client: AsyncOpenAI = openai.AsyncOpenAI(
            api_key=key,
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

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
        except openai.AuthenticationError as exc:
            raise LLMUnavailable(
                f"OpenAI rejected the credentials (HTTP {exc.status_code}): check your API key "
                "(OPENAI_API_KEY or llm.api_key)"
            ) from None  # the SDK error echoes the rejected key: do not chain it
        except openai.PermissionDeniedError as exc:
            raise LLMUnavailable(
                f"OpenAI refused access to model {self._model!r} (HTTP 403): check your API key's "
                "permissions and the model name"
            ) from exc
        except openai.APITimeoutError as exc:
            raise LLMUnavailable(
                f"OpenAI did not answer within {self._config.timeout:g}s "
                f"({self._config.max_retries} retries)",
                hint="raise llm.timeout or try again later",
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"cannot reach OpenAI at {self._where()}: {shorten(exc.message)}") from exc
        except openai.RateLimitError as exc:
            raise LLMUnavailable(
                f"OpenAI rate limit (HTTP 429) after {self._config.max_retries} retries",
                hint="wait and try again, or lower llm.max_concurrency",
            ) from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise LLMUnavailable(
                    f"OpenAI server error (HTTP {exc.status_code}) after {self._config.max_retries} retries"
                ) from exc
            raise GenerationFailed(
                f"OpenAI refused the request (HTTP {exc.status_code}): "
                f"{redact(shorten(exc.message), self._key)}",
                hint="check llm.model and llm.max_tokens",
            ) from exc
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise GenerationFailed("OpenAI returned a malformed response") from exc
        except openai.OpenAIError as exc:
            raise GenerationFailed(f"OpenAI call failed: {redact(shorten(str(exc)), self._key)}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        return _to_completion(response, self._model, latency_ms)

    def _where(self) -> str:
        return self._config.base_url or "api.openai.com"


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
    usage = getattr(response, "usage", None)
    model = getattr(response, "model", None)
    logger.debug("openai answered in {:.0f} ms", latency_ms)
    return Completion(
        text=text,
        model=model if isinstance(model, str) and model else requested_model,
        input_tokens=_int_or_none(getattr(usage, "prompt_tokens", None)),
        output_tokens=_int_or_none(getattr(usage, "completion_tokens", None)),
        latency_ms=latency_ms,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
