"""The managers' dashboard at 100,000 and 1,000,000 leads: the server time of one rerun, and PostgreSQL's own share.

For each size, a PostgreSQL database is filled (core.demo for the first 100,000 leads, then copies of them made by
PostgreSQL itself), a new manager signs in through the real sign-in form in Streamlit's AppTest and lands on the
Dashboard, and `AppTest.run()` is timed: one whole script run as the server does it on every click, Home.py first
(session check against the database, sign-in credentials, menu) and then pages/dashboard.py (filters, the cached
core.dashboard.dashboard() call, 8 KPIs, 7 Plotly figures, the table). Not timed: the websocket and the browser.

AppTest is made to run the scripts as a server does: Home.py on every run, and with one script cache for the process
(AppTest otherwise compiles both scripts again on every run, about 10 ms that a server does not spend).
Each view is timed cold, after st.cache_data.clear() so that the page's reads go to the database again, and warm,
when they come from the page's cache (a 60 s TTL). "core" is the time inside core.dashboard.dashboard() on the
cold runs; "PostgreSQL" is the server's own execution time for the same statements (EXPLAIN (ANALYZE, TIMING OFF),
median of 5), so core - PostgreSQL is the driver and Python's share. Peak memory is this process's maximum RSS
(ru_maxrss): the web process's share, as the seeding runs in a child process.
Targets at 1,000,000 leads: under 300 ms cold and 50 ms warm, peak memory under 500 MB.

Seeding: core.demo writes up to --base leads (default 100,000; a few minutes), with their follow-ups and histories;
beyond that PostgreSQL copies those leads and their follow-ups with INSERT ... SELECT over generate_series, with
new ids and times moved back 7 minutes per copy (no analyses, timeline or workflow log for the copies: the
dashboard reads none of them). 1,000,000 leads take a few minutes more.

Before timing, one full pass of the `dashboard` job builds the daily summaries the dashboard reads whole past days
from (core.day_stats), and a second pass after 1,000 leads of the last 90 days changed status counts their days
again; both are timed and reported. --no-summaries times the dashboard counting every figure from the leads instead
(as it does before the jobs process's first pass).

--proposed-indexes adds the indexes this benchmark suggests for the schema (see PROPOSED_INDEXES) before timing,
so both sets of figures can be compared.

Run from the project root:
    .venv/bin/python bench/dashboard.py                          # 100,000 then 1,000,000 leads, fresh database
    .venv/bin/python bench/dashboard.py --sizes 100000 --runs 5
    .venv/bin/python bench/dashboard.py --proposed-indexes --keep
    .venv/bin/python bench/dashboard.py --url postgresql+psycopg://postgres@127.0.0.1:5432/leadops_bench_x --no-seed
Options: --sizes N,N (100000,1000000), --runs N (10), --base N (100000), --json, --keep, --pg-admin-url URL (else
TEST_POSTGRES_URL or the local server as postgres).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/dashboard.py`, Python puts bench/ first on the path, where bench/queue.py would shadow the
# standard library's `queue` for everything imported later (concurrent.futures, streamlit...). Put the root there.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import streamlit as st  # noqa: E402, TID251 - this drives the UI, as the page tests do
from sqlalchemy import Engine, delete, event, inspect, select, text, update  # noqa: E402
from sqlalchemy.types import DateTime  # noqa: E402
from streamlit import logger as st_logger  # noqa: E402, TID251

from bench._common import (  # noqa: E402
    add_user,
    by_label,
    count_leads,
    entry_script_every_run,
    fresh_postgres,
    one_script_cache,
    remove_user,
    run,
    signed_in,
    use_database,
)
from core import dashboard, day_stats, demo, uow  # noqa: E402
from core.config import Settings  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import DayStatsState, Lead, LeadStatus, Role  # noqa: E402
from db.scratch import DEFAULT_POSTGRES_ADMIN_URL, PostgresUnavailable  # noqa: E402
from db.session import get_engine, make_engine, session_scope  # noqa: E402

TARGET_COLD_MS, TARGET_WARM_MS, TARGET_RSS_MB = 300.0, 50.0, 500.0
TARGET_LEADS = 1_000_000
# Untimed cold runs first: psycopg prepares a statement from its 5th execution and PostgreSQL may switch to a
# generic plan after 5 more, which is what a long-running server's pooled connections settle on.
WARMUP = 6
TIMEOUT_S = 300
TIMEZONE = "America/New_York"
# What this benchmark suggests adding beyond the schema (the period-scan and follow-up indexes are in
# migration 0006 now); --proposed-indexes creates them.
PROPOSED_INDEXES = {
    # Top open opportunities: read in order, ten rows, instead of sorting every open lead of the period.
    "ix_leads_open_rank":
        "CREATE INDEX ix_leads_open_rank ON leads (score DESC, budget_usd DESC NULLS LAST, created_at DESC, id) "
        "WHERE status IN ('NEW', 'CONTACTED', 'QUALIFIED', 'PROPOSAL_SENT')",
}


# A copy's id is the original's first 24 characters, "U" (never in a ULID) and the copy number.
_COPY_MARK = "%U%"


@dataclass(frozen=True)
class Case:
    """One way of looking at the dashboard, set up through the page's own widgets."""

    name: str
    setup: Callable[[Any], None]


