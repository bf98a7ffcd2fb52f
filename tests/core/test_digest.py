"""The founders' digest against a real SMTP server, on SQLite and PostgreSQL: who gets it, what arrives, and once."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import Engine, select

from core import digest, users
from core.config import Settings
from core.errors import ValidationFailed
from db.models import AuditEvent, InsightPeriod, InsightReport, Role, User, WorkflowLog
from db.session import session_scope
from tests.support.factories import make_user
from tests.support.smtp_server import SmtpServer

SENDER = "LeadOps Reports <reports@leadops.example>"
BASE_URL = "https://leadops.example"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # the Monday after the reported week
FLAGGED = "Revenue grew by 900% thanks to the new pricing page."
KEPT = "HIGH-priority leads rose from 3 to 5 while new leads held at 12."
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def mail_settings(make_settings: Callable[..., Settings], smtp: SmtpServer) -> Settings:
    """Settings for this test's database whose mail goes to the local SMTP server."""
    return make_settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_starttls=False, mail_from=SENDER,
                         leadops_base_url=BASE_URL, leadops_timezone="Europe/Lisbon")


def statement(text: str, *facts: str, flagged: bool = False) -> dict[str, Any]:
    return {"text": text, "facts": list(facts), "flagged": flagged, "unverified_numbers": ["900"] if flagged else []}


def weekly_facts() -> dict[str, Any]:
    """Facts in the report engine's format for the week of 16-22 November 2026."""
    kpi = {"current": 0, "previous": 0, "change": 0}
    return {
        "period": {"kind": "WEEKLY", "start": "2026-11-16", "end": "2026-11-23", "label": "16–22 Nov 2026",
                   "timezone": "Europe/Lisbon"},
        "previous_period": {"kind": "WEEKLY", "start": "2026-11-09", "end": "2026-11-16", "label": "9–15 Nov 2026",
                            "timezone": "Europe/Lisbon"},
        "kpis": {
            "new_leads": {"current": 12, "previous": 12, "change": 0},
            "high_leads": {"current": 5, "previous": 3, "change": 2},
            "high_share_pct": {"current": 41.7, "previous": 25.0, "change": 16.7},
            "average_score": {"current": 63.2, "previous": 58.0, "change": 5.2},
            "contacted_within_24h_pct": {"current": 75.0, "previous": 83.3, "change": -8.3},
            "won": {"current": 2, "previous": 1, "change": 1},
            "lost": {"current": 1, "previous": 2, "change": -1},
            "conversion_to_won_pct": {"current": 16.7, "previous": 8.3, "change": 8.4},
            "followups_sent": {"current": 30, "previous": 24, "change": 6},
            "followups_failed": {"current": 2, "previous": 0, "change": 2},
            "calls_done": dict(kpi),
        },
        "priority_distribution": {"HIGH": 5, "MEDIUM": 4, "LOW": 3},
        "status_distribution": {"NEW": 4, "CONTACTED": 5, "WON": 2, "LOST": 1},
        "leads_by_day": [{"day": f"2026-11-{d}", "HIGH": d % 2, "MEDIUM": d % 3 and 1, "LOW": 1 if d == 20 else 0}
                         for d in range(16, 23)],
        "by_source": [{"source": "website", "leads": 7, "high": 3, "won": 1, "conversion_pct": 14.3},
                      {"source": "referral", "leads": 4, "high": 2, "won": 1, "conversion_pct": 25.0},
                      {"source": "api", "leads": 1, "high": 0, "won": 0, "conversion_pct": 0.0}],
        "response_times": [{"bucket": "< 1 h", "leads": 6}, {"bucket": "not yet", "leads": 2}],
        "top_opportunities": [{"name": "Dana Whitfield", "company": "Harborline Freight", "score": 91,
                               "priority": "HIGH", "budget": "$80k-$120k", "status": "PROPOSAL_SENT",
                               "age_days": 4}],
        "followups": {"by_channel": [{"channel": "EMAIL", "sent": 28, "failed": 2, "bounced": 1}]},
        "workflow": {},
    }


