"""Every admin change leaves an audit entry naming who did it, and no secret."""

import pytest

from core import api_keys, app_settings, audit, users
from core.errors import NotFound
from core.profile import BusinessProfile, ScoringConfig
from db.models import Role
from db.session import session_scope


def trail(engine):
    with session_scope(engine) as session:
        return [(e.action, e.actor, e.target_type, e.target_id, e.detail) for e in audit.get_all(session=session)]


def test_admin_writes_are_audited_without_secrets(engine):
    with session_scope(engine) as session:
        user = users.create(session=session, username="sam", password="long enough pw 1", role=Role.STAFF,
                            actor="user:root")
        key, secret = api_keys.create(session=session, name="n8n", created_by="user:root")
        api_keys.revoke(session=session, key_id=key.id, actor="user:root")
        app_settings.set_profile(session=session, profile=BusinessProfile(business_name="Acme"), actor="user:root")
        app_settings.set_scoring(session=session, scoring=ScoringConfig(high_min=85), actor="user:root")
        app_settings.set_allowed_origins(session=session, origins=["https://acme.example"], actor="user:root")
    events = trail(engine)
    assert {(a, actor, t) for a, actor, t, _id, _d in events} == {
        ("user.created", "user:root", "user"), ("api_key.created", "user:root", "api_key"),
        ("api_key.revoked", "user:root", "api_key"), ("settings.changed", "user:root", "setting")}
    assert {target for a, _actor, _t, target, _d in events if a == "settings.changed"} == {
        app_settings.PROFILE, app_settings.SCORING, app_settings.ALLOWED_ORIGINS}
    assert ("user.created", "user:root", "user", user.id, {"username": "sam", "role": "staff"}) in events
    flat = repr(events)
    assert secret not in flat and "long enough pw 1" not in flat and "Acme" not in flat


def test_revoking_a_key_that_does_not_exist_says_so(engine):
    with session_scope(engine) as session, pytest.raises(NotFound):
        api_keys.revoke(session=session, key_id="no-such-key", actor="user:root")
