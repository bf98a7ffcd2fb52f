"""Structured calls to Gemini with a deadline, retries on passing faults, and a usage record per attempt."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache, partial
from typing import Generic, TypeVar

import httpx
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, ValidationError

from core.analysis.base import AiCall
from core.config import Settings

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)
T = TypeVar("T")

# USD per million tokens (input, output); unknown models are priced like gemini-2.5-flash.
PRICES_PER_MILLION: dict[str, tuple[Decimal, Decimal]] = {
    "gemini-2.5-flash": (Decimal("0.075"), Decimal("0.30")),
    "gemini-2.5-flash-lite": (Decimal("0.05"), Decimal("0.20")),
    "gemini-2.5-pro": (Decimal("1.25"), Decimal("10.00")),
}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 3
# Model calls in flight at once in this process, abandoned ones included (see _ModelCalls).
MAX_CALLS_IN_FLIGHT = 32


class AiUnavailable(Exception):
    """The model gave no usable answer; `kind` says why (timeout, http_429, blocked, malformed_json, ...)."""

    def __init__(self, kind: str, message: str, calls: list[AiCall]):
        self.kind = kind
        self.calls = calls
        super().__init__(f"{kind}: {message}")


@dataclass
class AiAnswer(Generic[Model]):
    """A validated structured answer and the calls it took."""

    value: Model
    model: str
    calls: list[AiCall] = field(default_factory=list)


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    """The estimated price of one call in US dollars."""
    price_in, price_out = PRICES_PER_MILLION.get(model, PRICES_PER_MILLION["gemini-2.5-flash"])
    return ((price_in * input_tokens + price_out * output_tokens) / Decimal(1_000_000)).quantize(Decimal("0.000001"))


@lru_cache(maxsize=4)
def _client(api_key: str, base_url: str | None) -> genai.Client:
    options = types.HttpOptions(base_url=base_url) if base_url else None
    return genai.Client(api_key=api_key, http_options=options)


def client_for(settings: Settings) -> genai.Client:
    """A shared client for the configured key and endpoint."""
    assert settings.gemini_api_key is not None, "client_for needs GEMINI_API_KEY"
    return _client(settings.gemini_api_key.get_secret_value(), settings.gemini_base_url)


class _ModelCalls:
    """Runs blocking model calls on daemon threads, a bounded number at once, waiting for each only until told.

    The HTTP client's timeout is per read: a server that sends its answer slowly, piece by piece, can hold a call
    long past GEMINI_TIMEOUT_S. The caller stops waiting at its deadline instead; the call it gave up on ends on its
    own thread when the connection does, never blocking the process's exit, and the slots cap how many can linger.
    """

    def __init__(self, size: int):
        self.size = size
        self._slots = threading.BoundedSemaphore(size)

    def run(self, call: Callable[[], T], *, timeout: float) -> T:
        """What `call()` returns or raises; TimeoutError when it has not finished within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=timeout):
            raise TimeoutError(f"no answer within {timeout:.1f} s: all {self.size} model-call slots stayed busy")
        outcome: Future[T] = Future()

        def work() -> None:
            try:
                outcome.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, which classifies it
                outcome.set_exception(exc)
            finally:
                self._slots.release()

        threading.Thread(target=work, name="gemini-call", daemon=True).start()
        try:
            return outcome.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise TimeoutError(f"no complete answer within {timeout:.1f} s") from None


@lru_cache(maxsize=1)
def _model_calls() -> _ModelCalls:
    return _ModelCalls(MAX_CALLS_IN_FLIGHT)


