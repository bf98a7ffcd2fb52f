"""Follow-up email against a real SMTP server: what arrives, and what each server answer means for the follow-up."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from core.channels import OutgoingEmail
from core.channels.email import ChannelNotConfigured, SmtpMailer, build_message
from core.config import Settings
from tests.support.smtp_server import SmtpServer

SENDER = "Harborline Sales <sales@leadops.example>"
LEAD = "dana.whitfield@harborlinefreight.example"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A local SMTP server without STARTTLS or AUTH."""
    with SmtpServer() as server:
        yield server


def smtp_settings(server: SmtpServer, **overrides: Any) -> Settings:
    """Settings pointing at the local server; nothing read from the environment."""
    values: dict[str, Any] = {"smtp_host": server.host, "smtp_port": server.port, "smtp_starttls": False,
                              "mail_from": SENDER}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def follow_up(number: int = 1, **overrides: Any) -> OutgoingEmail:
    """A believable follow-up email."""
    values: dict[str, Any] = {
        "to": LEAD,
        "subject": f"Your shipment tracking portal: next steps ({number})",
        "text": "Hi Dana,\n\nThanks for the details on the tracking portal.\n\nUnsubscribe: https://leadops.example/u/t1\n",
        "html": "<p>Hi Dana,</p><p>Thanks for the details.</p><p><a href=\"https://leadops.example/u/t1\">Unsubscribe"
                "</a></p>",
        "message_id": f"<01HZFOLLOWUP{number:05d}@leadops.example>",
        "unsubscribe_url": f"https://leadops.example/u/t{number}",
        "headers": {"X-LeadOps-Follow-Up": f"01HZFOLLOWUP{number:05d}"},
    }
    values.update(overrides)
    return OutgoingEmail(**values)


def test_a_follow_up_arrives_as_text_and_html_with_one_click_unsubscribe_and_its_message_id(smtp: SmtpServer) -> None:
    long_url = "https://leadops.example/u/" + "k" * 140  # longer than a header line: must not be folded or encoded
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcome = mailer.send(follow_up(7, unsubscribe_url=long_url))

    assert outcome.kind == "sent" and outcome.code == 250
    delivery = smtp.deliveries[0]
    assert outcome.provider_id == delivery.queue_id
    assert delivery.mail_from == "sales@leadops.example" and delivery.rcpt_tos == [LEAD]
    message = delivery.message
    assert message.get_content_type() == "multipart/alternative"
    assert "Thanks for the details on the tracking portal." in message.get_body(("plain",)).get_content()
    assert "<p>Hi Dana,</p>" in message.get_body(("html",)).get_content()
    assert message["From"] == SENDER and message["To"] == LEAD and message["Date"]
    assert message["Subject"] == "Your shipment tracking portal: next steps (7)"
    assert message["X-LeadOps-Follow-Up"] == "01HZFOLLOWUP00007"
    assert b"\r\nMessage-ID: <01HZFOLLOWUP00007@leadops.example>\r\n" in delivery.raw
    assert f"\r\nList-Unsubscribe: <{long_url}>\r\n".encode() in delivery.raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in delivery.raw


def test_non_ascii_subject_text_and_address_arrive_intact(smtp: SmtpServer) -> None:
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        accented = mailer.send(follow_up(subject="Olá Dana — próximos passos", text="Até já, João\n",
                                         html="<p>Até já</p>"))
        international = mailer.send(follow_up(to="joão@exemplo.example"))

    assert accented.kind == "sent" and international.kind == "sent"
    first, second = smtp.deliveries
    assert first.message["Subject"] == "Olá Dana — próximos passos"
    assert first.message.get_body(("plain",)).get_content().rstrip() == "Até já, João"
    assert first.raw.isascii()  # quoted-printable and encoded words: fine for servers without 8BITMIME
    assert second.rcpt_tos == ["joão@exemplo.example"] and "SMTPUTF8" in second.mail_options
    assert second.message["To"] == "joão@exemplo.example"


def test_greylisting_is_a_retry_and_the_next_message_goes_through_on_the_same_connection(smtp: SmtpServer) -> None:
    smtp.script_rcpt(LEAD, [451])
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        deferred = mailer.send(follow_up(1))
        accepted = mailer.send(follow_up(2))

    assert deferred.kind == "retry" and deferred.code == 451 and "Greylisted" in deferred.detail
    assert accepted.kind == "sent"
    assert [d.message["Message-ID"] for d in smtp.deliveries] == ["<01HZFOLLOWUP00002@leadops.example>"]
    assert smtp.connections == 1


