"""Proves GeminiServer is faithful to the Gemini REST protocol as seen by the real google-genai client."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from tests.support.gemini_server import GeminiServer, Reply

MODEL = "gemini-2.5-flash"


class Lead(BaseModel):
    name: str
    score: int


@pytest.fixture(autouse=True)
def _default_http_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # The exception types asserted below belong to the default backend (httpx2).
    monkeypatch.delenv("GOOGLE_GENAI_HTTP_CLIENT", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)


@pytest.fixture
def gemini_server():
    with GeminiServer() as server:
        yield server


def make_client(server_url: str, timeout_ms: int = 5_000, **http_kw) -> genai.Client:
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(base_url=server_url, timeout=timeout_ms, **http_kw),
    )


@pytest.fixture
def client(gemini_server: GeminiServer) -> genai.Client:
    return make_client(gemini_server.url)


def json_config(**kw) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(response_mime_type="application/json", **kw)


# --- success path -------------------------------------------------------------------------------


def test_good_json_answer_with_pydantic_schema(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(GeminiServer.json_reply({"name": "Acme", "score": 87}, prompt_tokens=321, output_tokens=45))

    response = client.models.generate_content(
        model=MODEL,
        contents="Qualify this lead",
        config=json_config(response_schema=Lead, system_instruction="You are a lead scorer."),
    )

    assert json.loads(response.text) == {"name": "Acme", "score": 87}
    assert isinstance(response.parsed, Lead)
    assert response.parsed == Lead(name="Acme", score=87)
    assert response.usage_metadata.prompt_token_count == 321
    assert response.usage_metadata.candidates_token_count == 45
    assert response.usage_metadata.total_token_count == 366
    assert response.model_version == "gemini-test-001"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP

    assert len(gemini_server.requests) == 1
    req = gemini_server.requests[0]
    assert req["method"] == "POST"
    assert req["path"] == f"/v1/models/{MODEL}:generateContent"
    assert req["headers"]["x-goog-api-key"] == "test-key"
    body = req["json"]
    assert body["contents"] == [{"parts": [{"text": "Qualify this lead"}], "role": "user"}]
    assert body["systemInstruction"]["parts"] == [{"text": "You are a lead scorer."}]
    gen = body["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    schema = gen["responseSchema"]
    assert schema["type"] == "OBJECT"
    assert set(schema["properties"]) == {"name", "score"}
    assert schema["properties"]["score"]["type"] == "INTEGER"
    assert set(schema["required"]) == {"name", "score"}
    assert gemini_server.pending == 0


def test_response_json_schema_is_sent_verbatim(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(GeminiServer.json_reply({"name": "Beta", "score": 3}))

    response = client.models.generate_content(
        model=MODEL, contents="x", config=json_config(response_json_schema=Lead.model_json_schema())
    )

    assert response.parsed == {"name": "Beta", "score": 3}
    gen = gemini_server.requests[0]["json"]["generationConfig"]
    assert gen["responseJsonSchema"] == Lead.model_json_schema()
    assert "responseSchema" not in gen


def test_v1beta_path_and_models_prefix_are_accepted(gemini_server: GeminiServer):
    gemini_server.queue(Reply(text="hello"))
    client = make_client(gemini_server.url, api_version="v1beta")

    response = client.models.generate_content(model=f"models/{MODEL}", contents="hi")

    assert response.text == "hello"
    assert gemini_server.requests[0]["path"] == f"/v1beta/models/{MODEL}:generateContent"


def test_queue_order_then_default(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(Reply(text="first"), Reply(text="second"))
    gemini_server.default = Reply(text="fallback")

    texts = [client.models.generate_content(model=MODEL, contents="x").text for _ in range(4)]

    assert texts == ["first", "second", "fallback", "fallback"]
    assert len(gemini_server.requests) == 4


def test_async_client_works_too(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(Reply(text="async hello"))

    async def call():
        return await client.aio.models.generate_content(model=MODEL, contents="x")

    assert asyncio.run(call()).text == "async hello"


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc_type", "status_name"),
    [
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
def test_error_statuses(gemini_server: GeminiServer, client: genai.Client, status, exc_type, status_name):
    gemini_server.queue(Reply(status=status))

    with pytest.raises(exc_type) as excinfo:
        client.models.generate_content(model=MODEL, contents="x")

    assert excinfo.value.code == status
    assert excinfo.value.status == status_name
    assert excinfo.value.message
    # No implicit retries: exactly one request hit the server.
    assert len(gemini_server.requests) == 1


def test_empty_queue_without_default_is_a_500(gemini_server: GeminiServer, client: genai.Client):
    with pytest.raises(errors.ServerError) as excinfo:
        client.models.generate_content(model=MODEL, contents="x")
    assert excinfo.value.code == 500


def test_raw_non_json_bodies(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(Reply(raw_body=b"<html>oops</html>"), Reply(status=502, raw_body=b"Bad gateway"))

    with pytest.raises(json.JSONDecodeError):
        client.models.generate_content(model=MODEL, contents="x")
    with pytest.raises(errors.ServerError) as excinfo:
        client.models.generate_content(model=MODEL, contents="x")
    assert excinfo.value.code == 502


def test_delayed_reply_beyond_client_timeout_raises_httpx2_read_timeout(gemini_server: GeminiServer):
    gemini_server.queue(Reply(text="too late", delay_s=2.0))
    client = make_client(gemini_server.url, timeout_ms=300)

    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout) as excinfo:
        client.models.generate_content(model=MODEL, contents="x")

    assert time.monotonic() - started < 1.5
    assert isinstance(excinfo.value, httpx2.TimeoutException)
    # httpx2 is a separate namespace: catching httpx.TimeoutException would NOT work.
    assert not isinstance(excinfo.value, httpx.TimeoutException)
    assert not isinstance(excinfo.value, errors.APIError)


def test_async_timeout_is_also_httpx2_read_timeout(gemini_server: GeminiServer):
    gemini_server.queue(Reply(text="too late", delay_s=2.0))
    client = make_client(gemini_server.url, timeout_ms=300)

    async def call():
        return await client.aio.models.generate_content(model=MODEL, contents="x")

    with pytest.raises(httpx2.ReadTimeout):
        asyncio.run(call())


def test_connection_refused_raises_httpx2_connect_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", timeout_ms=2_000)

    with pytest.raises(httpx2.ConnectError):
        client.models.generate_content(model=MODEL, contents="x")


def test_delayed_reply_does_not_block_other_requests(gemini_server: GeminiServer):
    gemini_server.queue(Reply(text="slow", delay_s=1.5), Reply(text="fast"))
    slow_client = make_client(gemini_server.url, timeout_ms=10_000)
    fast_client = make_client(gemini_server.url, timeout_ms=10_000)
    results: dict[str, str] = {}

    slow = threading.Thread(
        target=lambda: results.__setitem__("slow", slow_client.models.generate_content(model=MODEL, contents="a").text)
    )
    slow.start()
    deadline = time.monotonic() + 5
    while len(gemini_server.requests) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # make sure the slow request took the first queued reply

    started = time.monotonic()
    assert fast_client.models.generate_content(model=MODEL, contents="b").text == "fast"
    assert time.monotonic() - started < 1.0
    assert "slow" not in results

    slow.join(timeout=5)
    assert results["slow"] == "slow"


@pytest.mark.parametrize("reply", [Reply(text="never", delay_s=30),
                                   Reply(text="never finished", drip_s=60, drip_pieces=4)],
                         ids=["sleeping", "dripping"])
def test_shutdown_does_not_hang_on_a_slow_handler(reply: Reply):
    server = GeminiServer().start()
    server.queue(reply)
    client = make_client(server.url, timeout_ms=200)
    with pytest.raises(httpx2.ReadTimeout):
        client.models.generate_content(model=MODEL, contents="x")

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0


def test_dripped_reply_outlasts_a_per_read_timeout(gemini_server: GeminiServer):
    # Eight pieces 0.4 s apart: no single read waits 1 s, so the client's 1 s timeout never fires.
    gemini_server.queue(GeminiServer.json_reply({"name": "Acme", "score": 87}, drip_s=3.2, drip_pieces=8))
    client = make_client(gemini_server.url, timeout_ms=1_000)

    started = time.monotonic()
    response = client.models.generate_content(model=MODEL, contents="x", config=json_config(response_schema=Lead))
    elapsed = time.monotonic() - started

    assert response.parsed == Lead(name="Acme", score=87), "the pieces add up to the whole answer"
    assert elapsed >= 3.0, f"the answer should take as long as its dripping, took {elapsed:.1f}s"


def test_dripped_reply_slower_than_the_read_timeout_raises_read_timeout(gemini_server: GeminiServer):
    gemini_server.queue(Reply(text="slow pieces", drip_s=4.0, drip_pieces=2))  # 2 s between pieces
    client = make_client(gemini_server.url, timeout_ms=500)

    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        client.models.generate_content(model=MODEL, contents="x")

    assert time.monotonic() - started < 1.9  # the 0.5 s read timeout fired, not the next piece 2 s later


# --- safety / truncation / malformed model output ----------------------------------------------


def test_safety_block_is_visible(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(Reply(block_reason="SAFETY"))

    response = client.models.generate_content(model=MODEL, contents="x", config=json_config(response_schema=Lead))

    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert not response.candidates
    assert response.text is None
    assert response.parsed is None


def test_max_tokens_truncation_is_visible(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(Reply(text='{"name": "Acme", "sco', finish_reason="MAX_TOKENS"))

    response = client.models.generate_content(model=MODEL, contents="x", config=json_config(response_schema=Lead))

    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.text == '{"name": "Acme", "sco'
    assert response.parsed is None


def test_invalid_json_text_gives_raw_text_and_no_parsed(gemini_server: GeminiServer, client: genai.Client):
    gemini_server.queue(Reply(text="Sure! Here is the JSON: {name: Acme"))

    response = client.models.generate_content(model=MODEL, contents="x", config=json_config(response_schema=Lead))

    assert response.text == "Sure! Here is the JSON: {name: Acme"
    assert response.parsed is None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
