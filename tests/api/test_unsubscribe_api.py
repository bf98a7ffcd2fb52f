"""The unsubscribe link of follow-up emails as a lead, a mail client and a link scanner use it."""

from __future__ import annotations

from sqlalchemy import Engine, select

from core import unsubscribe
from db.models import FollowUp, FollowUpStatus, Lead, Suppression
from db.session import session_scope
from tests.conftest import ApiClient, lead_payload


def lead_with_sequence(api: ApiClient) -> str:
    answer = api.post("/api/leads", json=lead_payload(email="stop.me@harborline.example"))
    assert answer.status_code == 201
    return answer.json()["id"]


def link_path(engine: Engine, lead_id: str) -> str:
    with session_scope(engine) as session:
        return "/u/" + unsubscribe.token_for(session=session, lead_id=lead_id)


def pending(engine: Engine, lead_id: str) -> int:
    with session_scope(engine) as session:
        return len([f for f in session.scalars(select(FollowUp).where(FollowUp.lead_id == lead_id))
                    if f.status == FollowUpStatus.SCHEDULED])


def test_opening_the_link_asks_first_and_unsubscribes_nothing(api: ApiClient) -> None:
    lead_id = lead_with_sequence(api)
    path = link_path(api.engine, lead_id)

    page = api.get(path, headers={"Authorization": ""})

    assert page.status_code == 200
    assert "Press the button to stop all follow-up messages" in page.text
    assert f'action="{path}"' in page.text and "nonce-" in page.headers["content-security-policy"]
    assert pending(api.engine, lead_id) > 0


def test_one_click_post_unsubscribes_and_stops_every_pending_follow_up(api: ApiClient) -> None:
    lead_id = lead_with_sequence(api)
    path = link_path(api.engine, lead_id)

    # What a mail client sends for RFC 8058 one-click: no cookie, no key, this exact form body.
    answer = api.post(path, content="List-Unsubscribe=One-Click", headers={
        "Authorization": "", "Content-Type": "application/x-www-form-urlencoded"})

    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert pending(api.engine, lead_id) == 0
    with session_scope(api.engine) as session:
        assert session.get(Suppression, "stop.me@harborline.example").reason == "UNSUBSCRIBED"
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.auto_follow_up is False
    # Pressing again, or opening the link later, says the same and changes nothing.
    assert api.post(path, headers={"Authorization": ""}).status_code == 200
    assert "You are unsubscribed" in api.get(path, headers={"Authorization": ""}).text


def test_a_forged_or_cut_link_is_refused(api: ApiClient) -> None:
    lead_id = lead_with_sequence(api)
    path = link_path(api.engine, lead_id)

    for bad in (path[:-3], f"/u/{lead_id}.AAAAAAAAAAAAAAAAAAAAAAAA", "/u/nonsense"):
        assert api.post(bad, headers={"Authorization": ""}).status_code == 404
        assert "This link is not valid" in api.get(bad, headers={"Authorization": ""}).text
    assert pending(api.engine, lead_id) > 0
