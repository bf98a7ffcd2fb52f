"""The lead list (the sales queue) at 100,000 leads: how long `core.leads.get_all` takes for realistic filters.

Seeds a fresh PostgreSQL database with core.demo (or uses one you name), runs ANALYZE, then times each query
50 times after a warm-up and prints p50/p95 in ms, with the EXPLAIN ANALYZE plan of the main query (status NEW,
highest score first, a page of 50) so index use is visible. Target: under 50 ms at 100,000 leads on PostgreSQL.

Run from the project root:
    .venv/bin/python bench/queue.py                      # PostgreSQL: a fresh database, dropped afterwards
    .venv/bin/python bench/queue.py --sqlite             # SQLite too, for comparison (seeding takes as long again)
    .venv/bin/python bench/queue.py --keep               # keep the seeded database and print its URL
    .venv/bin/python bench/queue.py --url postgresql+psycopg://postgres@127.0.0.1:5432/leadops_bench_x --no-seed
Options: --leads N (100000), --runs N (50), --json, --pg-admin-url URL (else TEST_POSTGRES_URL or the local
server as postgres).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/queue.py`, Python puts bench/ first on the path, where this file would shadow the standard
# library's `queue` for everything imported later (concurrent.futures, urllib3...). Put the project root there.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import Engine, event, select, text  # noqa: E402

from bench._common import count_leads, fresh_postgres, seed_demo, server_version  # noqa: E402
from core import leads as lead_service  # noqa: E402
from core.leads import LeadFilters, Sort  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Lead, LeadStatus, Priority, User  # noqa: E402
from db.scratch import DEFAULT_POSTGRES_ADMIN_URL, PostgresUnavailable, sqlite_database  # noqa: E402
from db.session import make_engine, session_scope  # noqa: E402

TARGET_MS = 50.0
WARMUP = 5


@dataclass(frozen=True)
class Case:
    """One realistic way of opening the queue."""

    name: str
    filters: LeadFilters
    sort: Sort
    second_page: bool = False


@dataclass
class Timing:
    database: str
    query: str
    rows: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def _cases(engine: Engine) -> list[Case]:
    with session_scope(engine) as session:
        staff = session.scalar(select(User.id).join(Lead, Lead.assignee_id == User.id).limit(1))
        # Looking one person up by their address: a search that matches almost nothing.
        email = session.scalar(select(Lead.email).order_by(Lead.created_at, Lead.id).limit(1)) or "nobody@x"
    cases = [
        Case("status=NEW, by score (main)", LeadFilters(status=LeadStatus.NEW), "score"),
        Case("status=NEW, by score, page 2", LeadFilters(status=LeadStatus.NEW), "score", second_page=True),
        Case("priority=HIGH, by score", LeadFilters(priority=Priority.HIGH), "score"),
        Case("no filter, newest first", LeadFilters(), "newest"),
        Case("min_score=70, newest first", LeadFilters(min_score=70), "newest"),
        Case("min_score=70, by score", LeadFilters(min_score=70), "score"),
        Case("created in last 7 days, newest", LeadFilters(created_after=datetime.now(UTC) - timedelta(days=7)),
             "newest"),
        Case("text 'harbor', newest", LeadFilters(text="harbor"), "newest"),
        Case("text 'okonkwo' (1%), newest", LeadFilters(text="okonkwo"), "newest"),
        Case("text: one person's email, newest", LeadFilters(text=email), "newest"),
    ]
    if staff:
        cases.append(Case("my CONTACTED leads, by score", LeadFilters(assignee_id=staff,
                                                                      status=LeadStatus.CONTACTED), "score"))
    return cases


def _page(engine: Engine, case: Case) -> Callable[[], int]:
    """One request's worth of work: a session, the page of 50 with its analyses and assignees, and nothing more."""
    cursor = None
    if case.second_page:
        with session_scope(engine) as session:
            cursor = lead_service.get_all(session=session, filters=case.filters, limit=50, sort=case.sort).next_cursor

    def run() -> int:
        with session_scope(engine) as session:
            page = lead_service.get_all(session=session, filters=case.filters, limit=50, cursor=cursor,
                                        sort=case.sort)
            for lead in page.items:  # touch what the list shows, as the UI and the API do
                _ = lead.analysis.score if lead.analysis else None, lead.assignee
            return len(page.items)
    return run