def narrative(**extra: list[dict[str, Any]]) -> dict[str, Any]:
    sections = {
        "executive_summary": [statement(KEPT, "kpis.high_leads", "kpis.new_leads"),
                              statement(FLAGGED, flagged=True)],
        "key_findings": [statement("Referral leads converted best, at 25.0%.", "by_source")],
        "recommendations": [statement("Call Dana Whitfield at Harborline Freight this week.", "top_opportunities")],
        "risk_alerts": [statement("Two follow-ups failed to send.", "kpis.followups_failed")],
        "opportunities": [],
    }
    for key, statements in extra.items():
        sections[key] = sections[key] + statements
    return {"engine": "gemini", "sections": sections}


def make_report(engine: Engine, **fields: Any) -> str:
    """A READY weekly report for 16-22 November 2026 (Lisbon is on UTC in winter)."""
    values: dict[str, Any] = {
        "period": InsightPeriod.WEEKLY, "period_start": datetime(2026, 11, 16, tzinfo=UTC),
        "period_end": datetime(2026, 11, 23, tzinfo=UTC), "timezone": "Europe/Lisbon", "status": "READY",
        "facts": weekly_facts(), "narrative": narrative(), "engine": "gemini", "generated_at": NOW,
    }
    values.update(fields)
    with session_scope(engine) as session:
        report = InsightReport(**values)
        session.add(report)
        session.flush()
        return report.id


def opted_in(engine: Engine, username: str, role: Role, email: str | None) -> None:
    """A user who asked for the digest (through the service when it allows it, directly otherwise)."""
    with session_scope(engine) as session:
        user = make_user(session, username=username, role=role, email=email)
        if digest.may_receive(role) and email:
            users.set_digest_opt_in(session=session, user_id=user.id, opt_in=True, actor="test")
        else:
            user.digest_opt_in = True  # what the service refuses: the digest must still skip them


@pytest.fixture
def people(engine: Engine, fast_bcrypt: None) -> list[str]:
    """Three users who should get the digest, and five who must not; the addresses that should get it."""
    opted_in(engine, "ada", Role.ADMIN, "ada@leadops.example")
    opted_in(engine, "max", Role.MANAGER, "max@leadops.example")
    opted_in(engine, "vic", Role.VIEWER, "vic@leadops.example")
    opted_in(engine, "sam", Role.STAFF, "sam@leadops.example")  # staff: never
    opted_in(engine, "nomail", Role.VIEWER, None)  # nowhere to send it
    opted_in(engine, "gone", Role.VIEWER, "gone@leadops.example")
    with session_scope(engine) as session:
        make_user(session, username="olga", role=Role.VIEWER, email="olga@leadops.example")  # did not opt in
        gone = users.get_by_username(session=session, username="gone")
        assert gone is not None
        users.set_disabled(session=session, user_id=gone.id, disabled=True, actor="test")
    return ["ada@leadops.example", "max@leadops.example", "vic@leadops.example"]


def report_row(engine: Engine, report_id: str) -> InsightReport:
    with session_scope(engine) as session:
        report = session.get(InsightReport, report_id)
        assert report is not None
        return report


