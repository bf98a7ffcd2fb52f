"""Two jobs processes started at once on 1,000 due follow-ups: each message is delivered exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import time, timedelta

from sqlalchemy import Engine, func, insert, select

from core import sequences
from db.models import Channel, FollowUp, FollowUpStatus, Lead, LeadStatus, Priority, new_id, utcnow
from db.session import session_scope
from tests.conftest import PROJECT
from tests.support.smtp_server import SmtpServer

COUNT = 1_000


def seed_due_emails(engine: Engine, count: int) -> None:
    """`count` leads, each with its first LOW-sequence email due a minute ago (written in two bulk inserts)."""
    with session_scope(engine) as session:
        sequences.set_send_window(session=session, days=list(range(7)), start=time(0, 0),
                                  end=time(23, 59, 59, 999999), actor="test")
        step = sequences.get_steps(session=session, priority=Priority.LOW)[0]
        assert step.channel == Channel.EMAIL
        now = utcnow()
        leads = [dict(id=new_id(), full_name=f"Lead {i:04d}", email=f"lead{i:04d}@client.example",
                      message="We need a quote for a small website.", source="test", status=LeadStatus.NEW,
                      score=30, priority=Priority.LOW, needs_review=False, auto_follow_up=True,
                      reanalyze_attempts=0, created_at=now, updated_at=now) for i in range(count)]
        session.execute(insert(Lead.__table__), leads)
        session.execute(insert(FollowUp.__table__), [
            dict(id=new_id(), lead_id=lead["id"], step_id=step.id, number=1, channel=Channel.EMAIL,
                 status=FollowUpStatus.SCHEDULED, due_at=now - timedelta(minutes=1), attempts=0,
                 created_at=now, updated_at=now) for lead in leads])


def test_two_jobs_processes_deliver_each_due_follow_up_exactly_once(engine: Engine, db_url: str) -> None:
    seed_due_emails(engine, COUNT)
    with SmtpServer() as smtp:
        env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)},
               "DATABASE_URL": db_url, "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port),
               "SMTP_STARTTLS": "false", "MAIL_FROM": "hello@harbor.example", "PYTHONPATH": str(PROJECT)}
        workers = [subprocess.Popen([sys.executable, "-m", "jobs", "run", "followups"], cwd=PROJECT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [worker.communicate(timeout=300) for worker in workers]
        received = list(smtp.messages)

    for worker, (out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err[-2000:]
        assert out.startswith("followups: ")
    ids = Counter(message["Message-ID"] for message in received)
    assert len(received) == COUNT and len(ids) == COUNT, f"{len(received)} messages, {len(ids)} distinct"
    assert max(ids.values()) == 1
    with session_scope(engine) as session:
        by_status = dict(session.execute(select(FollowUp.status, func.count()).group_by(FollowUp.status)).all())
        claimed = session.scalar(select(func.count()).where(FollowUp.claim_token.is_not(None)))
    assert by_status == {FollowUpStatus.SENT: COUNT}
    assert claimed == 0
    # Their summary lines add up to the messages received: no message was counted (or sent) twice.
    sent_counts = [int(out.split()[1]) for out, _ in results]
    assert sum(sent_counts) == COUNT