def generate_structured(settings: Settings, *, purpose: str, system: str, prompt: str, schema: type[Model],
                        max_output_tokens: int = 2048) -> AiAnswer[Model]:
    """Asks the model for JSON matching `schema`, within GEMINI_TIMEOUT_S overall; raises AiUnavailable."""
    model = settings.gemini_model
    deadline = time.monotonic() + settings.gemini_timeout_s
    calls: list[AiCall] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        remaining = deadline - time.monotonic()
        if remaining < 0.2:
            raise AiUnavailable("timeout", f"no time left after {attempt - 1} attempt(s)", calls)
        started = time.monotonic()
        request = partial(
            client_for(settings).models.generate_content, model=model, contents=prompt,
            config=types.GenerateContentConfig(
                system_instruction=system, response_mime_type="application/json", response_schema=schema,
                temperature=0.2, max_output_tokens=max_output_tokens,
                http_options=types.HttpOptions(timeout=int(remaining * 1000)),
            ),
        )
        try:
            # A wall-clock limit on top of the client's per-read timeout: every attempt ends by the deadline.
            response = _model_calls().run(request, timeout=remaining)
        except Exception as exc:  # noqa: BLE001 - every failure is classified below, none escapes
            kind, retry = _classify(exc)
            calls.append(_call(purpose, model, started, None, kind, str(exc)))
            if retry and attempt < MAX_ATTEMPTS and _backoff(attempt, deadline):
                continue
            raise AiUnavailable(kind, str(exc)[:300], calls) from exc
        try:
            value = _validated(response, schema)
        except AiUnavailable as exc:
            calls.append(_call(purpose, model, started, response, exc.kind, str(exc)))
            exc.calls = calls
            raise
        calls.append(_call(purpose, model, started, response, "ok", None))
        return AiAnswer(value=value, model=response.model_version or model, calls=calls)
    raise AssertionError("unreachable")


def _classify(exc: Exception) -> tuple[str, bool]:
    """A short name for a failure and whether trying again may help."""
    if isinstance(exc, genai_errors.APIError):
        return f"http_{exc.code}", exc.code in RETRY_STATUSES
    if isinstance(exc, TimeoutError):  # the deadline passed while the answer was still arriving
        return "timeout", True
    # google-genai uses httpx2, or httpx when GOOGLE_GENAI_HTTP_CLIENT=httpx: two separate exception trees.
    if isinstance(exc, httpx2.TimeoutException | httpx.TimeoutException):
        return "timeout", True
    if isinstance(exc, httpx2.TransportError | httpx.TransportError):
        return "network", True
    if isinstance(exc, json.JSONDecodeError | ValueError):
        return "malformed_response", False
    return "error", False


def _backoff(attempt: int, deadline: float) -> bool:
    """Sleeps before the next attempt; False when that would pass the deadline."""
    delay = min(0.5 * 2 ** (attempt - 1), 4.0) * (0.5 + random.random())
    if time.monotonic() + delay + 0.2 >= deadline:
        return False
    time.sleep(delay)
    return True


def _validated(response: types.GenerateContentResponse, schema: type[Model]) -> Model:
    """The answer checked by us: `.parsed` is silently None on bad JSON, so the text is validated here."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        raise AiUnavailable("blocked", f"prompt blocked: {feedback.block_reason}", [])
    candidate = (response.candidates or [None])[0]
    if candidate is None:
        raise AiUnavailable("empty", "no candidate in the answer", [])
    reason = str(candidate.finish_reason or "STOP").rsplit(".", 1)[-1]
    if reason == "MAX_TOKENS":
        raise AiUnavailable("truncated", "the answer was cut off at the token limit", [])
    if reason not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        raise AiUnavailable("blocked", f"generation stopped: {reason}", [])
    text = response.text or ""
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        kind = "malformed_json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "schema_mismatch"
        raise AiUnavailable(kind, str(exc).splitlines()[0][:300], []) from exc


def _call(purpose: str, model: str, started: float, response: types.GenerateContentResponse | None, outcome: str,
          error: str | None) -> AiCall:
    usage = response.usage_metadata if response is not None else None
    tokens_in = (usage.prompt_token_count or 0) if usage else 0
    tokens_out = (usage.candidates_token_count or 0) if usage else 0
    return AiCall(purpose=purpose, model=model, input_tokens=tokens_in, output_tokens=tokens_out,
                  latency_ms=int((time.monotonic() - started) * 1000),
                  cost_usd=estimate_cost(model, tokens_in, tokens_out), outcome=outcome,
                  error=error[:500] if error else None)