def test_an_unknown_mailbox_bounces_with_the_server_text(smtp: SmtpServer) -> None:
    smtp.refuse_rcpt(LEAD, 550)
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcome = mailer.send(follow_up())
        after = mailer.send(follow_up(2, to="ops@harborlinefreight.example"))

    assert outcome.kind == "bounced" and outcome.code == 550 and "5.1.1 No such user" in outcome.detail
    assert after.kind == "sent" and smtp.connections == 1
    assert [d.rcpt_tos for d in smtp.deliveries] == [["ops@harborlinefreight.example"]]


@pytest.mark.parametrize(("answer", "kind"), [
    (452, "retry"),
    (550, "bounced"),
    ((550, "Requested action not taken: mailbox unavailable"), "bounced"),
    ((554, "5.7.1 Message rejected as spam"), "failed"),  # the content, not the address: keep the address
])
def test_the_reply_to_the_message_data_decides_the_outcome(smtp: SmtpServer, answer: Any, kind: str) -> None:
    smtp.script_data([answer])
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcome = mailer.send(follow_up(1))
        after = mailer.send(follow_up(2))

    code = answer[0] if isinstance(answer, tuple) else answer
    assert outcome.kind == kind and outcome.code == code
    assert after.kind == "sent" and smtp.connections == 1
    assert len(smtp.deliveries) == 1


def test_a_partial_recipient_refusal_is_not_a_send_and_nobody_gets_the_message(smtp: SmtpServer) -> None:
    smtp.refuse_rcpt("gone@harborlinefreight.example", 550)
    smtp.script_rcpt("busy@harborlinefreight.example", [451])
    message = build_message(follow_up(), mail_from=SENDER)
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        # Follow-ups go to one address; two recipients exercise the refused-recipient path a server can produce.
        bounced = mailer._deliver(message, [LEAD, "gone@harborlinefreight.example"])
        deferred = mailer._deliver(message, [LEAD, "busy@harborlinefreight.example"])
        both = mailer._deliver(message, ["busy@harborlinefreight.example", LEAD])

    assert bounced.kind == "bounced" and bounced.code == 550 and "gone@harborlinefreight.example" in bounced.detail
    assert deferred.kind == "retry" and deferred.code == 451
    assert both.kind == "sent"
    assert [d.rcpt_tos for d in smtp.deliveries] == [["busy@harborlinefreight.example", LEAD]]


def test_a_refused_sender_stops_the_pass_without_blaming_the_lead(smtp: SmtpServer) -> None:
    smtp.script_mail([(553, "5.7.1 Sender address rejected: not owned by user"), 451])
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        refused = mailer.send(follow_up(1))
        deferred = mailer.send(follow_up(2))
        accepted = mailer.send(follow_up(3))

    assert refused.kind == "unreachable" and refused.code == 553 and "not owned by user" in refused.detail
    assert deferred.kind == "retry" and deferred.code == 451
    assert accepted.kind == "sent" and smtp.connections == 1


def test_one_connection_carries_many_messages(smtp: SmtpServer) -> None:
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcomes = [mailer.send(follow_up(n)) for n in range(50)]

    assert {o.kind for o in outcomes} == {"sent"}
    assert smtp.connections == 1
    assert [m["Message-ID"] for m in smtp.messages] == [f"<01HZFOLLOWUP{n:05d}@leadops.example>" for n in range(50)]


def test_throughput_is_at_least_a_hundred_messages_a_second(smtp: SmtpServer) -> None:
    emails = [follow_up(n) for n in range(200)]
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        started = time.perf_counter()
        outcomes = [mailer.send(email) for email in emails]
        elapsed = time.perf_counter() - started

    assert {o.kind for o in outcomes} == {"sent"} and len(smtp.deliveries) == 200
    assert 200 / elapsed >= 100, f"{200 / elapsed:.0f} messages/s"


