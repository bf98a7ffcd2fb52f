"""The admin's Webhooks tab: adding an endpoint shows its secret once, deleting asks first, failures can be retried."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import streamlit as st
from sqlalchemy import select, update
from standardwebhooks import Webhook
from streamlit.testing.v1 import AppTest

from core import webhooks
from core.config import get_settings
from core.display import plain
from db.models import DeliveryStatus, WebhookDelivery
from tests.pages.conftest import AppDb, open_page


@pytest.fixture
def admin(signed_in: Callable[..., AppTest]) -> AppTest:
    """The admin page, as an admin sees it."""
    at = open_page(signed_in("admin"), "pages/admin.py")
    assert not at.exception, at.exception
    return at


def endpoints(app_db: AppDb) -> list:  # noqa: ANN001
    with app_db.session() as session:
        return webhooks.get_all_endpoints(session=session)


def add(at: AppTest, name: str, url: str, types: list[str] | None = None) -> AppTest:
    at.text_input(key="new_webhook_name").input(name)
    at.text_input(key="new_webhook_url").input(url)
    if types:
        at.multiselect(key="new_webhook_types").set_value(types)
    at.button(key="FormSubmitter:new_webhook-Add endpoint").click()
    return at.run()


def test_with_no_endpoint_the_tab_says_what_to_do(admin: AppTest):
    assert "Webhooks" in [tab.label for tab in admin.tabs]
    assert any("No webhook endpoints yet" in i.value and "WEBHOOK_URL" in i.value for i in admin.info)


def test_an_added_endpoint_shows_its_secret_once(admin: AppTest, app_db: AppDb):
    at = add(admin, "n8n", "https://n8n.example.com/webhook/leadops?token=abc", ["lead.created", "followup.sent"])

    assert not at.exception and not at.error
    secret = next(c.value for c in at.code if c.value.startswith("whsec_"))
    Webhook(secret)  # a secret the Standard Webhooks libraries accept
    assert any("shown once" in w.value for w in at.warning)
    [saved] = endpoints(app_db)
    assert (saved.name, saved.secret, saved.event_types) == ("n8n", secret, ["lead.created", "followup.sent"])
    table = at.dataframe[-1].value
    assert list(table["name"]) == ["n8n"] and list(table["address"]) == ["https://n8n.example.com"]
    assert secret not in table.to_string() and "token" not in table.to_string()

    at.run()
    assert secret not in [c.value for c in at.code]


def test_a_bad_url_is_refused_next_to_its_field(admin: AppTest, app_db: AppDb):
    at = add(admin, "n8n", "ftp://files.example.com/in")

    assert [e.value for e in at.error] == [f"URL: {plain(webhooks.BAD_URL)}"]
    assert endpoints(app_db) == []


def test_deleting_an_endpoint_needs_the_confirmation(admin: AppTest, app_db: AppDb):
    at = add(admin, "zap", "https://hooks.zapier.example.com/catch/1")
    [saved] = endpoints(app_db)

    assert at.button(key=f"delete_webhook_{saved.id}").disabled
    at.checkbox(key=f"confirm_delete_webhook_{saved.id}").check()
    at.run()
    at.button(key=f"delete_webhook_{saved.id}").click()
    at.run()

    assert not at.exception and not at.error
    assert endpoints(app_db) == []
    assert any("Endpoint deleted" in s.value for s in at.success)


def test_an_endpoint_can_be_disabled_and_enabled_again(admin: AppTest, app_db: AppDb):
    at = add(admin, "n8n", "https://n8n.example.com/hook")
    [saved] = endpoints(app_db)

    at.button(key=f"disable_webhook_{saved.id}").click()
    at.run()
    assert not endpoints(app_db)[0].enabled
    at.run()
    at.button(key=f"enable_webhook_{saved.id}").click()
    at.run()

    assert not at.exception and not at.error
    assert endpoints(app_db)[0].enabled and endpoints(app_db)[0].disabled_reason is None


def test_rotating_a_secret_shows_the_new_one_once(admin: AppTest, app_db: AppDb):
    at = add(admin, "n8n", "https://n8n.example.com/hook")
    [saved] = endpoints(app_db)
    at.run()
    at.checkbox(key=f"confirm_rotate_webhook_{saved.id}").check()
    at.run()
    at.button(key=f"rotate_webhook_{saved.id}").click()
    at.run()

    rotated = endpoints(app_db)[0].secret
    assert rotated != saved.secret and rotated in [c.value for c in at.code]


def test_a_failed_delivery_can_be_retried(admin: AppTest, app_db: AppDb):
    at = add(admin, "crm", "https://crm.example.com/hook")
    with app_db.session() as session:
        webhooks.emit(session=session, type="lead.created", data={"id": "L1"})
        session.execute(update(WebhookDelivery).values(status=DeliveryStatus.FAILED, attempts=7, last_status_code=500,
                                                       last_error="HTTP 500: **not markdown** <b>boom</b>"))
    st.cache_data.clear()  # the page caches its reads for 30 s; this failure was made behind its back
    at.run()
    assert "HTTP 500: **not markdown** <b>boom</b>" in list(at.dataframe[-1].value["last error"])
    assert not any("not markdown" in m.value for m in at.markdown)  # what a receiver wrote is never rendered
    at.button(key="retry_delivery_button").click()
    at.run()

    assert not at.exception and not at.error
    with app_db.session() as session:
        [delivery] = session.scalars(select(WebhookDelivery)).all()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert any("queued again" in s.value for s in at.success)


def test_the_webhook_url_endpoint_is_listed_and_cannot_be_deleted_here(
        app_db: AppDb, signed_in: Callable[..., AppTest], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WEBHOOK_URL", "https://n8n.example.com/webhook/secret-path")
    get_settings.cache_clear()
    at = open_page(signed_in("admin"), "pages/admin.py")

    [env] = endpoints(app_db)
    assert env.from_env and env.last_error == webhooks.SECRET_UNSET
    table = at.dataframe[-1].value
    assert list(table["source"]) == ["WEBHOOK_URL"] and "secret-path" not in table.to_string()
    assert not [b for b in at.button if b.key == f"delete_webhook_{env.id}"]
