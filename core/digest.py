"""The founders' digest: a ready insight report emailed, with its key charts inline, to the users who opted in."""

from __future__ import annotations

import logging
import time as clock
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from core import app_settings, insights
from core.channels import OutgoingEmail, SendOutcome
from core.channels.email import SmtpMailer, not_configured_reason
from core.config import Settings
from core.errors import NotFound
from db.models import InsightPeriod, InsightReport, Role, User, WorkflowLog, utcnow
from db.session import session_scope

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
RECIPIENT_ROLES = frozenset({Role.VIEWER, Role.MANAGER, Role.ADMIN})
# send_pending retries a digest that could not go out (SMTP down, not configured yet) for this long after its period.
PENDING_FOR = timedelta(days=3)
MAX_OPPORTUNITIES = 5
# name, label, unit, whether a rise is good news
KPIS = (
    ("new_leads", "New leads", "count", True),
    ("high_leads", "HIGH-priority leads", "count", True),
    ("high_share_pct", "HIGH share", "pct", True),
    ("average_score", "Average score", "score", True),
    ("contacted_within_24h_pct", "Contacted within 24 h", "pct", True),
    ("won", "Won", "count", True),
    ("lost", "Lost", "count", False),
    ("conversion_to_won_pct", "Conversion to won", "pct", True),
    ("followups_sent", "Follow-ups sent", "count", True),
    ("followups_failed", "Follow-ups failed", "count", False),
    ("calls_done", "Calls made", "count", True),
)
GOOD, BAD, NEUTRAL = "#1a7f37", "#cf222e", "#59636e"
PRIORITY_COLOURS = {"HIGH": "#d62728", "MEDIUM": "#bc4c00", "LOW": "#59636e"}


def may_receive(role: Role | str) -> bool:
    """True when users of this role may get the digest (viewers, managers and admins; not staff)."""
    return Role(role) in RECIPIENT_ROLES