def test_a_connection_the_server_dropped_while_idle_is_replaced_once(smtp: SmtpServer) -> None:
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        first = mailer.send(follow_up(1))
        smtp.drop_connections()
        second = mailer.send(follow_up(2))

    assert first.kind == second.kind == "sent"
    assert smtp.connections == 2 and len(smtp.deliveries) == 2


def test_a_421_on_a_kept_connection_reconnects_but_on_a_fresh_one_stops_the_pass(smtp: SmtpServer) -> None:
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        assert mailer.send(follow_up(1)).kind == "sent"
        smtp.script_mail([421])  # e.g. the idle timeout's goodbye, read when the next command goes out
        assert mailer.send(follow_up(2)).kind == "sent"
        assert smtp.connections == 2

    smtp.script_mail([421, 421])
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        refused = mailer.send(follow_up(3))
    assert refused.kind == "unreachable" and refused.code == 421
    assert len(smtp.deliveries) == 2


def test_a_server_that_is_down_is_unreachable_at_once_and_used_again_when_back(smtp: SmtpServer) -> None:
    with SmtpMailer(smtp_settings(smtp), timeout_s=5) as mailer:
        assert mailer.send(follow_up(1)).kind == "sent"
        smtp.stop()
        started = time.perf_counter()
        down = mailer.send(follow_up(2))
        elapsed = time.perf_counter() - started
        smtp.start()
        back = mailer.send(follow_up(3))

    assert down.kind == "unreachable" and str(smtp.port) in down.detail
    assert elapsed < 1.0
    assert back.kind == "sent"
    assert [m["Message-ID"] for m in smtp.messages] == ["<01HZFOLLOWUP00001@leadops.example>",
                                                        "<01HZFOLLOWUP00003@leadops.example>"]


def test_a_server_that_never_answers_is_unreachable_within_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts the connection; no greeting ever comes
        settings = Settings(_env_file=None, smtp_host="127.0.0.1", smtp_port=silent.getsockname()[1],  # type: ignore[call-arg]
                            smtp_starttls=False, mail_from=SENDER)
        started = time.perf_counter()
        with SmtpMailer(settings, timeout_s=0.3) as mailer:
            outcome = mailer.send(follow_up())
        elapsed = time.perf_counter() - started

    assert outcome.kind == "unreachable" and "timed out" in outcome.detail
    assert elapsed < 1.5


def test_starttls_required_but_not_offered_is_unreachable_and_nothing_goes_out_in_clear(smtp: SmtpServer) -> None:
    with SmtpMailer(smtp_settings(smtp, smtp_starttls=True)) as mailer:
        outcome = mailer.send(follow_up())

    assert outcome.kind == "unreachable" and "does not offer STARTTLS" in outcome.detail
    assert smtp.deliveries == []


