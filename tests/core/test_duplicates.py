"""Duplicate leads on SQLite and PostgreSQL: found on entry, listed, dismissed, and merged keeping every child row."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.orm import Session

from core import audit, duplicates, followups, intake, lead_views
from core.config import Settings
from core.errors import NotFound, ValidationFailed
from core.schemas import parse_lead
from db.models import (
    Activity,
    ActivityKind,
    AiUsage,
    DuplicateCandidate,
    FollowUp,
    FollowUpStatus,
    IdempotencyRecord,
    ImportBatch,
    ImportRow,
    Lead,
    LeadAnalysis,
    Role,
    WorkflowLog,
    new_id,
)
from db.session import session_scope
from tests.conftest import ApiClient, lead_payload
from tests.support.factories import make_lead, make_user

pytestmark = pytest.mark.usefixtures("fast_bcrypt")

JANUARY = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)

DANA = {"full_name": "Dana Whitfield", "email": "dana.whitfield@harborlinefreight.example",
        "phone": "+1 (312) 555-0148", "company": "Harborline Freight"}


def person(session: Session, **fields: Any) -> Lead:
    """A lead through core.leads.create (so detection runs), with no phone or company unless given."""
    return make_lead(session, **{"phone": None, "company": None, **fields})


def pairs_of(engine: Engine, lead_id: str) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        return duplicates.candidates_for(session=session, lead_id=lead_id)


def all_pairs(engine: Engine) -> list[DuplicateCandidate]:
    with session_scope(engine) as session:
        return list(session.scalars(select(DuplicateCandidate)))


# --- normalisation ------------------------------------------------------------------------------------------------


def test_addresses_phones_companies_and_names_are_normalised_for_matching():
    assert duplicates.email_key("  Dana@Example.COM ") == "dana@example.com"
    # Gmail ignores dots and +tags; elsewhere only the +tag is dropped (dots can tell two people apart).
    assert duplicates.canonical_email("D.ana+news@GoogleMail.com") == "dana@gmail.com"
    assert duplicates.canonical_email("dana.w+web@harborline.example") == "dana.w@harborline.example"
    assert duplicates.phone_key("+1 (312) 555-0148") == duplicates.phone_key("+1 312.555.0148") == "+13125550148"
    assert duplicates.phone_key("(312) 555-0148") == "3125550148"  # no country code: its digits
    assert duplicates.company_domain("dana@HarborlineFreight.example") == "harborlinefreight.example"
    for free_or_made_up in ("a@gmail.com", "a@yahoo.co.uk", "a@hotmail.fr", "a@gmx.de", "lead-660737@import.invalid"):
        assert duplicates.company_domain(free_or_made_up) is None, free_or_made_up
    assert duplicates.company_key("The Harborline Freight Co., Ltd.") == "harborline freight"
    assert duplicates.company_key("Müller & Söhne GmbH") == "muller and sohne"
    assert duplicates.name_key("Dr. José Núñez Jr.") == "jose nunez"
    assert duplicates.name_key("Lead 660737") == "", "made-up names of imports are all alike: no name at all"


def test_compare_scores_each_rule_in_its_band():
    def keys(**fields: Any) -> duplicates.MatchKeys:
        return duplicates.MatchKeys.of(**{"email": None, "phone": None, "full_name": None, "company": None,
                                          **fields})

    dana = keys(**DANA)
    same_email = duplicates.compare(dana, keys(email=" Dana.Whitfield@HarborlineFreight.EXAMPLE ",
                                               full_name="D. Whitfield"))
    tagged = duplicates.compare(dana, keys(email="dana.whitfield+web@harborlinefreight.example"))
    phone = duplicates.compare(dana, keys(email="dw@gmail.com", phone="+1 312.555.0148", full_name="Sam Carter"))
    domain = duplicates.compare(dana, keys(email="d.whitfeld@harborlinefreight.example", full_name="Dana Whitfeld"))
    name_company = duplicates.compare(dana, keys(email="dw85@outlook.com", full_name="Dana Whitfeld",
                                                 company="Harborline Freight Ltd."))
    colleague = duplicates.compare(dana, keys(email="sam.carter@harborlinefreight.example", full_name="Sam Carter",
                                              company="Harborline Freight"))

    assert same_email[0] >= 95 and "same email" in same_email[1]
    assert 90 <= tagged[0] <= 94
    assert phone == (85, ["same phone"])
    assert 70 <= domain[0] <= 90 and "same company domain (harborlinefreight.example)" in domain[1]
    assert 50 <= name_company[0] <= 80 and any(r.startswith("similar company") for r in name_company[1])
    assert colleague[0] < duplicates.MIN_CONFIDENCE, "a colleague at the same company is not a duplicate"


# --- detection on entry ---------------------------------------------------------------------------------------------


def test_the_same_email_typed_differently_is_found(engine: Engine):
    with session_scope(engine) as session:
        first = person(session, full_name="Dana Whitfield", email="dana@example.com")
        second = person(session, full_name="Dana Whitfield", email="Dana@Example.com ")

    [pair] = pairs_of(engine, second.id)
    assert pair["confidence"] >= 95 and pair["reasons"][0] == "same email" and pair["status"] == "OPEN"
    assert pair["other"]["id"] == first.id
    [stored] = all_pairs(engine)
    assert (stored.lead_id, stored.other_id) == (second.id, first.id), "stored under the newer lead"
    assert [p["other"]["id"] for p in pairs_of(engine, first.id)] == [second.id], "listed from both sides"


def test_the_same_phone_in_two_formats_is_found(engine: Engine):
    with session_scope(engine) as session:
        first = person(session, full_name="Dana Whitfield", email="dana.w@gmail.com", phone="+1 (312) 555-0148")
        second = person(session, full_name="Dana Whitfield", email="dwhitfield@outlook.com", phone="+1 312.555.0148")

    [pair] = pairs_of(engine, second.id)
    assert pair["other"]["id"] == first.id
    assert pair["confidence"] >= 85 and "same phone" in pair["reasons"] and "same email" not in pair["reasons"]


def test_the_same_company_domain_and_a_similar_name_are_found(engine: Engine):
    with session_scope(engine) as session:
        first = person(session, full_name="Dana Whitfield", email="dana.whitfield@harborlinefreight.example")
        second = person(session, full_name="Dana Whitfeld", email="d.whitfeld@harborlinefreight.example")

    [pair] = pairs_of(engine, second.id)
    assert pair["other"]["id"] == first.id
    assert 70 <= pair["confidence"] <= 90
    assert pair["reasons"][0] == "same company domain (harborlinefreight.example)"
    assert pair["reasons"][1].startswith("similar name")


def test_a_similar_name_at_a_similar_company_is_found_behind_free_mail_addresses(engine: Engine):
    with session_scope(engine) as session:
        first = person(session, full_name="Dana Whitfield", email="dana.w@gmail.com", company="Harborline Freight")
        second = person(session, full_name="Dana Whitfeld", email="dwhitfeld@outlook.com",
                        company="The Harborline Freight Co., Ltd.")

    [pair] = pairs_of(engine, second.id)
    assert pair["other"]["id"] == first.id
    assert 50 <= pair["confidence"] <= 80
    assert [r.split(" (")[0] for r in pair["reasons"]] == ["similar name", "similar company"]


def test_stronger_signals_rank_higher(engine: Engine):
    with session_scope(engine) as session:
        original = make_lead(session, **DANA, created_at=JANUARY)
        by_email = person(session, full_name="D. Whitfield", email="Dana.Whitfield@HarborlineFreight.example")
        by_phone = person(session, full_name="Dana Whitfield", email="dana.w@gmail.com", phone="+1 312.555.0148")
        by_domain = person(session, full_name="Dana Whitfeld", email="d.whitfeld@harborlinefreight.example")
        by_name_and_company = person(session, full_name="Dana Whitfeld", email="dw85@outlook.com",
                                     company="Harborline Freight Ltd.")

    found = pairs_of(engine, original.id)
    assert [p["other"]["id"] for p in found] == [by_email.id, by_phone.id, by_domain.id, by_name_and_company.id]
    confidences = [p["confidence"] for p in found]
    assert confidences == sorted(confidences, reverse=True) and len(set(confidences)) == 4
    assert confidences[0] >= 95 and confidences[1] >= 85 and 70 <= confidences[2] <= 90 and confidences[3] <= 80


def test_unrelated_leads_colleagues_and_free_mail_neighbours_are_not_candidates(engine: Engine):
    with session_scope(engine) as session:
        make_lead(session, **DANA)
        person(session, full_name="Sam Carter", email="sam.carter@harborlinefreight.example",
               company="Harborline Freight")  # a colleague: same domain and company, another person
        person(session, full_name="Amy Li", email="amy.li@gmail.com")
        person(session, full_name="Bob Stone", email="bob.stone@gmail.com")  # only the free-mail domain in common
        person(session, full_name="Lee Park", email="lee@parkdesign.example", company="Park Design")

    assert all_pairs(engine) == []


def test_detection_is_idempotent_capped_and_leaves_dismissed_pairs_alone(engine: Engine):
    with session_scope(engine) as session:
        earlier = [person(session, full_name=f"Dana Whitfield {'I' * i}".strip(), email="dana@example.com").id
                   for i in range(1, 8)]
        latest = person(session, full_name="Dana Whitfield", email="dana@example.com")

    assert len(pairs_of(engine, latest.id)) == duplicates.MAX_CANDIDATES
    with session_scope(engine) as session:
        lead = session.get(Lead, latest.id)
        again = duplicates.detect(session=session, lead=lead)
        duplicates.detect(session=session, lead=lead)
    assert len(again) == duplicates.MAX_CANDIDATES
    assert len(pairs_of(engine, latest.id)) == duplicates.MAX_CANDIDATES, "running again adds no rows"

    first_pair = pairs_of(engine, latest.id)[0]
    with session_scope(engine) as session:
        duplicates.dismiss(session=session, candidate_id=first_pair["id"], actor="user:max")
        duplicates.detect(session=session, lead=session.get(Lead, latest.id))

    listed = pairs_of(engine, latest.id)
    assert [p["status"] for p in listed] == ["OPEN"] * duplicates.MAX_CANDIDATES + ["DISMISSED"]
    assert listed[-1]["id"] == first_pair["id"] and listed[-1]["resolved_by"] == "user:max"
    assert {p["other"]["id"] for p in listed} <= set(earlier)
    with session_scope(engine) as session:
        [event] = audit.get_all(session=session, action="duplicate.dismissed")
        assert event.detail == {"other_lead_id": first_pair["other"]["id"], "confidence": first_pair["confidence"]}


def test_leads_entered_by_the_api_and_by_intake_are_checked_on_entry(api: ApiClient, settings: Settings):
    first = api.post("/api/leads", json=lead_payload())
    second = api.post("/api/leads", json=lead_payload(email=" Dana.Whitfield@HarborlineFreight.example"))
    assert first.status_code == second.status_code == 201
    assert "duplicates" not in second.json(), "the API's lead body stays as the contract says"
    [pair] = pairs_of(api.engine, second.json()["id"])
    assert pair["other"]["id"] == first.json()["id"] and pair["confidence"] >= 95

    typed_in = intake.submit(engine=api.engine, settings=settings, actor="user:sam", default_source="manual",
                             lead_in=parse_lead(lead_payload(email="dana.w@gmail.com", full_name="Dana Whitfield")))
    found = pairs_of(api.engine, typed_in.lead["id"])
    assert {p["other"]["id"] for p in found} == {first.json()["id"], second.json()["id"]}
    assert all("same phone" in p["reasons"] for p in found)


# --- what people see and may do ---------------------------------------------------------------------------------


def test_staff_see_only_pairs_they_may_open_and_only_managers_resolve_them(engine: Engine):
    with session_scope(engine) as session:
        sam = make_user(session, "sam", Role.STAFF)
        sue = make_user(session, "sue", Role.STAFF)
        theirs = make_lead(session, assignee=sue)
        unassigned = make_lead(session)
        latest = make_lead(session)

    with session_scope(engine) as session:
        as_staff = lead_views.duplicates_for_user(session=session, lead_id=latest.id, user_id=sam.id, role="staff")
        as_manager = lead_views.duplicates_for_user(session=session, lead_id=latest.id, user_id="m", role="manager")
    assert [row["other_id"] for row in as_staff] == [unassigned.id]
    assert {row["other_id"] for row in as_manager} == {theirs.id, unassigned.id}
    assert as_manager[0]["same_email"] and as_manager[0]["reasons"].startswith("same email")

    with session_scope(engine) as session, pytest.raises(ValidationFailed):
        lead_views.merge_duplicate(session=session, lead_id=latest.id, candidate_id=as_staff[0]["id"],
                                   role="staff", actor="user:sam")
    with session_scope(engine) as session, pytest.raises(NotFound):
        other_pair = lead_views.duplicates_for_user(session=session, lead_id=theirs.id, user_id="m",
                                                    role="manager")
        stranger = next(p for p in other_pair if p["other_id"] != latest.id)
        lead_views.dismiss_duplicate(session=session, lead_id=latest.id, candidate_id=stranger["id"],
                                     role="manager", actor="user:max")
    with session_scope(engine) as session:
        lead_views.merge_duplicate(session=session, lead_id=latest.id, candidate_id=as_manager[0]["id"],
                                   role="manager", actor="user:max")
    with session_scope(engine) as session:
        assert session.get(Lead, as_manager[0]["other_id"]) is None


# --- merging --------------------------------------------------------------------------------------------------------


def child_counts(session: Session, *lead_ids: str) -> dict[str, int]:
    """Rows belonging to these leads, per kind."""
    models = {"activities": Activity, "follow_ups": FollowUp, "workflow_log": WorkflowLog, "ai_usage": AiUsage,
              "import_rows": ImportRow, "idempotency_records": IdempotencyRecord}
    return {name: session.scalar(select(func.count()).select_from(model).where(model.lead_id.in_(lead_ids))) or 0
            for name, model in models.items()}


def add_history(session: Session, lead: Lead, tag: str) -> None:
    """What a lead collects over its life: a note, a sent follow-up, log lines, AI calls, an import row, an API key."""
    lead_follow_ups = followups.for_lead(session=session, lead_id=lead.id)
    sent = lead_follow_ups[0]
    sent.status, sent.sent_at, sent.recipient = FollowUpStatus.SENT, JANUARY, lead.email
    session.add(WorkflowLog(kind="followup", subject_id=sent.id, lead_id=lead.id, channel="EMAIL", outcome="sent"))
    session.add(WorkflowLog(kind="followup", subject_id=sent.id, lead_id=lead.id, channel="EMAIL", outcome="retry"))
    session.add(AiUsage(purpose="analysis", model="gemini-2.5-flash", lead_id=lead.id, outcome="ok"))
    batch = ImportBatch(filename=f"{tag}.csv", created_by="user:max")
    session.add(batch)
    session.flush()
    session.add(ImportRow(batch_id=batch.id, row_number=1, action="created", lead_id=lead.id))
    session.add(IdempotencyRecord(scope="api", key=f"key-{tag}", request_hash="h", lead_id=lead.id, status_code=201,
                                  response={"id": lead.id}))
    session.add(Activity(lead_id=lead.id, kind=ActivityKind.NOTE, actor="user:sam", body=f"called ({tag})"))
    session.flush()


def test_merge_keeps_every_child_row_of_both_leads(engine: Engine):
    with session_scope(engine) as session:
        # The older lead arrived by phone with little detail; the newer one filled in the web form.
        # The same score for both: the same sequence steps planned, which the merged lead must still hold.
        drop = make_lead(session, **DANA, budget="$80k-$120k", project_type="Web app", created_at=JANUARY, score=85)
        drop.custom_attributes = {"Lead Origin": "API", "Country": "US"}
        keep = make_lead(session, full_name="Dana Whitfield", email="dana.whitfield@harborlinefreight.example",
                         phone=None, company=None, budget=None, project_type=None, score=85)
        keep.custom_attributes = {"Country": "Canada"}
        third = person(session, full_name="Dana Whitfield", email="dana.w@gmail.com", phone="+1 312 555 0148")
        add_history(session, drop, "drop")
        add_history(session, keep, "keep")
        a = drop.analysis
        drop_analysis = {"score": a.score, "priority": a.priority.value, "engine": a.engine, "factors": a.factors,
                         "summary": a.summary, "recommendation": a.recommendation}
        steps_of = {lead.id: {f.step_id for f in followups.for_lead(session=session, lead_id=lead.id)}
                    for lead in (keep, drop)}
        assert steps_of[keep.id] == steps_of[drop.id], "both planned the same steps: the unique key must still hold"
        pending_of_drop = {f.id for f in followups.for_lead(session=session, lead_id=drop.id)
                           if f.status in followups.PENDING}
        pending_of_keep = {f.id for f in followups.for_lead(session=session, lead_id=keep.id)
                           if f.status in followups.PENDING}
        before = child_counts(session, keep.id, drop.id)
        kept_score = keep.score
    assert pending_of_drop and pending_of_keep and all(before.values())
    assert [p["other"]["id"] for p in pairs_of(engine, third.id)] == [drop.id]  # the same phone

    with session_scope(engine) as session:
        merged = duplicates.merge(session=session, keep_id=keep.id, drop_id=drop.id, actor="user:max")
        assert merged.id == keep.id

    with session_scope(engine) as session:
        assert session.get(Lead, drop.id) is None
        assert session.scalar(select(func.count()).select_from(LeadAnalysis)
                              .where(LeadAnalysis.lead_id == drop.id)) == 0
        after = child_counts(session, keep.id)
        assert after == {**before, "activities": before["activities"] + 2}, "two MERGED entries, nothing lost"
        assert child_counts(session, drop.id) == dict.fromkeys(before, 0)

        moved = {f.id: f for f in followups.for_lead(session=session, lead_id=keep.id)}
        assert {moved[i].status for i in pending_of_drop} == {FollowUpStatus.CANCELLED}
        assert {moved[i].cancel_reason for i in pending_of_drop} == {f"merged into Dana Whitfield (lead {keep.id})"}
        assert {moved[i].status for i in pending_of_keep} == {FollowUpStatus.SCHEDULED}, "the kept lead goes on"
        assert [f.status for f in moved.values() if f.origin_lead_id == drop.id].count(FollowUpStatus.SENT) == 1
        assert {f.origin_lead_id for f in moved.values()} == {keep.id, drop.id}

        lead = session.get(Lead, keep.id)
        assert (lead.phone, lead.company, lead.budget, lead.project_type) == (
            "+13125550148", "Harborline Freight", "$80k-$120k", "Web app")
        assert lead.budget_min is not None and lead.budget_currency == "USD"
        assert lead.custom_attributes == {"Lead Origin": "API", "Country": "Canada"}, "the kept values win"
        assert lead.created_at == JANUARY, "the earlier arrival stays"
        assert lead.score == kept_score and lead.analysis is not None

        merged_entries = list(session.scalars(select(Activity).where(
            Activity.lead_id == keep.id, Activity.kind == ActivityKind.MERGED)))
        assert len(merged_entries) == 2
        analysis_entry = next(a for a in merged_entries if "analysis" in a.data)
        merge_entry = next(a for a in merged_entries if "merged_lead" in a.data)
        assert analysis_entry.data["merged_lead_id"] == drop.id
        assert {k: analysis_entry.data["analysis"][k] for k in drop_analysis} == drop_analysis
        assert analysis_entry.body.startswith("Analysis of the merged lead Dana Whitfield: scored 85 (HIGH)")
        assert merge_entry.data["merged_lead"]["email"] == DANA["email"]
        assert merge_entry.data["filled"] == ["phone", "company", "project_type", "budget", "custom_attributes"]

        [event] = audit.get_all(session=session, action="lead.merged")
        assert (event.actor, event.target_id, event.detail["merged_lead_id"]) == ("user:max", keep.id, drop.id)
        as_text = json.dumps(event.detail).lower()
        assert not any(personal in as_text for personal in ("whitfield", "harborline", "+1312", "web app"))

    # The third lead's pair with the dropped lead now points at the kept one; the merged pair itself is gone.
    assert [p["other"]["id"] for p in pairs_of(engine, third.id)] == [keep.id]
    assert [p["other"]["id"] for p in pairs_of(engine, keep.id)] == [third.id]
    assert all(drop.id not in (p.lead_id, p.other_id) for p in all_pairs(engine))


def test_merging_an_unsubscribed_lead_stops_the_kept_leads_sequence_too(engine: Engine):
    with session_scope(engine) as session:
        drop = make_lead(session, email="dana.w@gmail.com")
        keep = make_lead(session)
    with session_scope(engine) as session:
        followups.unsubscribe_lead(session=session, lead_id=drop.id, via="link")

    with session_scope(engine) as session:
        duplicates.merge(session=session, keep_id=keep.id, drop_id=drop.id, actor="user:max")

    with session_scope(engine) as session:
        lead = session.get(Lead, keep.id)
        assert lead.auto_follow_up is False
        statuses = {f.status for f in followups.for_lead(session=session, lead_id=keep.id)}
        assert statuses == {FollowUpStatus.CANCELLED}


def test_bad_merges_are_refused_and_change_nothing(engine: Engine):
    with session_scope(engine) as session:
        lead = make_lead(session)
        other = make_lead(session)

    with session_scope(engine) as session, pytest.raises(ValidationFailed, match="merged into itself"):
        duplicates.merge(session=session, keep_id=lead.id, drop_id=lead.id, actor="user:max")
    with session_scope(engine) as session, pytest.raises(NotFound, match="no merged lead"):
        duplicates.merge(session=session, keep_id=lead.id, drop_id="01NOSUCHLEAD", actor="user:max")
    with session_scope(engine) as session, pytest.raises(NotFound, match="no kept lead"):
        duplicates.merge(session=session, keep_id="01NOSUCHLEAD", drop_id=other.id, actor="user:max")
    with session_scope(engine) as session, pytest.raises(NotFound):
        duplicates.dismiss(session=session, candidate_id="01NOSUCHPAIR", actor="user:max")

    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 2
        assert audit.get_all(session=session, action="lead.merged") == []
        assert session.scalar(select(func.count()).select_from(Activity)
                              .where(Activity.kind == ActivityKind.MERGED)) == 0


# --- cost at 20,000 leads -------------------------------------------------------------------------------------------

SYLLABLES = ("ka lo mi ra te su na vo li de ber gan tor wel fin mar sel dor han rik bel ston ley ford wood ter ner "
             "son ik an el").split()


def _word(rnd: random.Random, low: int, high: int) -> str:
    return "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(low, high)))


def seed_leads(engine: Engine, count: int) -> None:
    """`count` leads with varied names, companies and addresses, inserted in bulk (no analysis needed here)."""
    rnd = random.Random(6)
    firsts = sorted({_word(rnd, 1, 2).capitalize() for _ in range(600)})
    lasts = sorted({_word(rnd, 2, 3).capitalize() for _ in range(6000)})
    companies = sorted({f"{_word(rnd, 2, 3).capitalize()} {rnd.choice(['Labs', 'Foods', 'Freight', 'Studio'])}"
                        for _ in range(8000)})
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        first, last, company = rnd.choice(firsts), rnd.choice(lasts), rnd.choice(companies)
        domain = (f"{company.split()[0].lower()}.example" if rnd.random() < 0.6
                  else rnd.choice(["gmail.com", "outlook.com", "yahoo.com"]))
        rows.append({"id": new_id(), "full_name": f"{first} {last}", "email": f"{first}.{last}{i}@{domain}".lower(),
                     "phone": f"+1312{rnd.randrange(10**7):07d}" if rnd.random() < 0.5 else None, "company": company,
                     "message": "Looking for a partner for our next project.", "source": "import",
                     "status": "NEW", "score": 50, "priority": "MEDIUM", "needs_review": False,
                     "auto_follow_up": False, "reanalyze_attempts": 0, "custom_attributes": {},
                     "created_at": start + timedelta(minutes=i), "updated_at": start + timedelta(minutes=i)})
    with engine.begin() as connection:
        for offset in range(0, count, 5_000):
            connection.execute(insert(Lead), rows[offset:offset + 5_000])
    if engine.dialect.name == "postgresql":
        # What autovacuum does in a running database: without it the trigram index's pending list (20,000 rows
        # inserted at once) makes the planner price every index search above a sequential scan.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE leads"))


def lead_rows_examined(session: Session, statement: str, parameters: Any) -> int:
    """Rows PostgreSQL read from `leads` (and its indexes) to answer a statement, from EXPLAIN ANALYZE."""
    [[plan]] = session.connection().exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                                                    parameters).all()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    examined, nodes = 0, [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        assert node["Node Type"] != "Seq Scan", f"a sequential scan: {node}"
        if node["Node Type"] in ("Bitmap Index Scan", "Index Scan", "Index Only Scan"):
            examined += node["Actual Rows"] * node.get("Actual Loops", 1)
        examined += node.get("Rows Removed by Index Recheck", 0) + node.get("Rows Removed by Filter", 0)
    return examined


def test_detect_reads_a_bounded_number_of_rows_with_20000_leads(engine: Engine,
                                                               record_property: pytest.RecordProperty):
    seed_leads(engine, 20_000)
    with session_scope(engine) as session:
        # The true duplicate is the oldest lead in the table: found through the company domain all the same.
        twin = session.get(Lead, session.scalar(select(Lead.id).order_by(Lead.created_at).limit(1)))
        twin.full_name, twin.email, twin.company = "Dana Whitfield", "dana@harborlinefreight.example", "Harborline"
    with session_scope(engine) as session:
        lead = make_lead(session, full_name="Dana Whitfeld", email="d.whitfeld@harborlinefreight.example",
                         phone="+44 20 7946 0958", company="Harborline Freight Ltd")

    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    timings = []
    with session_scope(engine) as session:
        lead = session.get(Lead, lead.id)
        event.listen(engine, "before_cursor_execute", capture)
        try:
            for _ in range(10):
                statements.clear()
                started = time.perf_counter()
                found = duplicates.detect(session=session, lead=lead)
                timings.append((time.perf_counter() - started) * 1000)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        assert [c.other_id for c in found] == [twin.id]

        on_leads = [(s, p) for s, p in statements if "FROM leads" in s]
        assert len(statements) <= 3 and len(on_leads) == 2, [s[:80] for s, _ in statements]
        if engine.dialect.name == "postgresql":
            examined = sum(lead_rows_examined(session, s, p) for s, p in on_leads)
            assert examined < 300, f"{examined} rows read for one lead"
        else:
            steps = [row[3] for s, p in on_leads
                     for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + s, p)]
            scans = [step for step in steps if step.startswith("SCAN leads")]
            # Only the email index itself (never the table), and the newest leads by the created_at index (LIMIT).
            assert set(scans) <= {"SCAN leads USING COVERING INDEX ix_leads_email",
                                  "SCAN leads USING INDEX ix_leads_created_at_id"}, steps
    median = sorted(timings)[len(timings) // 2]
    record_property("detect_ms_at_20000_leads", f"{engine.dialect.name}: {median:.1f} ms")
    print(f"detect at 20,000 leads on {engine.dialect.name}: median {median:.1f} ms")
