"""Duplicate leads: found when a lead comes in, listed on the lead, dismissed or merged by a person.

Finding them stays cheap at 100,000 leads because the database only hands over a few candidates, each found
through an index: the same address, phone or email user name (the email and phone indexes), and the same company
domain or a company starting with the same words (on PostgreSQL the pg_trgm index). SQLite has no trigram index:
there the company domain is found by reading the email index alone, never the table, and company names are compared
among the newest SQLITE_RECENT leads only. Likeness (names, companies) is then scored in Python over at most a
hundred rows; a similar name alone is never searched for, as it only counts together with one of those signals.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import ColumnElement, Row, and_, func, or_, select, update
from sqlalchemy.orm import Session

from core import activities, audit, day_stats, followups
from core.errors import FieldError, NotFound, ValidationFailed
from core.schemas import normalise_phone
from db.models import (
    Activity,
    ActivityKind,
    AiUsage,
    DuplicateCandidate,
    FollowUp,
    IdempotencyRecord,
    ImportRow,
    Lead,
    WebhookEvent,
    WorkflowLog,
    utcnow,
)

OPEN, MERGED, DISMISSED = "OPEN", "MERGED", "DISMISSED"
MIN_CONFIDENCE = 50  # weaker likenesses are not stored: a person would mostly be shown strangers
MAX_CANDIDATES = 5
FETCH_LIMIT = 50  # rows each candidate query may hand over
SQLITE_RECENT = 5_000  # newest leads SQLite compares company names with (about 5 ms at any table size)
SIMILAR = 80  # rapidfuzz ratio (0-100) from which two names or two companies count as similar

# Free-mail providers: two people at gmail.com are not colleagues. Providers with many country domains are listed
# by name (yahoo.co.uk, hotmail.fr, gmx.de, ...).
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "icloud.com", "me.com", "mac.com", "msn.com", "aol.com", "proton.me",
    "protonmail.com", "pm.me", "mail.com", "email.com", "zoho.com", "zohomail.com", "fastmail.com", "hey.com",
    "tutanota.com", "tuta.io", "web.de", "t-online.de", "freenet.de", "orange.fr", "wanadoo.fr", "free.fr",
    "laposte.net", "sfr.fr", "libero.it", "virgilio.it", "tiscali.it", "seznam.cz", "wp.pl", "o2.pl", "interia.pl",
    "onet.pl", "mail.ru", "inbox.ru", "bk.ru", "list.ru", "rambler.ru", "ukr.net", "qq.com", "163.com", "126.com",
    "sina.com", "naver.com", "daum.net", "rediffmail.com", "comcast.net", "verizon.net", "att.net", "sbcglobal.net",
    "cox.net", "btinternet.com", "sky.com", "virginmedia.com", "bigpond.com", "shaw.ca", "rogers.com", "uol.com.br",
    "bol.com.br", "terra.com.br",
})
FREE_MAIL_PROVIDERS = frozenset({"yahoo", "ymail", "rocketmail", "hotmail", "outlook", "live", "gmx", "yandex", "aol"})
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Reserved names (RFC 2606, RFC 6761) that imports and tests use for made-up addresses: no company behind them.
PLACEHOLDER_TLDS = frozenset({"invalid", "test", "local", "localhost"})
# Role addresses are shared by many people: the same user name at two companies says nothing.
GENERIC_LOCAL_PARTS = frozenset({
    "info", "sales", "contact", "hello", "hi", "admin", "office", "support", "team", "mail", "email", "enquiries",
    "inquiries", "billing", "accounts", "marketing", "hr", "jobs", "careers", "noreply", "no-reply", "webmaster",
    "post", "service", "help", "kontakt", "contacto", "bonjour",
})
LEGAL_SUFFIXES = frozenset({
    "ltd", "limited", "llc", "llp", "lp", "inc", "incorporated", "corp", "corporation", "co", "company", "plc",
    "gmbh", "mbh", "ag", "kg", "ug", "ohg", "gbr", "ev", "sa", "sas", "sasu", "sarl", "eurl", "srl", "spa", "sl",
    "slu", "bv", "nv", "vof", "oy", "oyj", "ab", "as", "asa", "aps", "sro", "kft", "zrt", "sp", "zoo", "pty",
    "pte", "pvt", "private", "kk", "bhd", "sdn", "ltda", "cia", "doo", "ad", "holding", "holdings", "group",
})
# Words too common in company names to find a company by (the queries look for the first word not listed here).
GENERIC_COMPANY_WORDS = frozenset({
    "the", "and", "global", "international", "group", "digital", "tech", "technologies", "technology", "solutions",
    "services", "systems", "consulting", "partners", "agency", "studio", "studios", "labs", "media", "software",
    "north", "south", "east", "west", "new", "first", "united", "american", "european", "national",
})
HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "jr", "sr", "ii", "iii", "phd", "md"})

_NOT_WORD = re.compile(r"[^a-z0-9]+")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


# --- normalisation -------------------------------------------------------------------------------------------------

def _fold(text: str) -> str:
    """Lower case, accents dropped (José → jose), anything but letters and digits turned into single spaces."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_WORD.sub(" ", ascii_text.lower().replace("&", " and ")).strip()