@dataclass
class DigestSummary:
    """What one send did, or why it sent nothing."""

    report_id: str
    recipients: int = 0
    sent: int = 0
    failed: int = 0
    reason: str | None = None  # why nothing was sent, when nothing was tried
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary a job prints."""
        if self.reason:
            return f"digest {self.report_id}: nothing sent ({self.reason})"
        text = f"digest {self.report_id}: sent to {self.sent} of {self.recipients} recipients, {self.failed} failed"
        return f"{text} ({'; '.join(self.notes)})" if self.notes else text


@dataclass(frozen=True)
class RenderedDigest:
    """The email every recipient gets: subject, text and HTML parts, and the PNG charts the HTML shows by cid."""

    subject: str
    text: str
    html: str
    images: dict[str, bytes]


@dataclass(frozen=True)
class _Recipient:
    user_id: str
    username: str
    email: str


def recipients(*, session: Session) -> list[User]:
    """The users who get the digest: opted in, with an email address, active, viewer, manager or admin."""
    return list(session.scalars(
        select(User).where(User.digest_opt_in.is_(True), User.disabled.is_(False), User.email.is_not(None),
                           User.email != "", User.role.in_(RECIPIENT_ROLES))
        .order_by(User.username)))


def send(*, engine: Engine, settings: Settings, report_id: str, now: datetime | None = None,
         force: bool = False) -> DigestSummary:
    """Emails a ready report to every recipient over one SMTP connection; once per report unless `force`."""
    moment = now or utcnow()
    summary = DigestSummary(report_id=report_id)
    with session_scope(engine) as session:
        report = session.get(InsightReport, report_id)
        if report is None:
            raise NotFound(f"no insight report with id {report_id}")
        people = [_Recipient(u.id, u.username, u.email or "") for u in recipients(session=session)]
        business_name = app_settings.get_profile(session=session).business_name
    summary.reason = _why_not(report, settings, people, force)
    if summary.reason:
        return summary
    rendered = render(report=report, settings=settings, business_name=business_name)
    # Reserving the report first makes two passes (two jobs processes, the job and a button) send it once: at most
    # once, because a pass that dies mid-way leaves it reserved rather than mailing everyone again.
    if not _reserve(engine, report_id, moment, force):
        summary.reason = "another pass has sent it or is sending it"
        return summary
    summary.recipients = len(people)
    try:
        _send_all(settings, rendered, report_id, people, engine, moment if force else None, summary)
    finally:
        # digest_sent_at says "at least one recipient got it"; otherwise it goes back to what it was.
        _settle(engine, report_id, moment if summary.sent else report.digest_sent_at)
    return summary


def send_pending(*, engine: Engine, settings: Settings, now: datetime | None = None) -> list[DigestSummary]:
    """Sends the digests of recent ready reports that have not gone out yet (e.g. SMTP was down when made)."""
    moment = now or utcnow()
    with session_scope(engine) as session:
        pending = session.scalars(
            select(InsightReport.id).where(InsightReport.status == insights.READY,
                                           InsightReport.digest_sent_at.is_(None),
                                           InsightReport.period_end >= moment - PENDING_FOR)
            .order_by(InsightReport.period_end, InsightReport.id)).all()
    return [send(engine=engine, settings=settings, report_id=report_id, now=moment) for report_id in pending]


def render(*, report: InsightReport, settings: Settings, business_name: str) -> RenderedDigest:
    """The digest of one report: HTML (escaped, charts by cid), plain text, and the chart images."""
    from core import report_charts  # late: matplotlib loads only in the process that sends digests

    charts = report_charts.key_charts(report.facts or {})
    cids = {chart.key: f"{chart.key}.{report.id.lower()}@leadops" for chart in charts}
    context = _context(report, settings, business_name)
    context["charts"] = [{"cid": cids[c.key], "title": c.title, "alt": c.alt, "width": c.width, "height": c.height}
                         for c in charts]
    environment = _environment()
    return RenderedDigest(subject=context["subject"], text=environment.get_template("digest.txt").render(context),
                          html=environment.get_template("digest.html").render(context),
                          images={cids[c.key]: c.png for c in charts})


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # Autoescape for everything but the .txt part: narrative sentences can come from the AI, names from a lead.
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True,
                       autoescape=lambda name: not (name or "").endswith(".txt"))


def _why_not(report: InsightReport, settings: Settings, people: list[_Recipient], force: bool) -> str | None:
    """Why this digest must not go out now, or None."""
    if report.status != insights.READY:
        return f"the report is {report.status}, not READY"
    if report.digest_sent_at is not None and not force:
        return f"already sent at {report.digest_sent_at:%Y-%m-%d %H:%M} UTC"
    problem = not_configured_reason(settings)
    if problem:
        return f"email is not configured: {problem}"
    if not people:
        return "no recipients: no viewer, manager or admin with an email address has opted in on My account"
    return None


def _reserve(engine: Engine, report_id: str, moment: datetime, force: bool) -> bool:
    with session_scope(engine) as session:
        stmt = update(InsightReport).where(InsightReport.id == report_id, InsightReport.status == insights.READY)
        if not force:
            stmt = stmt.where(InsightReport.digest_sent_at.is_(None))
        reserved = session.execute(stmt.values(digest_sent_at=moment)
                                   .execution_options(synchronize_session=False)).rowcount
    return reserved == 1


def _settle(engine: Engine, report_id: str, sent_at: datetime | None) -> None:
    with session_scope(engine) as session:
        session.execute(update(InsightReport).where(InsightReport.id == report_id).values(digest_sent_at=sent_at)
                        .execution_options(synchronize_session=False))


def _send_all(settings: Settings, rendered: RenderedDigest, report_id: str, people: list[_Recipient],
              engine: Engine, resent_at: datetime | None, summary: DigestSummary) -> None:
    """One message per recipient over one connection; stops when the server cannot be reached."""
    with SmtpMailer(settings) as mailer:
        for index, person in enumerate(people):
            started = clock.monotonic()
            outcome = mailer.send(OutgoingEmail(
                to=person.email, subject=rendered.subject, text=rendered.text, html=rendered.html,
                message_id=_message_id(report_id, person.user_id, settings.mail_from, resent_at),
                unsubscribe_url=None, images=rendered.images,
                headers={"X-LeadOps-Digest": report_id, "Auto-Submitted": "auto-generated"}))
            _log(engine, report_id, person, outcome, int((clock.monotonic() - started) * 1000))
            if outcome.kind == "sent":
                summary.sent += 1
                continue
            summary.failed += 1
            if outcome.kind == "unreachable":
                untried = len(people) - index - 1
                summary.notes.append(f"{outcome.detail}" + (f"; {untried} recipients not tried" if untried else ""))
                break


def _message_id(report_id: str, user_id: str, mail_from: str | None, resent_at: datetime | None) -> str:
    # The same id for the same report and person, so a receiver drops an accidental repeat; a forced resend is new.
    domain = (mail_from or "").rpartition("@")[2].strip(" >") or "leadops.local"
    suffix = f".{int(resent_at.timestamp())}" if resent_at else ""
    return f"<digest.{report_id.lower()}.{user_id.lower()}{suffix}@{domain}>"


def _log(engine: Engine, report_id: str, person: _Recipient, outcome: SendOutcome, elapsed_ms: int) -> None:
    """One WorkflowLog row per attempt, in its own transaction: the log survives a pass that stops half-way."""
    server = f"{outcome.code} {outcome.detail}".strip() if outcome.code else outcome.detail
    if outcome.kind == "sent":
        detail = f"to {person.username}: {server or 'accepted'}"
    else:
        detail = f"to {person.username}: {outcome.kind}: {server}"
    with session_scope(engine) as session:
        session.add(WorkflowLog(kind="digest", subject_id=report_id, channel="EMAIL",
                                outcome="sent" if outcome.kind == "sent" else "failed", detail=detail[:1000],
                                duration_ms=elapsed_ms))


# --- what the email says -------------------------------------------------------------------------------------------

def _context(report: InsightReport, settings: Settings, business_name: str) -> dict[str, Any]:
    facts, narrative = report.facts or {}, report.narrative or {}
    kind = "Weekly" if report.period == InsightPeriod.WEEKLY else "Monthly"
    period_label = _one_line((facts.get("period") or {}).get("label")) or _span(report.period_start,
                                                                               report.period_end, report.timezone)
    previous_label = _one_line((facts.get("previous_period") or {}).get("label")) or "the period before"
    base_url = settings.leadops_base_url.rstrip("/")
    return {
        "subject": _one_line(f"{business_name}: {kind.lower()} report, {period_label}"),
        "business_name": business_name, "kind": kind, "period_label": period_label,
        "previous_label": previous_label, "timezone": report.timezone,
        "kpis": _kpi_rows(facts.get("kpis") or {}),
        "sections": _sections(narrative.get("sections") or {}),
        "opportunities": _opportunities(facts.get("top_opportunities") or []),
        "engine_note": ("Written by Gemini from the report's facts; sentences whose numbers could not be checked "
                        "against them are left out." if narrative.get("engine") == "gemini"
                        else "Written by LeadOps's built-in rules from the report's facts."),
        "report_url": f"{base_url}/insights", "account_url": f"{base_url}/account",
    }


def _sections(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """The five sections in order, each without its flagged statements; empty sections left out."""
    shown = []
    for key, title in insights.SECTIONS.items():
        statements = [str(s.get("text") or "").strip() for s in sections.get(key) or []
                      if isinstance(s, dict) and not s.get("flagged")]
        statements = [text for text in statements if text]
        if statements:
            shown.append({"key": key, "title": title, "statements": statements})
    return shown


def _kpi_rows(kpis: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for name, label, unit, rise_is_good in KPIS:
        figure = kpis.get(name)
        if not isinstance(figure, dict):
            continue
        current, previous = _number(figure.get("current")), _number(figure.get("previous"))
        # The stored change (current minus previous, in points for shares), so the email states only stored facts.
        difference = _number(figure.get("change"))
        if difference is None and current is not None and previous is not None:
            difference = current - previous
        change, colour = "–", NEUTRAL
        if difference is not None:
            change = _format_change(difference, unit)
            if difference:
                colour = GOOD if (difference > 0) == rise_is_good else BAD
        rows.append({"label": label, "current": _format(current, unit), "previous": _format(previous, unit),
                     "change": change, "colour": colour})
    return rows


def _opportunities(rows: list[Any]) -> list[dict[str, str]]:
    shown = []
    for row in rows[:MAX_OPPORTUNITIES]:
        if not isinstance(row, dict):
            continue
        priority = str(row.get("priority") or "")
        age = _number(row.get("age_days"))
        shown.append({
            "name": _one_line(row.get("name")) or "(no name)", "company": _one_line(row.get("company")),
            "score": _format(_number(row.get("score")), "count"), "priority": priority,
            "colour": PRIORITY_COLOURS.get(priority, NEUTRAL), "budget": _one_line(row.get("budget")) or "–",
            "status": str(row.get("status") or "").replace("_", " ").capitalize(),
            "age": "–" if age is None else ("1 day" if age == 1 else f"{int(age)} days"),
        })
    return shown


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "pct":
        return f"{value:.1f}%"
    if unit == "score":
        return f"{value:.1f}"
    return f"{round(value):,}"


def _format_change(difference: float, unit: str) -> str:
    if not difference:
        return "0.0 pts" if unit == "pct" else "0"
    if unit == "pct":
        return f"{difference:+.1f} pts"
    if unit == "score":
        return f"{difference:+.1f}"
    return f"{round(difference):+,}"


def _one_line(value: Any) -> str:
    return " ".join(str(value).split()) if value else ""


def _span(start: datetime, end: datetime, timezone: str) -> str:
    """`16–22 Nov 2026`: the period's local days, end exclusive."""
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone), (end - timedelta(seconds=1)).astimezone(zone)
    return f"{first:%d %b %Y} – {last:%d %b %Y}"
