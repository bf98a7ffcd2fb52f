"""SMS and WhatsApp follow-ups against a local server speaking Twilio's Messages API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.channels.email import ChannelNotConfigured
from core.channels.twilio import TwilioSender
from core.config import Settings
from tests.support.twilio_server import Reply, TwilioServer

SID = "AC" + "5" * 32
TOKEN = "twilio-test-token"
SMS_FROM = "+13125550100"
WHATSAPP_FROM = "+14155238886"
LEAD_PHONE = "+13125550148"


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    """A local Twilio Messages API for the test account."""
    with TwilioServer(account_sid=SID, auth_token=TOKEN) as server:
        yield server


def twilio_settings(server: TwilioServer, **overrides: Any) -> Settings:
    """Settings pointing at the local server; nothing read from the environment."""
    values: dict[str, Any] = {"twilio_account_sid": SID, "twilio_auth_token": TOKEN, "twilio_from": SMS_FROM,
                              "twilio_whatsapp_from": WHATSAPP_FROM, "twilio_base_url": server.url}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_an_sms_is_posted_with_the_number_body_and_account_credentials(twilio: TwilioServer) -> None:
    with TwilioSender(twilio_settings(twilio)) as sender:
        outcome = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi Dana, shall we book the portal demo?")

    assert outcome.kind == "sent" and outcome.code == 201
    assert outcome.provider_id == twilio.sids[0] and outcome.provider_id.startswith("SM")
    request = twilio.requests[0]
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request["authorized"] is True
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {"To": LEAD_PHONE, "From": SMS_FROM, "Body": "Hi Dana, shall we book the portal demo?"}


@pytest.mark.parametrize("configured_from", [WHATSAPP_FROM, f"whatsapp:{WHATSAPP_FROM}"])
def test_a_whatsapp_message_uses_whatsapp_addresses_on_both_ends(twilio: TwilioServer, configured_from: str) -> None:
    with TwilioSender(twilio_settings(twilio, twilio_whatsapp_from=configured_from)) as sender:
        outcome = sender.send(channel="WHATSAPP", to=LEAD_PHONE, body="Olá Dana 👋")
        again = sender.send(channel="WHATSAPP", to=f"whatsapp:{LEAD_PHONE}", body="Second")

    assert outcome.kind == again.kind == "sent"
    assert [r["form"]["To"] for r in twilio.requests] == [f"whatsapp:{LEAD_PHONE}"] * 2
    assert [r["form"]["From"] for r in twilio.requests] == [f"whatsapp:{WHATSAPP_FROM}"] * 2
    assert twilio.requests[0]["form"]["Body"] == "Olá Dana 👋"


@pytest.mark.parametrize("reply", [
    Reply(status=429, headers={"Retry-After": "30"}),
    Reply(status=500),
    Reply(status=503, raw_body=b"<html><body>Service Unavailable</body></html>"),
])
def test_rate_limits_and_server_errors_are_retries(twilio: TwilioServer, reply: Reply) -> None:
    twilio.queue(reply)
    with TwilioSender(twilio_settings(twilio)) as sender:
        outcome = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi")
        after = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi again")

    assert outcome.kind == "retry" and outcome.code == reply.status
    assert after.kind == "sent"
    if reply.status == 429:
        assert "20429" in outcome.detail and "retry after 30s" in outcome.detail


@pytest.mark.parametrize(("code", "kind"), [
    (21211, "bounced"),  # invalid 'To' number
    (21614, "bounced"),  # not a mobile number
    (21610, "bounced"),  # the lead texted STOP
    (21408, "failed"),  # the region is not enabled on our account: the number may be fine
])
def test_a_bad_number_bounces_and_other_refusals_fail_with_twilios_reason(twilio: TwilioServer, code: int,
                                                                        kind: str) -> None:
    twilio.queue(Reply(status=400, code=code))
    with TwilioSender(twilio_settings(twilio)) as sender:
        outcome = sender.send(channel="SMS", to="+1555", body="Hi")

    assert outcome.kind == kind and outcome.code == 400
    assert str(code) in outcome.detail
    assert outcome.provider_id is None


def test_wrong_credentials_are_unreachable(twilio: TwilioServer) -> None:
    with TwilioSender(twilio_settings(twilio, twilio_auth_token="not-the-token")) as sender:
        outcome = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi")

    assert outcome.kind == "unreachable" and outcome.code == 401 and "20003" in outcome.detail
    assert twilio.requests[0]["authorized"] is False
    assert "not-the-token" not in outcome.detail


def test_a_reply_that_is_not_a_message_resource_is_not_taken_as_sent(twilio: TwilioServer) -> None:
    twilio.queue(Reply(status=200, raw_body=b"<html>Welcome to our proxy</html>"))
    with TwilioSender(twilio_settings(twilio)) as sender:
        outcome = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi")

    assert outcome.kind == "unreachable" and "sid" in outcome.detail


def test_a_server_that_is_down_or_too_slow_is_unreachable_within_the_timeout(twilio: TwilioServer) -> None:
    twilio.queue(Reply(delay_s=2))
    with TwilioSender(twilio_settings(twilio), timeout_s=0.2) as sender:
        started = time.perf_counter()
        slow = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi")
        elapsed = time.perf_counter() - started
        twilio.stop()
        down = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi")

    assert slow.kind == "unreachable" and "did not answer within 0.2s" in slow.detail
    assert elapsed < 1.5
    assert down.kind == "unreachable" and "could not be reached" in down.detail


@pytest.mark.parametrize(("overrides", "missing"), [
    ({"twilio_account_sid": None}, "TWILIO_ACCOUNT_SID"),
    ({"twilio_auth_token": None}, "TWILIO_AUTH_TOKEN"),
    ({"twilio_from": None, "twilio_whatsapp_from": None}, "TWILIO_FROM"),
])
def test_without_credentials_or_any_sender_number_twilio_is_not_configured(twilio: TwilioServer,
                                                                          overrides: dict[str, Any],
                                                                          missing: str) -> None:
    with pytest.raises(ChannelNotConfigured, match=missing):
        TwilioSender(twilio_settings(twilio, **overrides))


def test_a_channel_without_its_sender_number_is_not_configured_and_nothing_is_posted(twilio: TwilioServer) -> None:
    with TwilioSender(twilio_settings(twilio, twilio_whatsapp_from=None)) as sender:
        with pytest.raises(ChannelNotConfigured, match="TWILIO_WHATSAPP_FROM") as raised:
            sender.send(channel="WHATSAPP", to=LEAD_PHONE, body="Hi")
        sms = sender.send(channel="SMS", to=LEAD_PHONE, body="Hi")

    assert "WhatsApp" in raised.value.reason
    assert sms.kind == "sent" and len(twilio.requests) == 1