def digest_log(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        rows = session.execute(select(WorkflowLog.outcome, WorkflowLog.detail).where(WorkflowLog.kind == "digest")
                               .order_by(WorkflowLog.created_at, WorkflowLog.id)).all()
    return [(outcome, detail) for outcome, detail in rows]


def inline_images(message: EmailMessage) -> dict[str, bytes]:
    """Content id (without brackets) -> the decoded bytes of each image part."""
    return {part["Content-ID"].strip("<>"): part.get_content() for part in message.walk()
            if part.get_content_maintype() == "image"}


def test_the_digest_arrives_for_each_opted_in_user_with_text_html_and_its_charts(
        engine: Engine, mail_settings: Settings, smtp: SmtpServer, people: list[str]) -> None:
    report_id = make_report(engine)

    summary = digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW)

    assert (summary.recipients, summary.sent, summary.failed, summary.reason) == (3, 3, 0, None)
    assert summary.line() == f"digest {report_id}: sent to 3 of 3 recipients, 0 failed"
    assert sorted(address for d in smtp.deliveries for address in d.rcpt_tos) == sorted(people)
    assert smtp.connections == 1  # one connection, one message per recipient
    for delivery in smtp.deliveries:
        message = delivery.message
        assert message["To"] == delivery.rcpt_tos[0] and message["From"] == SENDER
        assert message["Subject"] == "Our agency: weekly report, 16–22 Nov 2026"
        assert message["X-LeadOps-Digest"] == report_id
        assert message["List-Unsubscribe"] is None  # internal mail: the account page turns it off
        assert message.get_content_type() == "multipart/alternative"
        text_part, related = message.get_payload()
        assert text_part.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()

        images = inline_images(message)
        assert len(images) == 2  # new leads by day, leads and won by source
        for content_id, png in images.items():
            assert f'src="cid:{content_id}"' in html
            assert png.startswith(PNG) and len(png) < 60_000
            with Image.open(io.BytesIO(png)) as image:
                image.verify()
                assert image.format == "PNG" and image.size == (600, 300)

        for part in (html, text):
            assert KEPT in part and "Call Dana Whitfield at Harborline Freight this week." in part
            assert FLAGGED not in part and "900" not in part  # a flagged statement never reaches a founder
            assert f"{BASE_URL}/insights" in part and f"{BASE_URL}/account" in part
            assert "Harborline Freight" in part and "Proposal sent" in part
        assert "Risk alerts" in html and "Opportunities</h2>" not in html  # an empty section is left out
        assert "+2" in text and "+16.7 pts" in text  # HIGH leads 3 -> 5, HIGH share 25.0% -> 41.7%

    assert report_row(engine, report_id).digest_sent_at == NOW
    log = digest_log(engine)
    assert [outcome for outcome, _ in log] == ["sent"] * 3
    assert sorted(detail.split(":")[0] for _, detail in log) == ["to ada", "to max", "to vic"]


def test_a_second_send_does_nothing_unless_forced(engine: Engine, mail_settings: Settings, smtp: SmtpServer,
                                                  people: list[str]) -> None:
    report_id = make_report(engine)
    digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW)

    again = digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW + timedelta(hours=1))
    pending = digest.send_pending(engine=engine, settings=mail_settings, now=NOW + timedelta(hours=1))

    assert again.sent == 0 and again.reason and "already sent" in again.reason
    assert pending == []
    assert len(smtp.deliveries) == 3 and report_row(engine, report_id).digest_sent_at == NOW

    forced = digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW + timedelta(days=1),
                         force=True)
    assert forced.sent == 3 and len(smtp.deliveries) == 6
    first, resent = smtp.deliveries[0].message["Message-ID"], smtp.deliveries[3].message["Message-ID"]
    assert first != resent  # a receiver that drops repeated ids must not drop the resend
    assert report_row(engine, report_id).digest_sent_at == NOW + timedelta(days=1)


def test_without_smtp_nothing_is_sent_and_the_summary_says_why(engine: Engine, make_settings: Callable[..., Settings],
                                                               smtp: SmtpServer, people: list[str]) -> None:
    report_id = make_report(engine)

    summary = digest.send(engine=engine, settings=make_settings(leadops_base_url=BASE_URL), report_id=report_id,
                          now=NOW)

    assert summary.sent == 0 and summary.reason
    assert "SMTP_HOST" in summary.reason and "MAIL_FROM" in summary.reason
    assert "SMTP_HOST" in summary.line()
    assert smtp.deliveries == [] and smtp.connections == 0
    assert report_row(engine, report_id).digest_sent_at is None and digest_log(engine) == []


def test_narrative_text_and_lead_names_arrive_escaped_in_the_html(engine: Engine, mail_settings: Settings,
                                                                  smtp: SmtpServer, people: list[str]) -> None:
    attack = 'Great week <script>alert("x")</script> & <img src=x onerror=alert(1)>'
    facts = weekly_facts()
    facts["top_opportunities"][0]["name"] = "<b>Dana</b>"
    report_id = make_report(engine, facts=facts, narrative=narrative(key_findings=[statement(attack)]))

    digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW)

    message = smtp.deliveries[0].message
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "<img src=x" not in html and "<b>Dana</b>" not in html
    assert "Great week &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img src=x" in html
    assert "&lt;b&gt;Dana&lt;/b&gt;" in html
    assert attack in message.get_body(("plain",)).get_content()  # the text part shows it as written


