"""The OpenAI and Anthropic providers, with the real SDK clients talking HTTP to a fake
vendor on 127.0.0.1; the `client` provider through a real MCP client with a sampling
callback."""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from pgmcp.config.model import LLMConfig, Secret
from pgmcp.errors import GenerationFailed, LLMError, LLMUnavailable
from pgmcp.llm import (
    ClientSamplingProvider,
    Completion,
    Message,
    Prompt,
    context_sampler,
    extract_sql,
    make_provider,
    use_sampler,
)
from pgmcp.llm.anthropic_provider import AnthropicProvider
from pgmcp.llm.openai_provider import OpenAIProvider
from tests.fakes.llm_server import FakeLLMServer, malformed, slow, status, text

KEY = "sk-test-THE-SECRET-KEY-1234"
VENDORS = ["openai", "anthropic"]
PROMPT = Prompt(
    system="You write PostgreSQL.",
    messages=(
        Message("user", "How many users?"),
        Message("assistant", "SELECT count(*) FROM users"),
        Message("user", "That failed: relation does not exist. Try again."),
    ),
)


@pytest.fixture(autouse=True)
def _clean(fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake.reset()
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # No credential profiles from the machine running the tests.
    monkeypatch.delenv("ANTHROPIC_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))


async def complete(vendor: str, fake: FakeLLMServer, **overrides: Any) -> Completion:
    provider = provider_for(vendor, fake, **overrides)
    try:
        result: Completion = await provider.complete(PROMPT)
        return result
    finally:
        await provider.aclose()


def provider_for(vendor: str, fake: FakeLLMServer, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "provider": vendor,
        "model": "test-model",
        "api_key": Secret(KEY),
        "base_url": fake.openai_url if vendor == "openai" else fake.anthropic_url,
        "timeout": 5.0,
        "max_retries": 2,
        "max_tokens": 321,
    }
    settings.update(overrides)
    return make_provider(LLMConfig(**settings))


def sent_key(headers: dict[str, str]) -> str:
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


@pytest.mark.parametrize("vendor", VENDORS)
async def test_success_renders_prompt_and_reports_usage(vendor: str, fake: FakeLLMServer) -> None:
    fake.script(text("```sql\nSELECT count(*) FROM app.users\n```", input_tokens=123, output_tokens=45))
    completion = await complete(vendor, fake)

    assert completion.text == "```sql\nSELECT count(*) FROM app.users\n```"
    assert (completion.model, completion.input_tokens, completion.output_tokens) == ("fake-model-1", 123, 45)
    assert completion.latency_ms > 0
    [request] = fake.requests
    assert sent_key(request.headers) == KEY
    body = request.body
    assert body["model"] == "test-model"
    assert body["max_tokens"] == 321
    turns = [("user", "How many users?"), ("assistant", "SELECT count(*) FROM users"),
             ("user", "That failed: relation does not exist. Try again.")]
    if vendor == "openai":
        assert request.path == "/v1/chat/completions"
        assert body["temperature"] == 0.0
        assert body["messages"][0] == {"role": "system", "content": "You write PostgreSQL."}
        assert [(m["role"], m["content"]) for m in body["messages"][1:]] == turns
    else:
        assert request.path == "/v1/messages"
        assert body["system"] == "You write PostgreSQL."
        assert [(m["role"], m["content"]) for m in body["messages"]] == turns


ANSWER_SHAPES = [
    ("```sql\nSELECT id FROM t LIMIT 5;\n```\nThis lists ids.", "SELECT id FROM t LIMIT 5"),
    ("Here you go:\n```\nSELECT 2\n```", "SELECT 2"),
    ("The query is:\nSELECT a\nFROM b\nLIMIT 3\n\nIt returns a.", "SELECT a\nFROM b\nLIMIT 3"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 1) SELECT * FROM x"),
]


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(("answer", "sql"), ANSWER_SHAPES)
async def test_sql_extracted_from_answer_shapes(
    vendor: str, answer: str, sql: str, fake: FakeLLMServer
) -> None:
    fake.script(text(answer))
    completion = await complete(vendor, fake)
    assert extract_sql(completion.text) == sql


@pytest.mark.parametrize("vendor", VENDORS)
async def test_malformed_json_is_generation_failed(vendor: str, fake: FakeLLMServer) -> None:
    fake.script(malformed())
    with pytest.raises(GenerationFailed, match="malformed"):
        await complete(vendor, fake)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_empty_answer_is_generation_failed(vendor: str, fake: FakeLLMServer) -> None:
    fake.script(text("   "))
    with pytest.raises(GenerationFailed, match="empty"):
        await complete(vendor, fake)


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("code", [500, 503, 429])
async def test_server_errors_are_retried_then_unavailable(
    vendor: str, code: int, fake: FakeLLMServer
) -> None:
    fake.script(*[status(code)] * 3)
    with pytest.raises(LLMUnavailable, match=f"HTTP {code}") as info:
        await complete(vendor, fake, max_retries=2)
    assert len(fake.requests) == 3  # the first try and two retries
    assert KEY not in str(info.value)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_retry_recovers_after_one_500(vendor: str, fake: FakeLLMServer) -> None:
    fake.script(status(500), text("SELECT 42"))
    completion = await complete(vendor, fake, max_retries=2)
    assert completion.text == "SELECT 42"
    assert len(fake.requests) == 2


@pytest.mark.parametrize("vendor", VENDORS)
async def test_slow_answer_beyond_timeout_is_unavailable(vendor: str, fake: FakeLLMServer) -> None:
    fake.script(slow(30))
    with pytest.raises(LLMUnavailable, match=r"did not answer within 0\.3s"):
        await complete(vendor, fake, timeout=0.3, max_retries=0)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_auth_error_says_check_key_and_never_shows_it(vendor: str, fake: FakeLLMServer) -> None:
    fake.script(status(401))
    with pytest.raises(LLMUnavailable, match="check your API key") as info:
        await complete(vendor, fake)
    assert len(fake.requests) == 1  # a bad key is not retried
    shown = "".join(traceback.format_exception(info.value))
    assert KEY not in shown
    assert "Incorrect API key provided" not in shown  # the vendor's echo stays out of tracebacks


@pytest.mark.parametrize(
    ("vendor", "env"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
async def test_key_from_environment(
    vendor: str, env: str, fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, "sk-from-env")
    await complete(vendor, fake, api_key=Secret(""))
    assert sent_key(fake.requests[0].headers) == "sk-from-env"


@pytest.mark.parametrize("vendor", VENDORS)
def test_missing_key_is_a_clear_error(vendor: str) -> None:
    with pytest.raises(LLMUnavailable, match="API_KEY"):
        make_provider(LLMConfig(provider=vendor))


async def test_factory_picks_the_configured_provider(fake: FakeLLMServer) -> None:
    for vendor, cls in [("openai", OpenAIProvider), ("anthropic", AnthropicProvider)]:
        provider = provider_for(vendor, fake)
        assert isinstance(provider, cls)
        await provider.aclose()
    assert isinstance(make_provider(LLMConfig(provider="client")), ClientSamplingProvider)


def test_importing_pgmcp_does_not_import_vendor_sdks() -> None:
    code = (
        "import sys, pgmcp, pgmcp.llm, pgmcp.ask.prompt\n"
        "loaded = [m for m in ('openai', 'anthropic', 'mcp') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the `client` provider, through a real MCP client -------------------------------------

def sampling_server() -> MCPServer:
    server = MCPServer("pgmcp-sampling-test")

    @server.tool()
    async def generate(question: str, ctx: Context) -> str:
        provider = make_provider(LLMConfig(provider="client", max_tokens=99))
        prompt = Prompt("Answer with SQL.", (Message("user", question),))
        try:
            with use_sampler(context_sampler(ctx)):
                completion = await provider.complete(prompt)
        except LLMError as exc:
            raise ToolError(f"{exc.code}: {exc}") from exc
        return f"{completion.model}|{extract_sql(completion.text)}"

    return server


async def test_client_provider_samples_the_connected_clients_model() -> None:
    seen: list[types.CreateMessageRequestParams] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        seen.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="```sql\nSELECT 7;\n```"),
            model="host-model",
        )

    async with Client(sampling_server(), mode="legacy", sampling_callback=sampling) as client:
        result = await client.call_tool("generate", {"question": "seven?"})
    assert not result.is_error
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text == "host-model|SELECT 7"
    [params] = seen
    assert params.system_prompt == "Answer with SQL."
    assert params.max_tokens == 99
    assert [(m.role, m.content.text) for m in params.messages] == [("user", "seven?")]  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_client_without_sampling_gets_a_clear_error(mode: str) -> None:
    async with Client(sampling_server(), mode=mode) as client:
        result = await client.call_tool("generate", {"question": "seven?"})
    assert result.is_error
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text.endswith(
        "llm_unavailable: the connected MCP client does not support sampling; "
        "configure llm.provider openai or anthropic"
    )


async def test_connection_without_back_channel_gets_a_clear_error() -> None:
    # Protocol 2026-07-28 (the SDK's in-process default) has no server-to-client request
    # during a tool call, even when the client can sample.
    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        raise AssertionError("not reached")

    async with Client(sampling_server(), sampling_callback=sampling) as client:
        result = await client.call_tool("generate", {"question": "seven?"})
    assert result.is_error
    assert isinstance(result.content[0], types.TextContent)
    assert "cannot send a sampling request during a tool call" in result.content[0].text
    assert "configure llm.provider openai or anthropic" in result.content[0].text


async def test_client_provider_without_a_sampler_is_unavailable() -> None:
    with pytest.raises(LLMUnavailable, match=r"configure llm\.provider openai or anthropic"):
        await ClientSamplingProvider(LLMConfig()).complete(PROMPT)


async def test_client_provider_times_out() -> None:
    import asyncio

    async def never(system: str, messages: list[tuple[str, str]], max_tokens: int) -> tuple[str, str | None]:
        await asyncio.sleep(30)
        return "", None

    with pytest.raises(LLMUnavailable, match=r"within 0\.05s"):
        await ClientSamplingProvider(LLMConfig(timeout=0.05), never).complete(PROMPT)