def test_starttls_then_login_sends_and_a_wrong_password_or_untrusted_certificate_is_unreachable() -> None:
    with SmtpServer(tls=True, users={"sales@leadops.example": "correct horse"}) as server:
        login = {"smtp_starttls": True, "smtp_username": "sales@leadops.example"}
        with SmtpMailer(smtp_settings(server, smtp_password="correct horse", **login),
                        tls_context=server.client_tls_context) as mailer:
            sent = mailer.send(follow_up(1))
        with SmtpMailer(smtp_settings(server, smtp_password="wrong", **login),
                        tls_context=server.client_tls_context) as mailer:
            refused = mailer.send(follow_up(2))
        with SmtpMailer(smtp_settings(server, smtp_password="correct horse", **login)) as mailer:
            untrusted = mailer.send(follow_up(3))  # the system CAs do not know the test certificate

        assert sent.kind == "sent"
        assert refused.kind == "unreachable" and refused.code == 535 and "sales@leadops.example" in refused.detail
        assert "wrong" not in refused.detail
        assert untrusted.kind == "unreachable" and "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
        assert [m["Message-ID"] for m in server.messages] == ["<01HZFOLLOWUP00001@leadops.example>"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"subject": "Hello\r\nBcc: everyone@example.com"}, "subject"),
    ({"to": "dana@example.com\nBcc: everyone@example.com"}, "to"),
    ({"to": "dana@example.com, everyone@example.com"}, "to"),
    ({"message_id": "<id@leadops.example>\r\nBcc: everyone@example.com"}, "message_id"),
    ({"unsubscribe_url": "https://leadops.example/u/t>\r\nBcc: x@example.com"}, "unsubscribe_url"),
    ({"headers": {"X-LeadOps-Follow-Up": "1\r\nBcc: everyone@example.com"}}, "X-LeadOps-Follow-Up"),
    ({"headers": {"Bcc": "everyone@example.com"}}, "Bcc"),
])
def test_header_injection_is_refused_naming_the_field(smtp: SmtpServer, overrides: dict[str, Any],
                                                      field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build_message(follow_up(**overrides), mail_from=SENDER)
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcome = mailer.send(follow_up(**overrides))
    assert outcome.kind == "failed" and field in outcome.detail
    assert smtp.deliveries == [] and smtp.connections == 0


def test_build_message_refuses_a_bad_sender_and_keeps_the_message_id_exact() -> None:
    with pytest.raises(ValueError, match="mail_from"):
        build_message(follow_up(), mail_from="LeadOps <sales@leadops.example>\r\nBcc: x@example.com")
    message = build_message(follow_up(3), mail_from=SENDER)
    assert b"\r\nMessage-ID: <01HZFOLLOWUP00003@leadops.example>\r\n" in message.as_bytes()


@pytest.mark.parametrize(("overrides", "missing"), [
    ({"smtp_host": None}, "SMTP_HOST"),
    ({"mail_from": None}, "MAIL_FROM"),
    ({"mail_from": "not an address"}, "MAIL_FROM"),
])
def test_without_a_host_or_sender_the_mailer_is_not_configured(smtp: SmtpServer, overrides: dict[str, Any],
                                                               missing: str) -> None:
    with pytest.raises(ChannelNotConfigured, match=missing) as raised:
        SmtpMailer(smtp_settings(smtp, **overrides))
    assert missing in raised.value.reason


# -- internal mail: inline images, no unsubscribe headers (the founders' digest) ---------------------------------

def tiny_png(colour: tuple[int, int, int]) -> bytes:
    """A real 2x2 PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_email_with_images_arrives_as_text_and_html_with_its_images_inline(smtp: SmtpServer) -> None:
    red, blue = tiny_png((255, 0, 0)), tiny_png((0, 0, 255))
    email = follow_up(
        to="founder@leadops.example", unsubscribe_url=None, headers={},
        html='<p>This week</p><img src="cid:leads.r1@leadops" alt="leads"><img src="cid:sources.r1@leadops">',
        images={"leads.r1@leadops": red, "sources.r1@leadops": blue})
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcome = mailer.send(email)

    assert outcome.kind == "sent"
    message = smtp.messages[0]
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related" and related.get_param("type") == "text/html"
    html, *images = related.get_payload()
    assert html.get_content_type() == "text/html" and "cid:leads.r1@leadops" in html.get_content()
    assert [(i.get_content_type(), i["Content-ID"], i.get_content_disposition()) for i in images] == [
        ("image/png", "<leads.r1@leadops>", "inline"), ("image/png", "<sources.r1@leadops>", "inline")]
    assert [i.get_content() for i in images] == [red, blue]
    assert message.get_body(("html",)) is html and message.get_body(("plain",)) is text


def test_without_an_unsubscribe_url_there_are_no_list_unsubscribe_headers(smtp: SmtpServer) -> None:
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcome = mailer.send(follow_up(unsubscribe_url=None))

    assert outcome.kind == "sent"
    assert b"List-Unsubscribe" not in smtp.deliveries[0].raw
    message = smtp.messages[0]
    assert message.get_content_type() == "multipart/alternative"  # no images: the follow-up shape, unchanged
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]


@pytest.mark.parametrize(("images", "problem"), [
    ({"chart@leadops": b"GIF89a not a png"}, "not a PNG"),
    ({"chart@leadops>\r\nBcc: x@example.com": tiny_png((0, 0, 0))}, "images"),
    ({"two words@leadops": tiny_png((0, 0, 0))}, "images"),
])
def test_an_image_that_is_not_a_png_or_has_a_bad_content_id_is_refused(smtp: SmtpServer, images: dict[str, bytes],
                                                                       problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build_message(follow_up(images=images), mail_from=SENDER)
    with SmtpMailer(smtp_settings(smtp)) as mailer:
        outcome = mailer.send(follow_up(images=images))
    assert outcome.kind == "failed" and smtp.deliveries == []