def test_a_refused_recipient_is_logged_and_the_others_still_get_it(engine: Engine, mail_settings: Settings,
                                                                   smtp: SmtpServer, people: list[str]) -> None:
    smtp.refuse_rcpt("max@leadops.example", 550)
    report_id = make_report(engine)

    summary = digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW)

    assert (summary.sent, summary.failed) == (2, 1)
    assert sorted(d.rcpt_tos[0] for d in smtp.deliveries) == ["ada@leadops.example", "vic@leadops.example"]
    log = dict((detail.split(":")[0], outcome) for outcome, detail in digest_log(engine))
    assert log == {"to ada": "sent", "to max": "failed", "to vic": "sent"}
    assert report_row(engine, report_id).digest_sent_at == NOW


def test_a_server_that_is_down_sends_nothing_and_a_later_pass_sends_it(engine: Engine, mail_settings: Settings,
                                                                       smtp: SmtpServer, people: list[str]) -> None:
    report_id = make_report(engine)
    smtp.stop()

    down = digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW)

    assert (down.sent, down.failed) == (0, 1) and "2 recipients not tried" in down.line()
    assert report_row(engine, report_id).digest_sent_at is None
    assert [outcome for outcome, _ in digest_log(engine)] == ["failed"]

    smtp.start()
    later = digest.send_pending(engine=engine, settings=mail_settings, now=NOW + timedelta(hours=1))
    assert [s.sent for s in later] == [3] and len(smtp.deliveries) == 3
    assert report_row(engine, report_id).digest_sent_at == NOW + timedelta(hours=1)


def test_a_report_that_is_not_ready_or_old_is_not_sent(engine: Engine, mail_settings: Settings, smtp: SmtpServer,
                                                        people: list[str]) -> None:
    generating = make_report(engine, status="GENERATING")
    make_report(engine, period_start=datetime(2026, 10, 5, tzinfo=UTC), period_end=datetime(2026, 10, 12, tzinfo=UTC))

    summary = digest.send(engine=engine, settings=mail_settings, report_id=generating, now=NOW)
    pending = digest.send_pending(engine=engine, settings=mail_settings, now=NOW)

    assert summary.reason == "the report is GENERATING, not READY"
    assert pending == []  # October's report is too old to be mailed now
    assert smtp.deliveries == []


def test_with_nobody_opted_in_nothing_is_sent(engine: Engine, mail_settings: Settings, smtp: SmtpServer,
                                              fast_bcrypt: None) -> None:
    report_id = make_report(engine)

    summary = digest.send(engine=engine, settings=mail_settings, report_id=report_id, now=NOW)

    assert summary.reason and "opted in" in summary.reason and smtp.connections == 0


def test_opting_in_is_audited_and_refused_for_staff_or_without_an_email(engine: Engine, fast_bcrypt: None) -> None:
    with session_scope(engine) as session:
        viewer = make_user(session, username="vic", role=Role.VIEWER, email="vic@leadops.example")
        staff = make_user(session, username="sam", role=Role.STAFF, email="sam@leadops.example")
        nomail = make_user(session, username="nomail", role=Role.MANAGER)
        users.set_digest_opt_in(session=session, user_id=viewer.id, opt_in=True, actor="user:vic")
        for user in (staff, nomail):
            with pytest.raises(ValidationFailed) as refused:
                users.set_digest_opt_in(session=session, user_id=user.id, opt_in=True, actor="user:x")
            assert [e.field for e in refused.value.errors] == ["digest_opt_in"]
        users.set_digest_opt_in(session=session, user_id=staff.id, opt_in=False, actor="user:sam")  # no change

    with session_scope(engine) as session:
        assert session.scalar(select(User.digest_opt_in).where(User.username == "vic")) is True
        assert session.scalar(select(User.digest_opt_in).where(User.username == "sam")) is False
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("user.digest%"))).all()
        assert actions == ["user.digest_opted_in"]