def email_key(email: str | None) -> str:
    """The address as stored and compared: trimmed and lower case ("Dana@Example.com " → "dana@example.com")."""
    return (email or "").strip().lower()


def canonical_email(email: str | None) -> str:
    """The mailbox an address delivers to, as far as can be told without asking its server.

    A "+tag" is dropped everywhere: Gmail, Outlook, iCloud, Fastmail and most company servers deliver
    dana+news@x to dana@x. Dots are dropped only at Gmail, which ignores them (d.ana@gmail.com is dana@gmail.com);
    elsewhere dana.w@ and danaw@ can be two people. This is for matching only: a lead keeps its address as typed, and
    a match on this form is scored below an exact one.
    """
    local, _, domain = email_key(email).rpartition("@")
    if not local:
        return email_key(email)
    local = local.split("+", 1)[0] or local
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def phone_key(phone: str | None) -> str | None:
    """The number in E.164 when it can be read as an international number, else its digits; None without digits."""
    if not phone or not phone.strip():
        return None
    if _E164.fullmatch(phone):
        return phone  # how leads store readable numbers: no need to parse again
    try:
        normalised = normalise_phone(phone.strip())
    except ValueError:
        normalised = phone
    if normalised.startswith("+"):
        return normalised
    digits = re.sub(r"\D", "", normalised)
    return digits or None


def company_domain(email: str | None) -> str | None:
    """The company's domain from an address, or None for free-mail providers and made-up addresses."""
    domain = email_key(email).rpartition("@")[2]
    labels = domain.split(".")
    if len(labels) < 2 or domain in FREE_MAIL_DOMAINS or labels[0] in FREE_MAIL_PROVIDERS:
        return None
    if labels[-1] in PLACEHOLDER_TLDS:
        return None
    return domain


def company_key(company: str | None) -> str:
    """A company name for comparing: folded, without punctuation, a leading "the" or trailing legal forms.

    "The Harborline Freight Co., Ltd." and "Harborline Freight" both give "harborline freight".
    """
    words = _fold(company or "").split()
    if words and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)


def name_key(name: str | None) -> str:
    """A person's name for comparing: folded, without punctuation and titles ("Dr. José Núñez Jr." → "jose nunez").

    Empty for a "name" with digits in it ("Lead 660737", an id): imports make those up, and they are all alike.
    """
    words = [w for w in _fold(name or "").split() if w not in HONORIFICS]
    return "" if any(c.isdigit() for w in words for c in w) else " ".join(words)


def _similarity(a: str, b: str) -> int:
    if not a or not b:
        return 0
    return round(fuzz.token_sort_ratio(a, b))


def _company_similarity(a: str, b: str) -> int:
    if not a or not b:
        return 0
    score = fuzz.token_sort_ratio(a, b)
    # "Harborline" and "Harborline Freight" are one company; "Group" and "Harbor Group" need not be.
    shared = set(a.split()) & set(b.split())
    if any(len(w) >= 3 and w not in GENERIC_COMPANY_WORDS for w in shared):
        score = max(score, fuzz.token_set_ratio(a, b))
    return round(score)


def _distinctive_prefix(words: list[str]) -> list[str]:
    """The words up to and including the first one specific enough to search by ([] when there is none)."""
    for i, word in enumerate(words):
        if len(word) >= 3 and word not in GENERIC_COMPANY_WORDS and not word.isdigit():
            return words[: i + 1]
    return []


