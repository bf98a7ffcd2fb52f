"""The authenticated lead API as an integration (n8n, a CRM, a script) sees it, checked against the database."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select, update
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.routes import Api
from core import api_keys, users
from db.models import Activity, ActivityKind, IdempotencyRecord, Lead, LeadAnalysis, Role
from db.session import make_engine, session_scope
from tests.conftest import lead_payload

KIB = 1024
NOTHING = {"leads": 0, "analyses": 0, "activities": 0, "idempotency": 0}


# --- helpers ------------------------------------------------------------------------------------------------------

def counts(engine: Engine) -> dict[str, int]:
    """How many rows intake could have written, per table."""
    tables = {"leads": Lead, "analyses": LeadAnalysis, "activities": Activity, "idempotency": IdempotencyRecord}
    with session_scope(engine) as session:
        return {name: session.scalar(select(func.count()).select_from(model)) for name, model in tables.items()}


def error_fields(response: Any) -> set[str]:
    """The fields named in a contract error body (and a check that it is one)."""
    body = response.json()
    assert set(body) == {"errors"}, body
    assert all(set(e) == {"field", "message"} and e["message"] for e in body["errors"]), body
    return {e["field"] for e in body["errors"]}


def post_lead(api: TestClient, **overrides: Any) -> dict[str, Any]:
    """Creates a lead through the API and returns it."""
    response = api.post("/api/leads", json=lead_payload(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


def set_created_at(engine: Engine, lead_id: str, when: datetime) -> None:
    with session_scope(engine) as session:
        session.execute(update(Lead).where(Lead.id == lead_id).values(created_at=when))


def timeline(engine: Engine, lead_id: str) -> list[Activity]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Activity).where(Activity.lead_id == lead_id)
                                    .order_by(Activity.created_at, Activity.id)))


def kinds(engine: Engine, lead_id: str) -> list[ActivityKind]:
    return [a.kind for a in timeline(engine, lead_id)]


def list_ids(api: TestClient, **params: Any) -> list[str]:
    response = api.get("/api/leads", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def make_user(engine: Engine, username: str) -> None:
    with session_scope(engine) as session:
        users.create(session=session, username=username, password="correct horse battery", role=Role.STAFF)


# A lead the rules engine should find weak: free mail, no company, no budget, a vague one-liner.
WEAK_LEAD = dict(full_name="Sam", email="sam1987@gmail.com", phone=None, company=None, budget=None,
                 project_type=None, message="how much does an app like uber cost?")


# --- creating a lead ------------------------------------------------------------------------------------------------

def test_create_answers_201_with_the_lead_and_its_rules_analysis(api):
    response = api.post("/api/leads", json=lead_payload())

    assert response.status_code == 201, response.text
    lead = response.json()
    assert lead["id"]
    assert lead["full_name"] == "Dana Whitfield"
    assert lead["company"] == "Harborline Freight"
    assert lead["status"] == "NEW"
    assert lead["assignee"] is None
    assert lead["source"] == "website"
    assert lead["budget"] == "$80k-$120k"
    assert lead["budget_amount"]["min"] == 80000
    assert lead["budget_amount"]["max"] == 120000
    assert lead["budget_amount"]["currency"] == "USD"
    analysis = lead["analysis"]
    assert analysis["engine"] == "rules"
    assert 0 <= analysis["score"] <= 100
    assert analysis["priority"] == "HIGH"
    assert analysis["score"] >= 80, "HIGH means a score of 80-100"
    assert analysis["summary"] and analysis["recommendation"]
    assert analysis["factors"], "the score must be explained"
    for factor in analysis["factors"]:
        assert set(factor) == {"name", "impact", "detail"}
        assert isinstance(factor["name"], str) and factor["name"]
        assert isinstance(factor["impact"], int)
        assert isinstance(factor["detail"], str)


def test_get_returns_the_lead_as_created(api):
    created = post_lead(api)

    response = api.get(f"/api/leads/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_lead_without_source_gets_source_api(api):
    body = lead_payload()
    del body["source"]
    assert api.post("/api/leads", json=body).json()["source"] == "api"


def test_whitespace_is_trimmed_and_email_lower_cased(api):
    lead = post_lead(api, full_name="  Dana Whitfield \n", email="  Dana.Whitfield@HarborlineFreight.EXAMPLE ",
                     company="\tHarborline Freight  ", budget="   ", project_type=" Web app ")

    assert lead["full_name"] == "Dana Whitfield"
    assert lead["email"] == "dana.whitfield@harborlinefreight.example"
    assert lead["company"] == "Harborline Freight"
    assert lead["project_type"] == "Web app"
    assert lead["budget"] is None, "a blank optional field is no value, not an empty string"
    with session_scope(api.engine) as session:
        stored = session.get(Lead, lead["id"])
        assert (stored.full_name, stored.email) == ("Dana Whitfield", "dana.whitfield@harborlinefreight.example")


@pytest.mark.parametrize(("typed", "e164"), [
    ("+44 20 7946 0958", "+442079460958"),
    ("+49 30 901820", "+4930901820"),
    ("+1 (312) 555-0148", "+13125550148"),
])
def test_international_phone_is_stored_as_e164(api, typed, e164):
    lead = post_lead(api, phone=typed)

    assert lead["phone"] == e164
    with session_scope(api.engine) as session:
        assert session.get(Lead, lead["id"]).phone == e164


def test_lead_and_analysis_are_saved_together_with_created_and_analyzed_entries(api):
    lead = post_lead(api)

    with session_scope(api.engine) as session:
        stored = session.get(Lead, lead["id"])
        assert stored is not None
        assert stored.analysis is not None
        assert stored.analysis.score == lead["analysis"]["score"] == stored.score
        assert stored.priority.value == lead["analysis"]["priority"]
    entries = timeline(api.engine, lead["id"])
    assert [e.kind for e in entries] == [ActivityKind.CREATED, ActivityKind.ANALYZED]
    assert all(e.actor.startswith("api:") for e in entries)
    assert counts(api.engine) == {"leads": 1, "analyses": 1, "activities": 2, "idempotency": 0}


# --- bad input: the right status and nothing written -------------------------------------------------------------

def assert_refused(response: Any, status: int, *fields: str) -> None:
    assert response.status_code == status, response.text
    named = error_fields(response)
    for field in fields:
        assert field in named, f"{field!r} not named in {response.json()}"


def test_missing_required_fields_are_each_named(api):
    response = api.post("/api/leads", json={"company": "Harborline Freight"})

    assert_refused(response, 422, "full_name", "email", "message")
    assert counts(api.engine) == NOTHING


@pytest.mark.parametrize("field", ["full_name", "email", "message"])
def test_a_blank_required_field_is_missing(api, field):
    response = api.post("/api/leads", json=lead_payload(**{field: "   "}))

    assert_refused(response, 422, field)
    assert counts(api.engine) == NOTHING


@pytest.mark.parametrize("email", ["not-an-email", "dana@", "@harborline.example", "dana whitfield@harborline.example",
                                   "dana@@harborline.example", "dana@harborline"])
def test_bad_email_is_refused(api, email):
    response = api.post("/api/leads", json=lead_payload(email=email))

    assert_refused(response, 422, "email")
    assert error_fields(response) == {"email"}
    assert counts(api.engine) == NOTHING


@pytest.mark.parametrize(("field", "value"), [
    ("full_name", 12345),
    ("message", ["We need", "a portal"]),
    ("email", {"address": "dana@harborline.example"}),
    ("company", True),
    ("phone", 3125550148),
])
def test_wrong_types_are_refused(api, field, value):
    response = api.post("/api/leads", json=lead_payload(**{field: value}))

    assert_refused(response, 422, field)
    assert counts(api.engine) == NOTHING


@pytest.mark.parametrize("body", [[lead_payload()], "a lead", 42, None])
def test_a_body_that_is_not_an_object_is_refused(api, body):
    response = api.post("/api/leads", json=body)

    assert_refused(response, 422, "body")
    assert counts(api.engine) == NOTHING


@pytest.mark.parametrize("content", [b'{"full_name": "Dana", ', b"full_name=Dana&email=d%40x.example", b"", b"  \n"])
def test_invalid_or_empty_json_is_refused(api, content):
    response = api.post("/api/leads", content=content, headers={"Content-Type": "application/json"})

    assert_refused(response, 422, "body")
    assert counts(api.engine) == NOTHING


def test_non_utf8_bytes_are_refused(api):
    content = b'\xff\xfe{"full_name": "Dana", "email": "dana@harborline.example", "message": "\xe9t\xe9"}'

    response = api.post("/api/leads", content=content, headers={"Content-Type": "application/json"})

    assert_refused(response, 422, "body")
    assert counts(api.engine) == NOTHING


# Within the size limit and JSON by the grammar, but more than Python's parser takes: too deep for its recursion,
# or an integer over its digit limit (sys.get_int_max_str_digits).
UNREADABLE_JSON = {
    "40000-open-brackets": b"[" * 40_000,
    "10000-nested-objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "5000-digit-number": b'{"full_name": ' + b"7" * 5000 + b', "email": "dana@harborline.example", "message": "Hi"}',
}


@pytest.mark.parametrize("content", list(UNREADABLE_JSON.values()), ids=list(UNREADABLE_JSON))
@pytest.mark.parametrize("route", ["POST /api/leads", "POST /api/leads/public", "PATCH /api/leads/{id}"])
def test_json_too_deep_or_with_a_huge_number_is_422_and_writes_nothing(api, route, content):
    method, path = route.split(" ")
    if "{id}" in path:
        lead = post_lead(api)
        path = path.replace("{id}", lead["id"])
    before = counts(api.engine)

    response = api.request(method, path, content=content, headers={"Content-Type": "application/json"})

    assert_refused(response, 422, "body")
    assert error_fields(response) == {"body"}
    assert counts(api.engine) == before
    if method == "POST":
        assert before == NOTHING
    else:
        assert api.get(path).json() == lead, "a refused PATCH changes nothing"


@pytest.mark.parametrize("field", ["full_name", "message", "company", "budget"])
def test_nul_character_in_a_field_is_refused(api, field):
    response = api.post("/api/leads", json=lead_payload(**{field: "Harbor\u0000line"}))

    assert_refused(response, 422, field)
    assert counts(api.engine) == NOTHING


def test_lone_surrogate_in_a_field_is_refused(api):
    # Valid JSON, but not text a database can store.
    raw = json.dumps(lead_payload(full_name="Dana \ud800 Whitfield")).encode()
    assert b"\\ud800" in raw

    response = api.post("/api/leads", content=raw, headers={"Content-Type": "application/json"})

    assert_refused(response, 422, "full_name")
    assert counts(api.engine) == NOTHING


@pytest.mark.parametrize(("field", "limit"), [
    ("full_name", 200), ("message", 10_000), ("company", 200), ("budget", 200), ("project_type", 100),
])
def test_text_over_its_bound_is_refused_and_at_its_bound_accepted(api, field, limit):
    too_long = api.post("/api/leads", json=lead_payload(**{field: "a" * (limit + 1)}))

    assert_refused(too_long, 422, field)
    assert counts(api.engine) == NOTHING

    at_limit = api.post("/api/leads", json=lead_payload(**{field: "a" * limit}))
    assert at_limit.status_code == 201, at_limit.text
    assert at_limit.json()[field] == "a" * limit


@pytest.mark.parametrize(("field", "value"), [
    ("email", "d" * 64 + "@" + ("a" * 60 + ".") * 4 + "example"),
    ("phone", "+1 312 555 0148" + " 0" * 15),
    ("source", "w" * 51),
])
def test_other_fields_over_their_bound_are_refused(api, field, value):
    response = api.post("/api/leads", json=lead_payload(**{field: value}))

    assert_refused(response, 422, field)
    assert counts(api.engine) == NOTHING


def _padded_body(total_bytes: int) -> bytes:
    """A JSON lead body of exactly `total_bytes`, padded in the message."""
    empty = json.dumps(lead_payload(message="")).encode()
    padding = b"x" * (total_bytes - len(empty))
    body = empty.replace(b'"message": ""', b'"message": "' + padding + b'"')
    assert len(body) == total_bytes
    return body


def test_one_megabyte_body_is_refused_with_413(api):
    response = api.post("/api/leads", content=_padded_body(1024 * KIB), headers={"Content-Type": "application/json"})

    assert_refused(response, 413, "body")
    assert counts(api.engine) == NOTHING


def test_body_just_over_64_kib_is_413_and_just_under_is_judged_on_its_fields(api):
    over = api.post("/api/leads", content=_padded_body(64 * KIB + 1), headers={"Content-Type": "application/json"})
    assert_refused(over, 413, "body")

    under = api.post("/api/leads", content=_padded_body(64 * KIB), headers={"Content-Type": "application/json"})
    assert under.status_code == 422, under.text
    assert error_fields(under) == {"message"}, "within the size limit the message's own bound applies"
    assert counts(api.engine) == NOTHING


def test_streamed_body_over_64_kib_without_content_length_is_413(api):
    body = _padded_body(200 * KIB)
    chunks = (body[i:i + 8 * KIB] for i in range(0, len(body), 8 * KIB))

    response = api.post("/api/leads", content=chunks, headers={"Content-Type": "application/json"})

    assert_refused(response, 413, "body")
    assert counts(api.engine) == NOTHING


# --- hostile text is stored verbatim and harmless ---------------------------------------------------------------

def test_sql_and_html_payloads_are_stored_verbatim(api):
    before = post_lead(api, full_name="Ada Lovelace", email="ada@analytical.example")
    hostile = {"full_name": "Robert'); DROP TABLE leads;--", "company": "<script>alert(1)</script>",
               "message": "Please call me <img src=x onerror=alert(1)> about a portal; ' OR '1'='1"}

    created = post_lead(api, **hostile)
    after = post_lead(api, full_name="Grace Hopper", email="grace@cobol.example")

    read_back = api.get(f"/api/leads/{created['id']}").json()
    for field, value in hostile.items():
        assert created[field] == value
        assert read_back[field] == value
    assert inspect(api.engine).has_table("leads")
    assert set(list_ids(api)) == {before["id"], created["id"], after["id"]}
    with session_scope(api.engine) as session:
        stored = session.get(Lead, created["id"])
        assert (stored.full_name, stored.company, stored.message) == tuple(hostile.values())


# --- authentication -------------------------------------------------------------------------------------------------

def assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_fields(response) == {"Authorization"}


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer   ", "Basic ZGFuYTpzZWNyZXQ=", "Token lo_abc_def",
    "Bearer lo_deadbeef_not-a-real-key", "Bearer something-else-entirely",
])
def test_missing_or_bad_credentials_get_401_and_write_nothing(api, authorization):
    headers = dict(api.headers)
    headers.pop("authorization", None)
    if authorization is not None:
        headers["Authorization"] = authorization
    client = TestClient(api.app, headers=headers)

    assert_401(client.post("/api/leads", json=lead_payload()))
    assert_401(client.get("/api/leads"))
    assert counts(api.engine) == NOTHING


def test_a_real_key_prefix_with_the_wrong_secret_gets_401(api):
    prefix = api.key.split("_")[1]
    forged = TestClient(api.app, headers={"Authorization": f"Bearer lo_{prefix}_{'A' * 43}"})

    assert_401(forged.post("/api/leads", json=lead_payload()))
    assert counts(api.engine) == NOTHING


def test_revoked_key_gets_401(api):
    assert api.get("/api/leads").status_code == 200
    with session_scope(api.engine) as session:
        key_id = next(k.id for k in api_keys.get_all(session=session) if k.name == "tests")
        api_keys.revoke(session=session, key_id=key_id)

    assert_401(api.post("/api/leads", json=lead_payload()))
    assert counts(api.engine) == NOTHING


def test_key_from_environment_works_and_others_do_not(make_api, make_settings):
    api = make_api(make_settings(leadops_api_key="env-key-for-n8n-0123456789"))
    env_client = TestClient(api.app, headers={"Authorization": "Bearer env-key-for-n8n-0123456789"})

    response = env_client.post("/api/leads", json=lead_payload())

    assert response.status_code == 201, response.text
    assert counts(api.engine)["leads"] == 1
    near_miss = TestClient(api.app, headers={"Authorization": "Bearer env-key-for-n8n-012345678"})
    assert_401(near_miss.get("/api/leads"))


# --- rate limit -----------------------------------------------------------------------------------------------------

KEY_BURST, KEY_PER_MINUTE = 60, 600


def test_a_key_past_its_burst_gets_429_with_retry_after_and_writes_nothing(api):
    # Every keyed route draws on the key's one bucket: quick reads of an unknown lead use up the burst (the bucket
    # refills 10 a second, far slower than these), then the post is refused.
    answers = []
    while len(answers) < 4 * KEY_BURST and (not answers or answers[-1].status_code == 404):
        answers.append(api.get("/api/leads/no-such-lead"))
    assert len(answers) - 1 >= KEY_BURST, f"the burst is {KEY_BURST}, but only {len(answers) - 1} got through"
    limited = api.post("/api/leads", json=lead_payload(email="burst@harborline.example"))

    assert limited.status_code == 429, limited.text
    assert limited.headers["Retry-After"].isdigit()
    assert int(limited.headers["Retry-After"]) > 0
    assert error_fields(limited) == {"request"}
    message = limited.json()["errors"][0]["message"]
    assert "API key" in message, message
    assert f"{KEY_BURST} requests at once" in message and f"{KEY_PER_MINUTE} a minute" in message, message
    assert f"try again in {limited.headers['Retry-After']} s" in message, message
    assert counts(api.engine)["leads"] == 0, "the refused post saved nothing"

    with session_scope(api.engine) as session:
        _key, secret = api_keys.create(session=session, name="crm")
    other_key = TestClient(api.app, headers={"Authorization": f"Bearer {secret}"})
    assert other_key.post("/api/leads", json=lead_payload()).status_code == 201, "the limit is per API key"


# --- unknown leads --------------------------------------------------------------------------------------------------

def test_unknown_id_is_404_for_get_and_patch(api):
    post_lead(api)
    before = counts(api.engine)

    got = api.get("/api/leads/01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    patched = api.patch("/api/leads/01ZZZZZZZZZZZZZZZZZZZZZZZZ", json={"status": "WON"})

    assert got.status_code == 404
    assert error_fields(got) == {"id"}
    assert patched.status_code == 404
    assert error_fields(patched) == {"id"}
    assert counts(api.engine) == before


# --- Idempotency-Key ------------------------------------------------------------------------------------------------

def test_repeated_idempotency_key_replays_the_first_answer(api):
    headers = {"Idempotency-Key": "order-7781"}
    first = api.post("/api/leads", json=lead_payload(), headers=headers)
    second = api.post("/api/leads", json=lead_payload(), headers=headers)

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert counts(api.engine) == {"leads": 1, "analyses": 1, "activities": 2, "idempotency": 1}


def test_idempotency_key_reused_with_another_body_is_422(api):
    headers = {"Idempotency-Key": "order-7781"}
    first = api.post("/api/leads", json=lead_payload(), headers=headers)

    reused = api.post("/api/leads", json=lead_payload(full_name="Someone Else"), headers=headers)

    assert first.status_code == 201
    assert_refused(reused, 422, "Idempotency-Key")
    assert counts(api.engine)["leads"] == 1
    assert list_ids(api) == [first.json()["id"]]


def test_same_idempotency_key_from_another_api_key_is_another_request(api):
    with session_scope(api.engine) as session:
        _key, secret = api_keys.create(session=session, name="crm")
    other = TestClient(api.app, headers={"Authorization": f"Bearer {secret}"})
    headers = {"Idempotency-Key": "lead-1"}

    mine = api.post("/api/leads", json=lead_payload(), headers=headers)
    theirs = other.post("/api/leads", json=lead_payload(), headers=headers)

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert counts(api.engine)["leads"] == 2


@pytest.mark.parametrize("key", ["   ", "k" * 201])
def test_blank_or_overlong_idempotency_key_is_422(api, key):
    response = api.post("/api/leads", json=lead_payload(), headers={"Idempotency-Key": key})

    assert_refused(response, 422, "Idempotency-Key")
    assert counts(api.engine) == NOTHING


def test_concurrent_requests_with_one_idempotency_key_create_one_lead(api):
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    responses: list[Any] = []
    failures: list[BaseException] = []

    def post() -> None:
        client = TestClient(api.app, headers=dict(api.headers))
        barrier.wait()
        try:
            responses.append(client.post("/api/leads", json=lead_payload(), headers={"Idempotency-Key": "race-1"}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=post) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures, failures
    assert [r.status_code for r in responses] == [201] * threads_n, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert counts(api.engine) == {"leads": 1, "analyses": 1, "activities": 2, "idempotency": 1}


# --- listing --------------------------------------------------------------------------------------------------------

def test_list_is_newest_first(api):
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    ids = [post_lead(api, email=f"lead{i}@harborline.example")["id"] for i in range(4)]
    for offset, lead_id in zip([2, 0, 3, 1], ids, strict=True):
        set_created_at(api.engine, lead_id, base + timedelta(days=offset))

    response = api.get("/api/leads")

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert [item["id"] for item in body["items"]] == [ids[2], ids[0], ids[3], ids[1]]
    assert body["items"][0]["created_at"].startswith("2025-03-04T12:00:00")


def test_list_filters_by_status_priority_and_score(api):
    strong = post_lead(api)
    weak = post_lead(api, **WEAK_LEAD)
    won = post_lead(api, email="won@harborline.example")
    assert api.patch(f"/api/leads/{won['id']}", json={"status": "WON"}).status_code == 200
    strong_score, weak_score = strong["analysis"]["score"], weak["analysis"]["score"]
    assert weak["analysis"]["priority"] == "LOW" and weak_score < strong_score

    assert list_ids(api, status="WON") == [won["id"]]
    assert set(list_ids(api, status="NEW")) == {strong["id"], weak["id"]}
    assert list_ids(api, status="LOST") == []
    assert list_ids(api, priority="LOW") == [weak["id"]]
    assert set(list_ids(api, priority="HIGH")) == {strong["id"], won["id"]}
    assert set(list_ids(api, min_score=weak_score + 1)) == {strong["id"], won["id"]}
    assert set(list_ids(api, min_score=weak_score)) == {strong["id"], weak["id"], won["id"]}
    assert list_ids(api, status="NEW", priority="HIGH") == [strong["id"]]


def test_list_filters_by_created_after(api):
    jan, feb, mar = (datetime(2025, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    ids = {}
    for name, when in (("jan", jan), ("feb", feb), ("mar", mar)):
        ids[name] = post_lead(api, email=f"{name}@harborline.example")["id"]
        set_created_at(api.engine, ids[name], when)

    assert list_ids(api, created_after="2025-01-15") == [ids["mar"], ids["feb"]]
    assert list_ids(api, created_after="2025-02-15T00:00:00Z") == [ids["mar"]]
    assert list_ids(api, created_after="2025-02-15T00:00:00+05:00") == [ids["mar"]]
    assert list_ids(api, created_after="2025-04-01") == []


def test_limit_caps_the_page(api):
    for i in range(4):
        post_lead(api, email=f"l{i}@harborline.example")

    response = api.get("/api/leads", params={"limit": 2})

    assert len(response.json()["items"]) == 2
    assert response.json()["next_cursor"]


def walk(api: TestClient, **params: Any) -> list[list[str]]:
    """Every page of the list, following next_cursor to the end."""
    pages, cursor = [], None
    for _ in range(20):
        response = api.get("/api/leads", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("paging never ended")


@pytest.mark.parametrize("same_time", [False, True], ids=["distinct-times", "all-at-one-instant"])
def test_cursor_paging_walks_every_lead_exactly_once(api, same_time):
    base = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)
    ids = []
    for i in range(7):
        ids.append(post_lead(api, email=f"page{i}@harborline.example")["id"])
        set_created_at(api.engine, ids[-1], base if same_time else base + timedelta(minutes=i))

    pages = walk(api, limit=3)

    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [lead_id for page in pages for lead_id in page]
    assert len(flat) == len(set(flat)) == 7
    assert set(flat) == set(ids)
    if not same_time:
        assert flat == list(reversed(ids))
    assert flat == list_ids(api, limit=50), "paging gives the same order as one big page"


def test_cursor_paging_keeps_the_filters(api):
    for i in range(5):
        post_lead(api, email=f"strong{i}@harborline.example")
    weak_ids = {post_lead(api, **{**WEAK_LEAD, "email": f"weak{i}@gmail.com"})["id"] for i in range(3)}

    pages = walk(api, priority="LOW", limit=2)

    assert [len(p) for p in pages] == [2, 1]
    assert {lead_id for page in pages for lead_id in page} == weak_ids


@pytest.mark.parametrize(("param", "value"), [
    ("status", "FOO"), ("priority", "URGENT"), ("min_score", "abc"), ("min_score", "-1"), ("min_score", "101"),
    ("min_score", "1.5"), ("min_score", "--5"), ("limit", "0"), ("limit", "1000"), ("limit", "ten"),
    ("limit", "²"), ("limit", "9" * 5000), ("created_after", "yesterday"), ("created_after", "2025-13-45"),
    ("created_after", "01/02/2025"), ("created_after", "0001-01-01T00:00:00+05:00"),
    ("cursor", "garbage"), ("cursor", "!!!"), ("cursor", "WzFd"),
])
def test_bad_list_parameters_are_422_naming_them(api, param, value):
    post_lead(api)

    response = api.get("/api/leads", params={param: value})

    assert_refused(response, 422, param)
    assert error_fields(response) == {param}


@pytest.mark.parametrize("moment", ["2025-01-01T00:00:00", "0001-01-01T00:00:00+05:00"], ids=["no-zone", "year-1"])
def test_tampered_cursor_is_422(api, moment):
    for i in range(3):
        post_lead(api, email=f"c{i}@harborline.example")
    # Well-formed, but with a time this API never writes into a cursor.
    forged = base64.urlsafe_b64encode(json.dumps([moment, "X"]).encode()).decode().rstrip("=")

    response = api.get("/api/leads", params={"cursor": forged})

    assert_refused(response, 422, "cursor")


# --- PATCH ----------------------------------------------------------------------------------------------------------

def test_patch_status_changes_it_and_records_the_change(api):
    lead = post_lead(api)

    response = api.patch(f"/api/leads/{lead['id']}", json={"status": "CONTACTED"})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CONTACTED"
    assert api.get(f"/api/leads/{lead['id']}").json()["status"] == "CONTACTED"
    change = [a for a in timeline(api.engine, lead["id"]) if a.kind == ActivityKind.STATUS_CHANGED]
    assert len(change) == 1
    assert change[0].data == {"from": "NEW", "to": "CONTACTED"}


def test_patch_to_the_same_status_records_nothing(api):
    lead = post_lead(api)

    response = api.patch(f"/api/leads/{lead['id']}", json={"status": "NEW"})

    assert response.status_code == 200
    assert ActivityKind.STATUS_CHANGED not in kinds(api.engine, lead["id"])


def test_patch_note_adds_it_to_the_timeline(api):
    lead = post_lead(api)
    note = "Called Dana: wants a demo Thursday 3pm <b>CT</b>"

    response = api.patch(f"/api/leads/{lead['id']}", json={"note": f"  {note}  "})

    assert response.status_code == 200, response.text
    notes = [a for a in timeline(api.engine, lead["id"]) if a.kind == ActivityKind.NOTE]
    assert [n.body for n in notes] == [note]
    assert response.json()["status"] == "NEW"


def test_patch_assignee_assigns_and_null_unassigns(api):
    make_user(api.engine, "priya")
    lead = post_lead(api)

    assigned = api.patch(f"/api/leads/{lead['id']}", json={"assignee": "priya"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == "priya"
    assert api.get(f"/api/leads/{lead['id']}").json()["assignee"] == "priya"

    unassigned = api.patch(f"/api/leads/{lead['id']}", json={"assignee": None})
    assert unassigned.status_code == 200, unassigned.text
    assert unassigned.json()["assignee"] is None
    with session_scope(api.engine) as session:
        assert session.get(Lead, lead["id"]).assignee_id is None
    entries = [a for a in timeline(api.engine, lead["id"]) if a.kind == ActivityKind.ASSIGNED]
    assert [a.data["assignee"] for a in entries] == ["priya", None]


def test_patch_unknown_assignee_is_422_and_changes_nothing(api):
    lead = post_lead(api)
    before = counts(api.engine)

    response = api.patch(f"/api/leads/{lead['id']}", json={"status": "WON", "assignee": "ghost"})

    assert_refused(response, 422, "assignee")
    assert api.get(f"/api/leads/{lead['id']}").json()["status"] == "NEW", "a refused change is not half applied"
    assert counts(api.engine) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "DONE"}, "status"),
    ({"status": 3}, "status"),
    ({}, "body"),
    ({"score": 100}, "score"),
    ({"status": "WON", "email": "x@y.example"}, "email"),
    ({"note": "a" * 5001}, "note"),
    ({"note": "bad\u0000byte"}, "note"),
    ([{"status": "WON"}], "body"),
])
def test_bad_patch_is_422_naming_the_problem_and_changes_nothing(api, body, field):
    lead = post_lead(api)
    before = counts(api.engine)

    response = api.patch(f"/api/leads/{lead['id']}", json=body)

    assert_refused(response, 422, field)
    assert counts(api.engine) == before
    assert api.get(f"/api/leads/{lead['id']}").json() == lead


# --- health and jobs ------------------------------------------------------------------------------------------------

def test_health_is_ok_without_a_key(api):
    client = TestClient(api.app)

    response = client.get("/api/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_health_is_503_naming_the_database_when_it_is_unreachable(make_settings):
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 3})
    try:
        app = Starlette(routes=Api(engine=engine, settings=make_settings()).routes())

        response = TestClient(app).get("/api/health")
    finally:
        engine.dispose()

    assert response.status_code == 503
    body = response.json()
    assert body["status"] != "ok"
    assert body["database"] != "ok" and "unreachable" in body["database"]


def test_reanalyze_job_runs_and_answers_its_summary(api):
    post_lead(api)

    response = api.post("/api/jobs/reanalyze")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job"] == "reanalyze"
    assert body["summary"].startswith("reanalyze:")


def test_unknown_job_is_404_and_jobs_need_a_key(api):
    response = api.post("/api/jobs/nope")

    assert response.status_code == 404
    assert "reanalyze" in response.json()["errors"][0]["message"], "the answer lists the jobs there are"
    assert_401(TestClient(api.app).post("/api/jobs/reanalyze"))
