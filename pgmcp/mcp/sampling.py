"""Sampling the client's model from inside a tool call, on every MCP protocol version.

Up to 2025-11-25 the server sends `sampling/createMessage` in the middle of the tool call
(`pgmcp.llm.client_provider.context_sampler`). From 2026-07-28 there is no such back-channel:
a tool answers `InputRequiredResult` (the requests it needs answered, plus an opaque
`request_state`) and the client calls the tool again with the answers. The `query` pipeline
may need several samples in sequence (a retry after a refusal, one more attempt after a
database error the model can fix, the result check), each depending on the previous answer,
so the call is replayed from the start every round: `ReplaySampler` hands back the answers
already given, in order, and the first sample it has no answer for stops the run
(`SamplingRequired`) and becomes the next round's `InputRequiredResult`.

Replay is sound because prompt building is pure and the schema snapshot is cached, so the
k-th request of every round is the same; each answer is pinned to the digest of the request
it answered, and a round that rebuilds a different request stops with `SamplingReplayFailed`
rather than feed an answer to the wrong question. Replayed rounds only read the database
(read-only transactions). The answers ride `request_state`, which the SDK's request-state
boundary seals (AES-GCM, bound to the tool, its arguments and this server; it expires), so a
client sees and can alter nothing in it.

An answer handed out again says so (`ReplaySampler.replayed`, then `Completion.replayed` or
`LLMError.replayed`), so the pipeline counts and logs each sample once, in the round where the
client's answer arrived: the LLM and refusal metrics read as on the older protocols.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.request_state import compact_json
from mcp_types import CreateMessageRequest, CreateMessageResult, InputRequiredResult
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, ValidationError

from pgmcp.errors import LLMError
from pgmcp.llm.base import RequestSuspended
from pgmcp.llm.client_provider import (
    Sampler,
    check_sampling_capability,
    context_sampler,
    sampled_text,
    sampling_request,
)

# The first protocol revision whose tool calls ask the client through `InputRequiredResult`.
INPUT_REQUIRED_VERSION = "2026-07-28"
_STATE_VERSION = 1
_KEY_PREFIX = "pgmcp-sample-"


class SamplingReplayFailed(LLMError):
    """A multi-round sampling exchange (MCP protocol 2026-07-28) cannot go on: a replayed round
    rebuilt a different request than the one the client answered, or it needed more rounds
    than allowed. Neither says anything about the client's model, so the breaker ignores it."""

    code = "sampling_replay_failed"


class SamplingRequired(RequestSuspended):
    """The run needs an answer from the client's model it does not have yet: the MCP layer
    returns `result` (an `InputRequiredResult`) and the client calls again with the answer."""

    def __init__(self, result: InputRequiredResult) -> None:
        super().__init__("the client's model must answer a sampling request first")
        self.result = result


class _Answer(BaseModel):
    q: str  # digest of the request this answers
    result: dict[str, Any]  # the client's CreateMessageResult, as it came over the wire


class _State(BaseModel):
    v: int
    answers: list[_Answer] = []
    asked: str | None = None  # digest of the request the last round asked


def uses_input_required(ctx: Context[Any, Any]) -> bool:
    """Whether this call must ask the client through `InputRequiredResult` (>= 2026-07-28)."""
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION)


def sampler_for(ctx: Context[Any, Any], max_samples: int) -> Sampler:
    """The `Sampler` for the tool call behind `ctx`: mid-call requests on the older protocols,
    replayed rounds on 2026-07-28 and later (at most `max_samples` answers per call)."""
    if uses_input_required(ctx):
        return ReplaySampler(ctx, max_samples)
    return context_sampler(ctx)


def request_digest(request: CreateMessageRequest) -> str:
    params = request.params.model_dump(mode="json", by_alias=True, exclude_none=True)
    digest = hashlib.sha256(compact_json(params, sort_keys=True).encode()).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def _decode_state(text: str | None) -> _State:
    """The answers of earlier rounds. The boundary hands over only state this server sealed,
    so anything unreadable is a version drift: start over (every question is asked again)."""
    empty = _State(v=_STATE_VERSION)
    if not text:
        return empty
    try:
        state = _State.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return empty
    return state if state.v == _STATE_VERSION else empty


class ReplaySampler:
    """Answers the k-th sample of this run from the earlier rounds' answers or this round's
    `input_responses`; raises `SamplingRequired` for the first one it cannot answer."""

    def __init__(self, ctx: Context[Any, Any], max_samples: int) -> None:
        self._ctx = ctx
        self._max_samples = max(1, max_samples)
        state = _decode_state(ctx.request_state)
        self._recorded = state.answers
        self._asked = state.asked
        self._responses = ctx.input_responses or {}
        self._answers: list[_Answer] = []  # the answers this round used, carried to the next
        self._replayed = False

    @property
    def replayed(self) -> bool:
        """Whether the last answer handed out was given in an earlier round: the pipeline
        counted and logged it then, so this round must not do so again."""
        return self._replayed

    async def __call__(
        self, system: str, messages: list[tuple[str, str]], max_tokens: int
    ) -> tuple[str, str | None]:
        request = sampling_request(system, messages, max_tokens)
        q = request_digest(request)
        k = len(self._answers)
        self._replayed = k < len(self._recorded)
        if self._replayed:
            answer = self._recorded[k]
            if answer.q != q:
                raise self._mismatch(k)
        else:
            answer = self._fresh_answer(k, q, request)
        self._answers.append(answer)
        try:
            result = CreateMessageResult.model_validate(answer.result)
        except ValidationError as exc:
            raise SamplingReplayFailed(
                "the MCP client answered pgmcp's sampling request with something other than a "
                "sampling result"
            ) from exc
        return sampled_text(result)

    def _fresh_answer(self, k: int, q: str, request: CreateMessageRequest) -> _Answer:
        response = self._responses.get(_KEY_PREFIX + str(k)) if k == len(self._recorded) else None
        if response is not None:
            if self._asked != q:
                raise self._mismatch(k)
            return _Answer(q=q, result=response.model_dump(mode="json", by_alias=True, exclude_none=True))
        if k >= self._max_samples:
            raise SamplingReplayFailed(
                f"the query needed more than {self._max_samples} answers from the client's model",
                hint="raise llm.attempts, or ask again",
            )
        check_sampling_capability(self._ctx)
        state = _State(v=_STATE_VERSION, answers=self._answers, asked=q)
        raise SamplingRequired(InputRequiredResult(
            input_requests={_KEY_PREFIX + str(k): request},
            request_state=compact_json(state.model_dump(mode="json")),
        ))

    def _mismatch(self, k: int) -> SamplingReplayFailed:
        return SamplingReplayFailed(
            f"sampling request {k + 1} came out different when the call was resumed (the schema, the "
            "configuration or the data changed between rounds), so the earlier answer no longer fits it",
            hint="call the tool again",
        )
