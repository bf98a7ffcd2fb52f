"""Follow-up sending: messages per second of one `followups` pass against a local SMTP server.

For SQLite and then PostgreSQL it creates a fresh database (a temporary file; a `leadops_bench_<random>` database,
dropped afterwards), writes N leads each with one email follow-up due now (the LOW sequence's first step, a
template), starts an aiosmtpd server in a separate process (so the server does not share the pass's interpreter
lock) and times one pass of `core.followups.run_pass`: claim, write the copy, send over one SMTP connection, record
the outcome with its workflow-log and timeline entries. It checks that the server received exactly N messages.
Target: at least 100 messages per second.

Run from the project root (aiosmtpd comes with the test dependencies):
    .venv/bin/python bench/followups.py               # both databases, 2,000 messages
    .venv/bin/python bench/followups.py --n 5000 --json
Options: --skip-sqlite, --skip-postgres, --pg-admin-url URL (else TEST_POSTGRES_URL or the local server).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from datetime import time as clock_time  # noqa: E402
from datetime import timedelta  # noqa: E402

from sqlalchemy import Engine, func, insert, select  # noqa: E402

from bench._common import scratch_databases  # noqa: E402
from core import followups, sequences  # noqa: E402
from core.config import Settings  # noqa: E402
from db.models import Channel, FollowUp, FollowUpStatus, Lead, LeadStatus, Priority, new_id, utcnow  # noqa: E402
from db.scratch import DEFAULT_POSTGRES_ADMIN_URL  # noqa: E402
from db.session import make_engine, session_scope  # noqa: E402

TARGET_PER_S = 100.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smtp_sink(port: int, received: multiprocessing.sharedctypes.Synchronized, ready: multiprocessing.Event,
               stop: multiprocessing.Event) -> None:
    """An aiosmtpd server that accepts everything and counts the messages (runs in its own process)."""
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd's hook
            with received.get_lock():
                received.value += 1
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


@contextmanager
def smtp_server() -> Iterator[tuple[int, multiprocessing.sharedctypes.Synchronized]]:
    port = _free_port()
    received = multiprocessing.Value("i", 0)
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    process = multiprocessing.Process(target=_smtp_sink, args=(port, received, ready, stop), daemon=True)
    process.start()
    if not ready.wait(20):
        raise RuntimeError("the SMTP server did not start")
    try:
        yield port, received
    finally:
        stop.set()
        process.join(10)


def seed(engine: Engine, n: int) -> None:
    """N leads with one due email each, and a send window that is always open."""
    with session_scope(engine) as session:
        sequences.set_send_window(session=session, days=list(range(7)), start=clock_time(0, 0),
                                  end=clock_time(23, 59, 59, 999999), actor="bench")
        step = sequences.get_steps(session=session, priority=Priority.LOW)[0]
        now = utcnow()
        for start in range(0, n, 1_000):
            leads = [dict(id=new_id(), full_name=f"Bench Lead {i:05d}", email=f"lead{i:05d}@client.example",
                          company="Client Ltd", project_type="Website", message="We need a quote for a website.",
                          source="bench", status=LeadStatus.NEW, score=30, priority=Priority.LOW, needs_review=False,
                          auto_follow_up=True, reanalyze_attempts=0, created_at=now, updated_at=now)
                     for i in range(start, min(start + 1_000, n))]
            session.execute(insert(Lead.__table__), leads)
            session.execute(insert(FollowUp.__table__), [
                dict(id=new_id(), lead_id=lead["id"], step_id=step.id, number=1, channel=Channel.EMAIL,
                     status=FollowUpStatus.SCHEDULED, due_at=now - timedelta(minutes=1), attempts=0, created_at=now,
                     updated_at=now) for lead in leads])


@dataclass
class Result:
    database: str
    messages: int
    seconds: float
    per_second: float
    received: int
    sent_in_db: int
    target_met: bool


def run(label: str, url: str, n: int) -> Result:
    engine = make_engine(url)
    try:
        seed(engine, n)
        with smtp_server() as (port, received):
            settings = Settings(_env_file=None, database_url=url, smtp_host="127.0.0.1", smtp_port=port,
                                smtp_starttls=False, mail_from="hello@bench.example")  # type: ignore[call-arg]
            started = time.perf_counter()
            summary = followups.run_pass(engine=engine, settings=settings, limit=n)
            seconds = time.perf_counter() - started
            time.sleep(0.2)  # the server counts a message after it answers it
            got = received.value
        with session_scope(engine) as session:
            sent = session.scalar(select(func.count()).where(FollowUp.status == FollowUpStatus.SENT)) or 0
    finally:
        engine.dispose()
    per_second = summary.sent / seconds if seconds else 0.0
    return Result(database=label, messages=summary.sent, seconds=round(seconds, 2),
                  per_second=round(per_second, 1), received=got, sent_in_db=sent, target_met=per_second >= TARGET_PER_S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--pg-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(label, url, args.n) for label, url in scratch_databases(
        sqlite=not args.skip_sqlite, postgres=not args.skip_postgres, pg_admin_url=args.pg_admin_url)]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        header = f"{'database':<11} {'messages':>8} {'seconds':>8} {'msg/s':>8} {'received':>8}"
        print(f"{header}  target {TARGET_PER_S:.0f}/s")
        for r in results:
            print(f"{r.database:<11} {r.messages:>8} {r.seconds:>8.2f} {r.per_second:>8.1f} {r.received:>8}  "
                  f"{'met' if r.target_met else 'MISSED'}")
    return 0 if all(r.target_met and r.received == r.messages for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
