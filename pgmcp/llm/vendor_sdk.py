"""What the OpenAI and Anthropic SDKs have in common, handled once for both providers.

Both SDKs are generated from the same template: the same exception classes under the same
names in the same hierarchy (`AuthenticationError`, `APITimeoutError`, `APIStatusError`...),
and response objects built without validation. The translation of those exceptions into
`LLMUnavailable` / `GenerationFailed` and the reading of a response's model and token usage
live here; each provider still catches its own SDK's classes, and a `Vendor` says how its
messages name the vendor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn

from pgmcp.config.model import LLMConfig
from pgmcp.errors import GenerationFailed, LLMUnavailable
from pgmcp.llm.base import Completion, redact, shorten


@dataclass(frozen=True)
class Vendor:
    """How pgmcp's messages name one vendor and where they point the user."""

    name: str  # as messages spell it: "OpenAI"
    key_variable: str  # the environment variable the SDK reads the key from
    default_host: str  # named when no llm.base_url is set
    # The SDK's APIStatusError carries the API's own error message as `api_message` (Anthropic).
    has_api_message: bool = False


def raise_translated(
    exc: Exception, sdk: ModuleType, vendor: Vendor, config: LLMConfig, model: str, key: str
) -> NoReturn:
    """Raise the pgmcp error for `exc`, an exception of `sdk` (or a JSONDecodeError) from a completion call.

    Call it from the `except` clause that caught `exc`: the checks run in the order of the
    SDK's class hierarchy (subclasses first), and the raised error is chained to `exc` except
    for rejected credentials, whose SDK error echoes the key.
    """
    if isinstance(exc, sdk.AuthenticationError):
        raise LLMUnavailable(
            f"{vendor.name} rejected the credentials (HTTP {exc.status_code}): check your API key "
            f"({vendor.key_variable} or llm.api_key)"
        ) from None  # the SDK error echoes the rejected key: do not chain it
    if isinstance(exc, sdk.PermissionDeniedError):
        raise LLMUnavailable(
            f"{vendor.name} refused access to model {model!r} (HTTP 403): check your API key's "
            "permissions and the model name"
        ) from exc
    if isinstance(exc, sdk.APITimeoutError):
        raise LLMUnavailable(
            f"{vendor.name} did not answer within {config.timeout:g}s ({config.max_retries} retries)",
            hint="raise llm.timeout or try again later",
        ) from exc
    if isinstance(exc, sdk.APIConnectionError):
        where = config.base_url or vendor.default_host
        raise LLMUnavailable(f"cannot reach {vendor.name} at {where}: {shorten(exc.message)}") from exc
    if isinstance(exc, sdk.RateLimitError):
        raise LLMUnavailable(
            f"{vendor.name} rate limit (HTTP 429) after {config.max_retries} retries",
            hint="wait and try again, or lower llm.max_concurrency",
        ) from exc
    if isinstance(exc, sdk.APIStatusError):
        # Every 5xx (and Anthropic's 529 "overloaded"): the service, not the request, is at fault.
        if exc.status_code >= 500:
            raise LLMUnavailable(
                f"{vendor.name} server error (HTTP {exc.status_code}) after {config.max_retries} retries"
            ) from exc
        message = (exc.api_message or exc.message) if vendor.has_api_message else exc.message
        raise GenerationFailed(
            f"{vendor.name} refused the request (HTTP {exc.status_code}): {redact(shorten(message), key)}",
            hint="check llm.model and llm.max_tokens",
        ) from exc
    if isinstance(exc, (sdk.APIResponseValidationError, json.JSONDecodeError)):
        raise GenerationFailed(f"{vendor.name} returned a malformed response") from exc
    raise GenerationFailed(f"{vendor.name} call failed: {redact(shorten(str(exc)), key)}") from exc


def completion(
    text: str, response: Any, requested_model: str, latency_ms: float, *, input_tokens: str, output_tokens: str
) -> Completion:
    """The `Completion` for `text`, with the model and token counts `response` reports when it has them.

    `input_tokens` and `output_tokens` name the vendor's usage attributes. The SDKs build
    responses without validation, so a gateway's odd answer shows up as missing or mistyped
    attributes: those become the requested model and unknown counts.
    """
    usage = getattr(response, "usage", None)
    model = getattr(response, "model", None)
    return Completion(
        text=text,
        model=model if isinstance(model, str) and model else requested_model,
        input_tokens=_int_or_none(getattr(usage, input_tokens, None)),
        output_tokens=_int_or_none(getattr(usage, output_tokens, None)),
        latency_ms=latency_ms,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
