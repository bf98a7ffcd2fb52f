"""The `insights` job end to end: a closed week's report is written once and its digest mailed to who opted in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from core import users
from core.config import Settings
from db.models import InsightReport, Role
from db.session import session_scope
from jobs import registry
from tests.support.factories import make_lead
from tests.support.smtp_server import SmtpServer


def test_one_pass_writes_the_last_weeks_report_and_mails_the_digest(engine: Engine,
                                                                    make_settings: Callable[..., Settings]) -> None:
    with session_scope(engine) as session:
        for days in (3, 9, 12):
            make_lead(session, created_at=datetime.now(UTC) - timedelta(days=days))
        founder = users.create(session=session, username="fiona", password="correct horse battery",
                               role=Role.VIEWER, email="fiona@harbor.example")
        users.set_digest_opt_in(session=session, user_id=founder.id, opt_in=True, actor="user:fiona")
    with SmtpServer() as smtp:
        settings = make_settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_starttls=False,
                                 mail_from="reports@harbor.example")
        first = registry.run("insights", engine=engine, settings=settings)
        second = registry.run("insights", engine=engine, settings=settings)
        mailed = list(smtp.messages)

    assert "weekly" in first and "generated" in first, first
    assert "generated" not in second, second
    with session_scope(engine) as session:
        reports = session.scalar(select(func.count()).select_from(InsightReport))
    assert reports >= 1
    assert mailed and {m["To"] for m in mailed} == {"fiona@harbor.example"}
    assert len(mailed) == reports  # one digest per report, not one per pass
