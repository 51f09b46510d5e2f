"""A fake LLM vendor on 127.0.0.1 that speaks OpenAI's and Anthropic's HTTP APIs.

The real `openai` and `anthropic` SDK clients point their `base_url` here, so the code under
test runs exactly as in production down to the HTTP request. Tests script the answers
(`FakeLLMServer.script(...)`: text, malformed JSON, an HTTP error status, a slow answer) and
read back every request (`.requests`: path, headers, JSON body) to assert on prompts and
on how the API key was sent.

- OpenAI:    POST {url}/v1/chat/completions   (base_url = server.openai_url)
- Anthropic: POST {url}/v1/messages           (base_url = server.anthropic_url)
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

ReplyKind = Literal["text", "malformed", "status", "slow"]


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    text: str = "SELECT 1"
    status: int = 200
    delay: float = 0.0
    input_tokens: int = 11
    output_tokens: int = 7
    model: str = "fake-model-1"


def text(answer: str, *, input_tokens: int = 11, output_tokens: int = 7) -> Reply:
    return Reply("text", text=answer, input_tokens=input_tokens, output_tokens=output_tokens)


def malformed() -> Reply:
    return Reply("malformed")


def status(code: int) -> Reply:
    return Reply("status", status=code)


def slow(seconds: float, answer: str = "SELECT 1") -> Reply:
    return Reply("slow", text=answer, delay=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON


@dataclass
class FakeLLMServer:
    """Start with `start()` (or use as a context manager); answers from the script in order,
    then `default` for every further request."""

    default: Reply = field(default_factory=lambda: text("SELECT 1"))
    requests: list[RecordedRequest] = field(default_factory=list)
    _script: deque[Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> FakeLLMServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        # shutdown() waits for the loop to look at its flag, which it does every poll_interval
        # (0.5 s by default: half a second per fixture teardown).
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases slow handlers at once
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else self.default


def _openai_body(reply: Reply) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": reply.model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        },
    }


def _anthropic_body(reply: Reply) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def _error_body(vendor: str, code: int, key: str) -> dict[str, Any]:
    # Real vendors echo (part of) a rejected key; the fake echoes all of it so that tests
    # prove pgmcp's messages never pass it on.
    message = f"Incorrect API key provided: {key}" if code == 401 else f"fake error {code}"
    if vendor == "anthropic":
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(code, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": str(code)}}


def _make_handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            if path.endswith("/chat/completions"):
                vendor = "openai"
            elif path.endswith("/messages"):
                vendor = "anthropic"
            else:
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            reply = server._next(RecordedRequest(path, headers, body))
            if reply.kind == "slow" and server._stopping.wait(reply.delay):
                return
            if reply.kind == "malformed":
                self._send(200, b'{"id": "x", "choices": [ {"message": ')
            elif reply.kind == "status":
                key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
                self._send(reply.status, json.dumps(_error_body(vendor, reply.status, key)).encode())
            else:
                answer = _openai_body(reply) if vendor == "openai" else _anthropic_body(reply)
                self._send(200, json.dumps(answer).encode())

        def _send(self, code: int, payload: bytes) -> None:
            try:
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                # Both SDKs honour retry-after-ms: retries happen at once, not after backoff.
                self.send_header("retry-after-ms", "1")
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

    return Handler