@dataclass(frozen=True)
class MatchKeys:
    """What one lead is compared by."""

    email: str
    canonical: str
    local: str
    domain: str | None
    phone: str | None
    name: str
    company: str

    @classmethod
    def of(cls, *, email: str | None, phone: str | None, full_name: str | None, company: str | None) -> MatchKeys:
        # The user name as typed, without a +tag (dots kept: they are searched for as typed).
        local = email_key(email).rpartition("@")[0].split("+", 1)[0]
        return cls(email=email_key(email), canonical=canonical_email(email), local=local,
                   domain=company_domain(email), phone=phone_key(phone), name=name_key(full_name),
                   company=company_key(company))

    def own_local(self) -> str | None:
        """The address's user name when it could identify a person (not info@, not two letters)."""
        local = self.local
        if len(local) < 4 or local in GENERIC_LOCAL_PARTS or local.replace(".", "") in GENERIC_LOCAL_PARTS:
            return None
        return local


def _same_phone(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    # One number typed internationally, the other without its country code ("+13125550148" and "3125550148").
    da, db = a.lstrip("+"), b.lstrip("+")
    shorter, longer = sorted((da, db), key=len)
    return len(shorter) >= 9 and longer.endswith(shorter) and not (a.startswith("+") and b.startswith("+"))


def compare(a: MatchKeys, b: MatchKeys) -> tuple[int, list[str]]:
    """How sure (0-100) we are that two leads are one person or company, and why.

    Same email 95-100; the same mailbox written differently (+tag, Gmail dots) 90-94; same phone 85-93; the same
    company domain and a similar name 70-90; the same email user name elsewhere and a similar name 65-75; a similar
    name and a similar company 50-80. The strongest rule sets the confidence; the others add to the reasons.
    """
    names, companies = _similarity(a.name, b.name), _company_similarity(a.company, b.company)
    similar_name, similar_company = names >= SIMILAR, companies >= SIMILAR
    same_phone = _same_phone(a.phone, b.phone)
    reasons: list[str] = []
    scores = [0]
    if a.email and a.email == b.email:
        reasons.append("same email")
        scores.append(min(100, 95 + 2 * similar_name + 2 * same_phone + similar_company))
    elif a.canonical and a.canonical == b.canonical:
        reasons.append("same mailbox (the addresses differ only by a +tag or dots)")
        scores.append(min(94, 90 + 2 * similar_name + 2 * same_phone))
    if same_phone:
        reasons.append("same phone")
        scores.append(85 + 5 * similar_name + 3 * similar_company)
    same_domain = a.domain is not None and a.domain == b.domain
    if same_domain:
        reasons.append(f"same company domain ({a.domain})")
        if similar_name:
            scores.append(70 + (names - SIMILAR))
    if (similar_name and a.own_local() is not None and a.canonical != b.canonical
            and a.local.replace(".", "") == b.local.replace(".", "")):
        reasons.append("same email user name at another domain")
        scores.append(65 + (names - SIMILAR) // 2)
    if similar_name:
        reasons.append(f"similar name ({names}%)")
    if similar_company:
        reasons.append(f"similar company ({companies}%)")
    if similar_name and similar_company:
        scores.append(50 + round(30 * ((names - SIMILAR) + (companies - SIMILAR)) / 40))
    confidence = max(scores)
    return confidence, reasons if confidence else []


# --- detection -----------------------------------------------------------------------------------------------------

_COLUMNS = (Lead.id, Lead.full_name, Lead.email, Lead.phone, Lead.company, Lead.created_at)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _email_starts_with(prefix: str, postgres: bool) -> ColumnElement[bool]:
    if postgres:
        # lower(email) is in the trigram index, which serves LIKE whatever the database's collation.
        return func.lower(Lead.email).like(_escape_like(prefix) + "%", escape="\\")
    # SQLite compares bytes: a range on the email index is exactly "starts with".
    return and_(Lead.email >= prefix, Lead.email < prefix[:-1] + chr(ord(prefix[-1]) + 1))


def _key_query(me: MatchKeys, lead: Lead, postgres: bool) -> Any:
    """Leads sharing an exact key with `me`, each condition served by an index."""
    conditions: list[ColumnElement[bool]] = [Lead.email.in_(sorted({me.email, me.canonical} - {""}))]
    if me.phone:
        # Leads store the E.164 form when the number was readable, else the number as typed.
        conditions.append(Lead.phone.in_(sorted({me.phone, lead.phone or me.phone})))
    if (local := me.own_local()) is not None:
        # The same user name at any domain ("dana.whitfield@..."), and tagged forms of this very mailbox.
        conditions += [_email_starts_with(f"{local}@", postgres), _email_starts_with(f"{local}+", postgres)]
    # No ORDER BY: with one, SQLite walks the created_at index through the whole table instead of the OR'ed lookups.
    return select(*_COLUMNS).where(or_(*conditions), Lead.id != lead.id).limit(FETCH_LIMIT)


def _company_patterns(me: MatchKeys) -> list[str]:
    """LIKE patterns on the email for the same company: its domain, and domains starting with its name."""
    patterns = [f"%@{_escape_like(me.domain)}"] if me.domain else []
    words = _distinctive_prefix(me.company.split())
    if words:
        patterns.append(f"%@{_escape_like(''.join(words))}%")
    return patterns


def _fuzzy_query_postgres(me: MatchKeys, lead_id: str) -> Any:
    """PostgreSQL: the same company domain, or a company (or domain) starting with the same words (trigram index).

    Names alone are not searched: a trigram search for "dana whitfield" reads every other Dana, and a similar name
    only counts together with one of the signals searched for here.
    """
    email, company = func.lower(Lead.email), func.lower(Lead.company)
    conditions: list[ColumnElement[bool]] = [email.like(p, escape="\\") for p in _company_patterns(me)]
    words = _distinctive_prefix(me.company.split())
    if words:
        conditions.append(company.like(_escape_like(" ".join(words)) + "%", escape="\\"))
    if not conditions:
        return None
    likeness = (func.similarity(func.lower(Lead.full_name), me.name)
                + func.similarity(func.lower(func.coalesce(Lead.company, "")), me.company))
    return (select(*_COLUMNS).where(or_(*conditions), Lead.id != lead_id)
            .order_by(likeness.desc(), Lead.created_at.desc()).limit(FETCH_LIMIT))


def _fuzzy_query_sqlite(me: MatchKeys, lead_id: str) -> Any:
    """SQLite: the same company domain among all leads, read from the email index alone (a covering index scan,
    never the table), and a company starting with the same words among the SQLITE_RECENT newest leads (no index
    can serve a company prefix here, so the rows read stay bounded)."""
    conditions: list[ColumnElement[bool]] = []
    if patterns := _company_patterns(me):
        emails = select(Lead.email).where(or_(*(Lead.email.like(p, escape="\\") for p in patterns)))
        conditions.append(Lead.email.in_(emails.limit(FETCH_LIMIT).scalar_subquery()))
    if words := _distinctive_prefix(me.company.split()):
        recent = (select(Lead.id, Lead.company).order_by(Lead.created_at.desc(), Lead.id.desc())
                  .limit(SQLITE_RECENT).subquery())
        alike = select(recent.c.id).where(func.lower(recent.c.company).like(_escape_like(" ".join(words)) + "%",
                                                                           escape="\\"))
        conditions.append(Lead.id.in_(alike.limit(FETCH_LIMIT).scalar_subquery()))
    if not conditions:
        return None
    return (select(*_COLUMNS).where(or_(*conditions), Lead.id != lead_id)
            .order_by(Lead.created_at.desc(), Lead.id.desc()).limit(FETCH_LIMIT))


def _candidate_rows(session: Session, lead: Lead, me: MatchKeys) -> list[Row[Any]]:
    """The few leads worth comparing with `lead`: at most 2 x FETCH_LIMIT rows, whatever the size of the table."""
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = {row.id: row for row in session.execute(_key_query(me, lead, postgres))}
    fuzzy = _fuzzy_query_postgres(me, lead.id) if postgres else _fuzzy_query_sqlite(me, lead.id)
    if fuzzy is not None:
        for row in session.execute(fuzzy):
            rows.setdefault(row.id, row)
    return list(rows.values())


def _keys_of(row: Any) -> MatchKeys:
    return MatchKeys.of(email=row.email, phone=row.phone, full_name=row.full_name, company=row.company)


def _ordered(lead_id: str, created_at: datetime, other_id: str, other_created_at: datetime) -> tuple[str, str]:
    """(newer, older): a pair is stored once, under its newer lead."""
    if (created_at, lead_id) >= (other_created_at, other_id):
        return lead_id, other_id
    return other_id, lead_id


def detect(*, session: Session, lead: Lead, limit: int = MAX_CANDIDATES) -> list[DuplicateCandidate]:
    """Finds leads that look like `lead` and stores them as OPEN candidates (at most `limit`, strongest first).

    Running it again refreshes the open candidates and adds new ones; pairs a person dismissed stay dismissed.
    """
    session.flush()
    me = MatchKeys.of(email=lead.email, phone=lead.phone, full_name=lead.full_name, company=lead.company)
    scored = []
    for row in _candidate_rows(session, lead, me):
        confidence, reasons = compare(me, _keys_of(row))
        if confidence >= MIN_CONFIDENCE:
            scored.append((confidence, row, reasons))
    if not scored:
        return []
    ids = [row.id for _, row, _ in scored]
    existing = {(c.other_id if c.lead_id == lead.id else c.lead_id): c
                for c in session.scalars(select(DuplicateCandidate).where(
                    or_(and_(DuplicateCandidate.lead_id == lead.id, DuplicateCandidate.other_id.in_(ids)),
                        and_(DuplicateCandidate.other_id == lead.id, DuplicateCandidate.lead_id.in_(ids)))))}
    # A pair a person already judged (dismissed) is not offered again, and does not take one of the places.
    scored = [s for s in scored if s[1].id not in existing or existing[s[1].id].status == OPEN]
    scored.sort(key=lambda s: (-s[0], s[1].created_at, s[1].id))
    stored = []
    for confidence, row, reasons in scored[:limit]:
        candidate = existing.get(row.id)
        if candidate is None:
            newer, older = _ordered(lead.id, lead.created_at, row.id, row.created_at)
            candidate = DuplicateCandidate(lead_id=newer, other_id=older, status=OPEN)
            session.add(candidate)
        candidate.confidence, candidate.reasons = confidence, reasons
        stored.append(candidate)
    session.flush()
    return stored


# --- reading and resolving -----------------------------------------------------------------------------------------

def candidates_for(*, session: Session, lead_id: str) -> list[dict[str, Any]]:
    """Every candidate pair the lead is part of (either side), OPEN ones first, then the most likely."""
    pairs = list(session.scalars(select(DuplicateCandidate).where(
        or_(DuplicateCandidate.lead_id == lead_id, DuplicateCandidate.other_id == lead_id))))
    other_ids = {p.other_id if p.lead_id == lead_id else p.lead_id for p in pairs}
    others = {row.id: row for row in session.execute(
        select(Lead.id, Lead.full_name, Lead.company, Lead.email, Lead.phone, Lead.status, Lead.assignee_id,
               Lead.created_at).where(Lead.id.in_(other_ids)))} if other_ids else {}
    rows = []
    for pair in pairs:
        other = others[pair.other_id if pair.lead_id == lead_id else pair.lead_id]
        rows.append({"id": pair.id, "confidence": pair.confidence, "reasons": list(pair.reasons),
                     "status": pair.status, "resolved_by": pair.resolved_by, "resolved_at": pair.resolved_at,
                     "created_at": pair.created_at,
                     "other": {"id": other.id, "full_name": other.full_name, "company": other.company,
                               "email": other.email, "phone": other.phone, "status": other.status.value,
                               "assignee_id": other.assignee_id, "created_at": other.created_at}})
    rows.sort(key=lambda r: (r["status"] != OPEN, -r["confidence"], r["other"]["created_at"]))
    return rows


def get_or_raise(*, session: Session, candidate_id: str) -> DuplicateCandidate:
    """The candidate pair with this id; raises NotFound."""
    candidate = session.get(DuplicateCandidate, candidate_id)
    if candidate is None:
        raise NotFound(f"no duplicate candidate with id {candidate_id}")
    return candidate


def dismiss(*, session: Session, candidate_id: str, actor: str) -> DuplicateCandidate:
    """Marks a pair as not a duplicate: it is no longer offered, and detection will not offer it again."""
    candidate = get_or_raise(session=session, candidate_id=candidate_id)
    if candidate.status != OPEN:
        return candidate
    candidate.status, candidate.resolved_by, candidate.resolved_at = DISMISSED, actor, utcnow()
    audit.record(session=session, actor=actor, action="duplicate.dismissed", target_type="lead",
                 target_id=candidate.lead_id, detail={"other_lead_id": candidate.other_id,
                                                      "confidence": candidate.confidence})
    session.flush()
    return candidate


# --- merging -------------------------------------------------------------------------------------------------------

# Rows that belong to a lead and move to the kept one (follow-ups move separately, after their pending ones stop).
_CHILDREN: dict[str, Any] = {"activities": Activity, "workflow_log": WorkflowLog, "ai_usage": AiUsage,
                             "import_rows": ImportRow, "idempotency_records": IdempotencyRecord,
                             "webhook_events": WebhookEvent}
# Fields the kept lead takes from the dropped one when it has none of its own.
_FILLED = ("phone", "company", "project_type", "external_id")
_BUDGET = ("budget", "budget_min", "budget_max", "budget_currency", "budget_period", "budget_usd")


def _locked(session: Session, lead_id: str, role: str) -> Lead:
    # FOR UPDATE on PostgreSQL: a concurrent merge or edit of either lead waits for this one (SQLite has one writer).
    lead = session.get(Lead, lead_id, with_for_update=True)
    if lead is None:
        raise NotFound(f"no {role} lead with id {lead_id}")
    return lead


def _analysis_of(lead: Lead) -> dict[str, Any] | None:
    a = lead.analysis
    if a is None:
        return None
    return {"score": a.score, "priority": a.priority.value, "engine": a.engine, "model": a.model,
            "budget_category": a.budget_category, "factors": list(a.factors), "summary": a.summary,
            "recommendation": a.recommendation, "review_reason": a.review_reason,
            "fallback_reason": a.fallback_reason, "learned_score": a.learned_score,
            "engine_score": a.engine_score, "analyzed_at": a.updated_at.isoformat()}


def _snapshot(lead: Lead) -> dict[str, Any]:
    return {"id": lead.id, "full_name": lead.full_name, "email": lead.email, "phone": lead.phone,
            "company": lead.company, "budget": lead.budget, "project_type": lead.project_type,
            "message": lead.message, "source": lead.source, "status": lead.status.value, "score": lead.score,
            "custom_attributes": dict(lead.custom_attributes or {}), "external_id": lead.external_id,
            "created_at": lead.created_at.isoformat()}


def _fill_empty(keep: Lead, drop: Lead) -> list[str]:
    """Copies what the kept lead lacks from the dropped one; the kept lead's own values always win."""
    filled = [name for name in _FILLED if getattr(keep, name) in (None, "") and getattr(drop, name) not in (None, "")]
    for name in filled:
        setattr(keep, name, getattr(drop, name))
    if keep.budget in (None, "") and drop.budget:
        for name in _BUDGET:
            setattr(keep, name, getattr(drop, name))
        filled.append("budget")
    if keep.assignee_id is None and drop.assignee_id is not None:
        keep.assignee_id, keep.assignee = drop.assignee_id, drop.assignee
        filled.append("assignee")
    extra = {k: v for k, v in (drop.custom_attributes or {}).items() if k not in (keep.custom_attributes or {})}
    if extra:
        keep.custom_attributes = {**extra, **(keep.custom_attributes or {})}
        filled.append("custom_attributes")
    if drop.created_at < keep.created_at:
        keep.created_at = drop.created_at
    contacted = [t for t in (keep.first_contacted_at, drop.first_contacted_at) if t is not None]
    keep.first_contacted_at = min(contacted) if contacted else None
    return filled


def _move_candidates(session: Session, keep: Lead, drop: Lead) -> int:
    """Re-points the dropped lead's other candidate pairs to the kept lead; the merged pair itself goes."""
    moved = 0
    pairs = list(session.scalars(select(DuplicateCandidate).where(
        or_(DuplicateCandidate.lead_id == drop.id, DuplicateCandidate.other_id == drop.id))))
    # The kept lead's own pairs, by their other lead: read once, not once per pair of the dropped lead.
    twins = {(p.other_id if p.lead_id == keep.id else p.lead_id): p for p in session.scalars(
        select(DuplicateCandidate).where(or_(DuplicateCandidate.lead_id == keep.id,
                                             DuplicateCandidate.other_id == keep.id)))}
    for pair in pairs:
        third = pair.other_id if pair.lead_id == drop.id else pair.lead_id
        if third == keep.id:
            session.delete(pair)
            continue
        twin = twins.get(third)
        if twin is None:
            if pair.lead_id == drop.id:
                pair.lead_id = keep.id
            else:
                pair.other_id = keep.id
        else:
            # The kept lead already has a pair with this lead: one row keeps the stronger signal, and stays OPEN if
            # either was (the dropped lead's likeness was never judged).
            twin.confidence = max(twin.confidence, pair.confidence)
            twin.reasons = list(dict.fromkeys([*twin.reasons, *pair.reasons]))
            if pair.status == OPEN and twin.status != OPEN:
                twin.status, twin.resolved_by, twin.resolved_at = OPEN, None, None
            session.delete(pair)
        moved += 1
        session.flush()
    return moved


def merge(*, session: Session, keep_id: str, drop_id: str, actor: str) -> Lead:
    """Merges lead `drop_id` into lead `keep_id`, in the caller's transaction, and returns the kept lead.

    The kept lead takes the timeline, follow-ups, workflow log, AI usage, import rows, stored API answers and
    duplicate pairs of the dropped one; the dropped lead's pending follow-ups stop (nobody is contacted twice), its
    analysis is kept on the timeline, fields the kept lead lacks are filled from it, and then it is deleted.
    """
    if keep_id == drop_id:
        raise ValidationFailed([FieldError("drop_id", "a lead cannot be merged into itself")])
    keep, drop = _locked(session, keep_id, "kept"), _locked(session, drop_id, "merged")
    session.flush()
    snapshot, analysis = _snapshot(drop), _analysis_of(drop)
    unsubscribed = followups.is_suppressed(session=session, address=drop.email) is not None
    stopped = followups.cancel_pending(session=session, lead_id=drop.id,
                                       reason=f"merged into {keep.full_name} (lead {keep.id})")
    day_stats.mark(session, [drop.id])  # the dashboard's days of the dropped lead and its follow-ups' outcomes
    # Follow-ups keep origin_lead_id (the dropped id), so the kept lead's own plan for a step stays unique, and
    # their updated_at: a failed or cancelled one counts on the day that happened, not on the day of the merge.
    moved = {name: session.execute(update(model).where(model.lead_id == drop.id).values(
                 lead_id=keep.id, **({"updated_at": model.updated_at} if model is FollowUp else {}))).rowcount
             for name, model in {"follow_ups": FollowUp, **_CHILDREN}.items()}
    moved["duplicate_candidates"] = _move_candidates(session, keep, drop)
    filled = _fill_empty(keep, drop)
    if unsubscribed and keep.auto_follow_up:
        # The person asked not to be contacted under the other lead: that wish holds for the merged one.
        keep.auto_follow_up = False
        stopped += followups.cancel_pending(session=session, lead_id=keep.id,
                                            reason="the merged lead had unsubscribed")
    if analysis is not None:
        activities.record(session=session, lead_id=keep.id, kind=ActivityKind.MERGED, actor=actor,
                          body=f"Analysis of the merged lead {drop.full_name}: scored {analysis['score']} "
                               f"({analysis['priority']}) by the {analysis['engine']} engine",
                          data={"merged_lead_id": drop.id, "analysis": analysis})
    activities.record(
        session=session, lead_id=keep.id, kind=ActivityKind.MERGED, actor=actor,
        body=f"Merged {drop.full_name} <{drop.email}> into this lead: {moved['activities']} timeline entries and "
             f"{moved['follow_ups']} follow-ups moved, {stopped} pending follow-up(s) stopped"
             + (f"; filled {', '.join(f.replace('_', ' ') for f in filled)}" if filled else ""),
        data={"merged_lead": snapshot, "moved": moved, "follow_ups_stopped": stopped, "filled": filled})
    audit.record(session=session, actor=actor, action="lead.merged", target_type="lead", target_id=keep.id,
                 detail={"merged_lead_id": drop.id, "moved": moved, "follow_ups_stopped": stopped, "filled": filled,
                         "merged_lead_status": drop.status.value, "merged_lead_source": drop.source})
    keep.updated_at = utcnow()
    session.flush()
    # Its children now belong to the kept lead: forget the collections loaded before the move, so deleting the lead
    # cannot cascade to them; the database removes what is left (its analysis).
    session.expire(drop)
    session.expire(keep, ["activities"])
    session.delete(drop)
    session.flush()
    return keep