def time_cases(engine: Engine, label: str, runs: int) -> list[Timing]:
    """p50/p95 of each case over `runs` runs after a warm-up."""
    results = []
    for case in _cases(engine):
        run = _page(engine, case)
        for _ in range(WARMUP):
            run()
        samples, rows = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            rows = run()
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        results.append(Timing(label, case.name, rows, round(statistics.median(samples), 2),
                              round(samples[max(0, int(len(samples) * 0.95) - 1)], 2), round(samples[-1], 2)))
    return results


def main_plan(engine: Engine) -> str:
    """EXPLAIN ANALYZE (or SQLite's query plan) of the exact SQL the main case sends."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if not captured and statement.lstrip().upper().startswith("SELECT") and "FROM leads" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with session_scope(engine) as session:
            lead_service.get_all(session=session, filters=LeadFilters(status=LeadStatus.NEW), limit=50, sort="score")
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    explain = ("EXPLAIN (ANALYZE, BUFFERS) " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN ")
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(explain + statement, parameters).all()
    plan = "\n".join(str(r[0]) if engine.dialect.name == "postgresql" else f"{r[1]:>3} {r[2]:>3}  {r[3]}"
                     for r in rows)
    return f"{statement}\n{parameters}\n\n{plan}"


def _analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))


def bench_database(label: str, url: str, *, seed_leads: int | None, runs: int) -> dict[str, Any]:
    """Seeds (unless told not to), analyses and times one database."""
    engine = make_engine(url)
    try:
        seed_s = None
        if seed_leads:
            print(f"{label}: migrating and seeding", file=sys.stderr)
            upgrade(url)
            seed_s = seed_demo(engine, seed_leads)
        _analyze(engine)
        count = count_leads(engine)
        print(f"{label}: timing {runs} runs per query at {count:,} leads", file=sys.stderr)
        timings = time_cases(engine, label, runs)
        plan = main_plan(engine)
        version = server_version(engine)
    finally:
        engine.dispose()
    return {"database": label, "version": version, "leads": count, "seed_seconds": seed_s,
            "timings": [asdict(t) for t in timings], "main_plan": plan}


def print_report(result: dict[str, Any]) -> None:
    seeded = f", seeded in {result['seed_seconds']:.1f} s" if result["seed_seconds"] else ""
    print(f"\n{result['database']} ({result['version']}): {result['leads']:,} leads{seeded}; target p50/p95 "
          f"< {TARGET_MS:.0f} ms")
    print(f"{'query':<36} {'rows':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for t in result["timings"]:
        flag = "" if t["p95_ms"] < TARGET_MS else "  <-- over target"
        print(f"{t['query']:<36} {t['rows']:>4} {t['p50_ms']:>8.2f} {t['p95_ms']:>8.2f} {t['max_ms']:>8.2f}{flag}")
    print(f"\nPlan of the main query on {result['database']}:\n{result['main_plan']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000, help="leads to seed (default 100000)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per query (default 50)")
    parser.add_argument("--url", help="an existing database to use instead of a fresh PostgreSQL one")
    parser.add_argument("--no-seed", action="store_true", help="with --url: time the database as it is")
    parser.add_argument("--sqlite", action="store_true", help="also seed and time a temporary SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the fresh PostgreSQL database and print its URL")
    parser.add_argument("--pg-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL, help="where to create the fresh database")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    if args.no_seed and not args.url:
        parser.error("--no-seed needs --url")

    results = []
    if args.url:
        label = "PostgreSQL" if args.url.startswith("postgresql") else "SQLite"
        results.append(bench_database(label, args.url, seed_leads=None if args.no_seed else args.leads,
                                      runs=args.runs))
    else:
        try:
            with fresh_postgres(args.pg_admin_url, keep=args.keep) as url:
                results.append(bench_database("PostgreSQL", url, seed_leads=args.leads, runs=args.runs))
        except PostgresUnavailable as exc:
            print(f"{exc}; skipping PostgreSQL", file=sys.stderr)
    if args.sqlite:
        with sqlite_database() as url:
            results.append(bench_database("SQLite", url, seed_leads=args.leads, runs=args.runs))
    if not results:
        print("nothing was measured", file=sys.stderr)
        return 1
    for result in results:
        print_report(result)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
