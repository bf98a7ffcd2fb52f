"""SMS and WhatsApp follow-ups through Twilio's Messages API, each request turned into a SendOutcome."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from core.channels import SendOutcome
from core.channels.email import ChannelNotConfigured
from core.config import Settings

__all__ = ["TWILIO_API", "TextChannel", "TwilioSender", "not_configured_reason"]

TWILIO_API = "https://api.twilio.com"
TextChannel = Literal["SMS", "WHATSAPP"]

# Twilio error codes that say the number itself cannot take our messages: invalid (21211, 21217), not able to take
# SMS (21407, 21614), not a WhatsApp recipient (63024), or the person texted STOP (21610). Never contact it again.
_BAD_NUMBER_CODES = frozenset({21211, 21217, 21407, 21610, 21614, 63024})
_MAX_TEXT = 300


def not_configured_reason(settings: Settings, channel: TextChannel) -> str | None:
    """Why this channel cannot send with these settings, or None when it can."""
    sender = settings.twilio_from if channel == "SMS" else settings.twilio_whatsapp_from
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    missing = [name for name, value in (
        ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid), ("TWILIO_AUTH_TOKEN", token),
        ("TWILIO_FROM" if channel == "SMS" else "TWILIO_WHATSAPP_FROM", sender)) if not (value or "").strip()]
    if missing:
        label = "SMS" if channel == "SMS" else "WhatsApp"
        return f"{' and '.join(missing)} not set: {label} follow-ups cannot be sent"
    return None


class TwilioSender:
    """Posts messages to Twilio over one HTTP client kept for the pass."""

    def __init__(self, settings: Settings, *, timeout_s: float = 10.0) -> None:
        sid = (settings.twilio_account_sid or "").strip()
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        missing = [name for name, value in (("TWILIO_ACCOUNT_SID", sid), ("TWILIO_AUTH_TOKEN", token)) if not value]
        if missing:
            raise ChannelNotConfigured(f"{' and '.join(missing)} not set: SMS and WhatsApp follow-ups cannot be sent")
        self._reasons: dict[str, str | None] = {channel: not_configured_reason(settings, channel)
                                                for channel in ("SMS", "WHATSAPP")}
        if all(self._reasons.values()):
            raise ChannelNotConfigured("TWILIO_FROM and TWILIO_WHATSAPP_FROM not set: "
                                       "SMS and WhatsApp follow-ups cannot be sent")
        self._senders: dict[str, str] = {
            "SMS": (settings.twilio_from or "").strip(),
            "WHATSAPP": _whatsapp((settings.twilio_whatsapp_from or "").strip()),
        }
        base = (settings.twilio_base_url or TWILIO_API).rstrip("/")
        self._url = f"{base}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"
        try:
            httpx.URL(self._url)
        except httpx.InvalidURL as exc:
            raise ChannelNotConfigured(f"TWILIO_BASE_URL is not a usable URL: {exc}") from exc
        self._timeout_s = timeout_s
        self._client = httpx.Client(auth=(sid, token), timeout=timeout_s, headers={"Accept": "application/json"})

    def __enter__(self) -> TwilioSender:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def send(self, *, channel: TextChannel, to: str, body: str) -> SendOutcome:
        """Send one text; raises ChannelNotConfigured when this channel has no sender number."""
        if channel not in self._senders:
            raise ValueError(f"channel: {channel!r} is not SMS or WHATSAPP")
        reason = self._reasons[channel]
        if reason:
            raise ChannelNotConfigured(reason)
        recipient = _whatsapp(to.strip()) if channel == "WHATSAPP" else to.strip()
        form = {"To": recipient, "From": self._senders[channel], "Body": body}
        try:
            response = self._client.post(self._url, data=form)
        except httpx.TimeoutException as exc:
            # Twilio may still have taken the message; the pass stops and a later one decides.
            detail = f"Twilio did not answer within {self._timeout_s:g}s ({type(exc).__name__})"
            return SendOutcome("unreachable", detail)
        except httpx.HTTPError as exc:
            return SendOutcome("unreachable", f"Twilio could not be reached: {type(exc).__name__}: {exc}")
        return _outcome(response)


def _outcome(response: httpx.Response) -> SendOutcome:
    """What Twilio's answer means for this message."""
    status = response.status_code
    payload = _json(response)
    if 200 <= status < 300:
        sid = payload.get("sid")
        if isinstance(sid, str) and sid:
            return SendOutcome("sent", str(payload.get("status") or "accepted"), provider_id=sid[:100], code=status)
        # Not a message resource: TWILIO_BASE_URL points at something that is not Twilio.
        return SendOutcome("unreachable", f"HTTP {status} without a message sid: not Twilio's Messages API?",
                           code=status)
    twilio_code = payload.get("code") if isinstance(payload.get("code"), int) else None
    message = str(payload.get("message") or response.text or response.reason_phrase)
    detail = f"Twilio HTTP {status}" + (f" error {twilio_code}" if twilio_code else "") + f": {_short(message)}"
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After")
        return SendOutcome("retry", detail + (f" (retry after {retry_after}s)" if retry_after else ""), code=status)
    if status in (401, 403, 404) or status < 400:
        # Credentials, the account in the URL, or the base URL are wrong: true of every message, stop the pass.
        return SendOutcome("unreachable", detail, code=status)
    if twilio_code in _BAD_NUMBER_CODES:
        return SendOutcome("bounced", detail, code=status)
    return SendOutcome("failed", detail, code=status)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _whatsapp(number: str) -> str:
    if not number or number.startswith("whatsapp:"):
        return number
    return f"whatsapp:{number}"


def _short(text: str) -> str:
    return " ".join(text.split())[:_MAX_TEXT]