CASES = [
    Case("last 30 days (default)", lambda at: None),
    Case("last 7 days", lambda at: by_label(at.selectbox, "Period").select("last_7_days")),
    Case("last 90 days", lambda at: by_label(at.selectbox, "Period").select("last_90_days")),
    Case("last 30 days, source=website", lambda at: by_label(at.selectbox, "Source").select("website")),
]


@dataclass
class Timing:
    case: str
    shown: str
    cold_p50_ms: float
    cold_p95_ms: float
    core_p50_ms: float
    postgres_ms: float
    warm_p50_ms: float
    warm_p95_ms: float
    statements: list[dict[str, Any]] = field(default_factory=list)


# --- the app under AppTest ----------------------------------------------------------------------------------------

def _signed_in_dashboard(username: str, password: str) -> Any:
    """A fresh session that signed in through the form and landed on the Dashboard."""
    at = signed_in(username, password, timeout=TIMEOUT_S)
    if [t.value for t in at.title] != ["Dashboard"]:
        raise RuntimeError(f"the dashboard did not open: {[t.value for t in at.title]}, {[e.value for e in at.error]}")
    return at


def _shown(at: Any) -> str:
    """What the page says it shows ("12,345 new leads · Last 30 days (...)"), to check each view is what it claims."""
    new = [m.value for m in at.metric if m.label == "New leads"]
    captions = [str(c.value) for c in at.caption if "compared with" in str(c.value)]
    return f"{new[0] if new else '?'} new · {captions[0].split(',')[0] if captions else '?'}"


class _CoreClock:
    """Times core.dashboard.dashboard() (the page's one read of leads) and keeps the statements it sends."""

    def __init__(self, engine: Engine) -> None:
        self.spent = 0.0
        self.statements: list[tuple[str, Any]] = []
        self._original = dashboard.dashboard
        self._engine = engine

    def _capture(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> _CoreClock:
        def timed(**kwargs: Any) -> Any:
            self.statements.clear()
            event.listen(self._engine, "before_cursor_execute", self._capture)
            started = time.perf_counter()
            try:
                return self._original(**kwargs)
            finally:
                self.spent += time.perf_counter() - started
                event.remove(self._engine, "before_cursor_execute", self._capture)
        dashboard.dashboard = timed  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        dashboard.dashboard = self._original  # type: ignore[assignment]


def _postgres_time(engine: Engine, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """PostgreSQL's own execution time of each statement: EXPLAIN (ANALYZE, TIMING OFF), median of 5."""
    results = []
    with engine.connect() as connection:
        for statement, parameters in statements:
            samples = []
            for _ in range(5):
                plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement,
                                                  parameters).scalar_one()
                samples.append(plan[0]["Execution Time"] + plan[0]["Planning Time"])
            plan = connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            # The plan's nodes only ("Parallel Index Only Scan using ... on leads"), without their details.
            nodes = [row[0].split("  (")[0].strip().removeprefix("->").strip() for row in plan
                     if "  (cost=" in row[0]]
            results.append({"statement": _first_words(statement), "ms": round(statistics.median(samples), 1),
                            "plan": " / ".join(n for n in nodes if re.search(r"Scan|Aggregate|Sort|Append", n))})
    return results


def _first_words(statement: str) -> str:
    flat = " ".join(statement.split())
    tables = sorted(set(re.findall(r"FROM (\w+)", flat)) - {"anon_1"})
    return f"{flat[:48]}… ({', '.join(tables)})"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return round(statistics.median(samples), 1), round(samples[max(0, int(len(samples) * 0.95 + 0.5) - 1)], 1)


def time_case(case: Case, username: str, password: str, runs: int, engine: Engine) -> Timing:
    at = _signed_in_dashboard(username, password)
    case.setup(at)
    run(at)
    shown = _shown(at)
    st_logger.set_log_level("error")  # outside a server Streamlit warns about the missing runtime at every clear
    for _ in range(WARMUP):
        st.cache_data.clear()
        run(at)
    cold, core = [], []
    with _CoreClock(engine) as clock:
        for _ in range(runs):
            st.cache_data.clear()
            clock.spent = 0.0
            started = time.perf_counter()
            run(at)
            cold.append((time.perf_counter() - started) * 1000)
            core.append(clock.spent * 1000)
        statements = list(clock.statements)
    run(at)  # fills the cache again
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        run(at)
        warm.append((time.perf_counter() - started) * 1000)
    if _shown(at) != shown:
        raise RuntimeError(f"{case.name}: the view changed while timing ({shown!r} -> {_shown(at)!r})")
    own = _postgres_time(engine, statements)
    cold_p50, cold_p95 = _percentiles(cold)
    warm_p50, warm_p95 = _percentiles(warm)
    return Timing(case.name, shown, cold_p50, cold_p95, _percentiles(core)[0],
                  round(sum(s["ms"] for s in own), 1), warm_p50, warm_p95, own)


# --- the database -------------------------------------------------------------------------------------------------

def seed(url: str, leads: int, base: int) -> None:
    """Fills `url` up to `leads` leads: core.demo for the first `base`, PostgreSQL copies of them for the rest."""
    engine = make_engine(url)
    try:
        have = count_leads(engine)
        if have < min(leads, base):
            started = time.perf_counter()
            demo.seed(engine=engine, leads=min(leads, base) - have)
            print(f"  core.demo: {min(leads, base) - have:,} leads in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
        have = count_leads(engine)
        if have < leads:
            started = time.perf_counter()
            _copy_leads(engine, leads - have)
            print(f"  copies: {leads - have:,} leads in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))  # statistics, and the visibility map for index-only scans
        print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        engine.dispose()


def _copy_leads(engine: Engine, missing: int) -> None:
    """Copies the demo's leads and their follow-ups (new ids, times moved back 7 minutes per copy) until `missing`
    more leads exist; in two INSERT ... SELECT statements over generate_series."""
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        originals = connection.scalar(text(f"SELECT count(*) FROM leads WHERE id NOT LIKE '{_COPY_MARK}'"))
        copies = -(-missing // originals)
        names, values = _copy_columns(engine, "leads", {"id"})
        # Row number r of copy k is copied while (k - 1) * originals + r <= missing.
        connection.execute(text(
            f"INSERT INTO leads ({names}) SELECT {values} FROM "
            f"(SELECT *, row_number() OVER (ORDER BY id) AS r FROM leads WHERE id NOT LIKE '{_COPY_MARK}') AS t "
            "CROSS JOIN generate_series(1, :copies) AS k(k) WHERE (k.k - 1) * :originals + t.r <= :missing"),
            {"copies": copies, "originals": originals, "missing": missing})
        names, values = _copy_columns(engine, "follow_ups", {"id", "lead_id", "origin_lead_id"})
        connection.execute(text(
            f"INSERT INTO follow_ups ({names}) SELECT {values} FROM follow_ups AS t "
            "CROSS JOIN generate_series(1, :copies) AS k(k) "
            "JOIN leads AS copy ON copy.id = left(t.lead_id, 24) || 'U' || k.k "
            f"WHERE t.lead_id NOT LIKE '{_COPY_MARK}'"), {"copies": copies})


def _copy_columns(engine: Engine, table: str, ids: set[str]) -> tuple[str, str]:
    """The table's columns as the database has them, and the SELECT list that copies one row as copy k.k."""
    columns = inspect(engine).get_columns(table)
    values = []
    for column in columns:
        name = column["name"]
        if name in ids:
            values.append(f"CASE WHEN t.{name} IS NULL THEN NULL ELSE left(t.{name}, 24) || 'U' || k.k END")
        elif isinstance(column["type"], DateTime):
            values.append(f"t.{name} - k.k * interval '7 minutes'")
        else:
            values.append(f"t.{name}")
    return ", ".join(c["name"] for c in columns), ", ".join(values)


def _seed_in_child(url: str, leads: int, base: int) -> float:
    """Seeds in a child process, so this process's peak memory is the web process's alone."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--seed-only", "--url", url,
                    "--sizes", str(leads), "--base", str(base)], check=True)
    return time.perf_counter() - started


def _add_indexes(engine: Engine) -> list[str]:
    added = []
    existing = {ix["name"] for table in ("leads", "follow_ups") for ix in inspect(engine).get_indexes(table)}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for name, ddl in PROPOSED_INDEXES.items():
            if name not in existing:
                connection.execute(text(ddl))
                added.append(name)
        connection.execute(text("VACUUM ANALYZE leads"))
        connection.execute(text("VACUUM ANALYZE follow_ups"))
    return added


def _rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB."""
    now = 0.0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
    return round(now, 1), round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _summaries(engine: Engine, url: str, *, use: bool) -> dict[str, Any]:
    """Times a full `dashboard` pass, then one after 1,000 leads of the last 90 days changed status; or, without
    `use`, removes the summaries' state so that the dashboard counts everything from the leads."""
    if not use:
        with session_scope(engine) as session:
            session.execute(delete(DayStatsState))
        return {}
    settings = Settings(_env_file=None, database_url=url, leadops_timezone=TIMEZONE)  # type: ignore[call-arg]
    full = day_stats.run_pass(engine=engine, settings=settings, rebuild=True)
    with session_scope(engine) as session:
        recent = select(Lead.id).where(Lead.created_at >= datetime.now(UTC) - timedelta(days=90),
                                       Lead.status == LeadStatus.NEW).order_by(Lead.id).limit(1000)
        session.execute(update(Lead).where(Lead.id.in_(recent.scalar_subquery()))
                        .values(status=LeadStatus.CONTACTED))
    again = day_stats.run_pass(engine=engine, settings=settings)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # As autovacuum soon does on a server: the passes replaced the summaries' rows and changed 1,000 leads.
        connection.execute(text("VACUUM ANALYZE lead_day_stats, follow_up_day_stats, leads"))
    return {"rebuild_s": full.seconds, "rebuild_days": full.days, "changed_s": again.seconds,
            "changed_days": again.days}


def bench_size(url: str, leads: int | None, *, base: int, runs: int, proposed_indexes: bool,
               summaries: bool = True) -> dict[str, Any]:
    """Seeds up to `leads` (unless None), then times every case through AppTest."""
    seed_s = _seed_in_child(url, leads, base) if leads else None
    engine = make_engine(url)
    added = _add_indexes(engine) if proposed_indexes else []
    passes = _summaries(engine, url, use=summaries)
    count = count_leads(engine)
    with engine.connect() as connection:
        version = str(connection.scalar(text("SHOW server_version")))
        settings = {name: str(connection.scalar(text(f"SHOW {name}"))) for name in
                    ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit")}
    username, password = add_user(engine, Role.MANAGER)
    use_database(url, LEADOPS_TIMEZONE=TIMEZONE)
    print(f"timing {runs} cold and {runs} warm reruns per view at {count:,} leads", file=sys.stderr)
    timings = []
    try:
        with entry_script_every_run(), one_script_cache():
            for case in CASES:
                timings.append(time_case(case, username, password, runs, uow.engine()))
                print(f"  {case.name}: done", file=sys.stderr)
    finally:
        st.cache_data.clear()
        get_engine.cache_clear()
        remove_user(engine, username)
        engine.dispose()
    rss_now, rss_peak = _rss_mb()
    return {"leads": count, "seed_seconds": seed_s, "version": version, "settings": settings, "runs": runs,
            "indexes_added": added, "summaries": passes, "rss_mb": rss_now, "peak_rss_mb": rss_peak,
            "timings": [asdict(t) for t in timings]}


def print_report(result: dict[str, Any]) -> None:
    seeded = f", seeded in {result['seed_seconds']:.0f} s" if result["seed_seconds"] else ""
    indexes = f"; proposed indexes added: {', '.join(result['indexes_added'])}" if result["indexes_added"] else ""
    print(f"\nPostgreSQL {result['version']} ({', '.join(f'{k} {v}' for k, v in result['settings'].items())}): "
          f"{result['leads']:,} leads{seeded}{indexes}")
    passes = result["summaries"]
    if passes:
        print(f"daily summaries: a full `dashboard` pass {passes['rebuild_s']:.2f} s ({passes['rebuild_days']} days); "
              f"a pass after 1,000 leads changed {passes['changed_s']:.2f} s ({passes['changed_days']} days)")
    else:
        print("no daily summaries: every figure counted from the leads and follow-ups")
    print(f"one rerun of Home.py + pages/dashboard.py as a manager, {result['runs']} runs each (ms)")
    print(f"{'view':<30} {'shown':<38} {'cold p50':>8} {'cold p95':>8} {'core':>7} {'PG':>7} {'warm p50':>8} "
          f"{'warm p95':>8}")
    at_target = result["leads"] >= TARGET_LEADS
    for t in result["timings"]:
        over = [what for what, over in (("cold", t["cold_p95_ms"] > TARGET_COLD_MS),
                                        ("warm", t["warm_p95_ms"] > TARGET_WARM_MS)) if over]
        flag = f"  <-- {' and '.join(over)} over target" if at_target and over else ""
        print(f"{t['case']:<30} {t['shown'][:38]:<38} {t['cold_p50_ms']:>8.1f} {t['cold_p95_ms']:>8.1f} "
              f"{t['core_p50_ms']:>7.1f} {t['postgres_ms']:>7.1f} {t['warm_p50_ms']:>8.1f} {t['warm_p95_ms']:>8.1f}"
              f"{flag}")
    print(f"(core = inside core.dashboard.dashboard() on the cold runs; PG = PostgreSQL's own execution and planning "
          f"time of its statements; targets at {TARGET_LEADS:,} leads: cold < {TARGET_COLD_MS:.0f}, "
          f"warm < {TARGET_WARM_MS:.0f})")
    print(f"memory: {result['rss_mb']:.0f} MB resident now, {result['peak_rss_mb']:.0f} MB at the peak "
          f"(target < {TARGET_RSS_MB:.0f} MB)")
    default = result["timings"][0]
    print(f"PostgreSQL per statement, {default['case']}:")
    for s in default["statements"]:
        print(f"  {s['ms']:>8.1f} ms  {s['statement']}\n              {s['plan']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="lead counts to time, growing (100000,1000000)")
    parser.add_argument("--runs", type=int, default=10, help="timed reruns per view, cold and warm each (10)")
    parser.add_argument("--base", type=int, default=100_000, help="leads written by core.demo before copying")
    parser.add_argument("--url", help="an existing PostgreSQL database to use instead of a fresh one")
    parser.add_argument("--no-seed", action="store_true", help="with --url: time the database as it is")
    parser.add_argument("--proposed-indexes", action="store_true", help="add PROPOSED_INDEXES before timing")
    parser.add_argument("--no-summaries", action="store_true", help="time the dashboard without daily summaries")
    parser.add_argument("--keep", action="store_true", help="keep the fresh database and print its URL")
    parser.add_argument("--pg-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL, help="where to create the database")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    if args.no_seed and not args.url:
        parser.error("--no-seed needs --url")
    if args.url and not args.url.startswith("postgresql"):
        parser.error("this benchmark measures PostgreSQL")
    if args.seed_only:
        seed(args.url, sizes[-1], args.base)
        return 0

    st_logger.set_log_level("error")  # outside a server Streamlit warns about the missing runtime at every clear
    results = []
    started = datetime.now(UTC)
    if args.url:
        if not args.no_seed:
            upgrade(args.url)
        for size in ([None] if args.no_seed else sizes):
            results.append(bench_size(args.url, size, base=args.base, runs=args.runs,
                                      proposed_indexes=args.proposed_indexes, summaries=not args.no_summaries))
    else:
        try:
            with fresh_postgres(args.pg_admin_url, keep=args.keep) as url:
                for size in sizes:
                    print(f"seeding {size:,} leads", file=sys.stderr)
                    results.append(bench_size(url, size, base=args.base, runs=args.runs,
                                              proposed_indexes=args.proposed_indexes, summaries=not args.no_summaries))
        except PostgresUnavailable as exc:
            print(f"{exc}; nothing was measured", file=sys.stderr)
            return 1
    print(f"\nDashboard benchmark, {started:%Y-%m-%d %H:%M} UTC, business time zone {TIMEZONE}")
    for result in results:
        print_report(result)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
