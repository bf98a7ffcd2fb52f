"""The lead queue page at 100,000 leads: the server time of one rerun, as a click in the browser costs it.

Seeds a fresh PostgreSQL database with core.demo (or uses one you name), signs a new admin in through the real
sign-in form in Streamlit's AppTest with DATABASE_URL pointing at it, opens pages/queue.py and times `AppTest.run()`:
one whole script run as the server does it on every click, Home.py first (session check against the database,
sign-in credentials, menu) and then the queue page (filters, a page of 50 leads, the total count, the table).
Not timed: the websocket and the browser's drawing.

Four views: the default one (every lead of any date, highest score first), status=NEW, a text search
("okonkwo", about 0.3% of the demo leads) and page 2 (Next pressed once). Each is timed cold, after
st.cache_data.clear() so that the page's cached reads go to the database again, and warm, when they come from the
page's cache (a 15 s TTL). The "query" column is the time spent inside core.lead_views.queue_page on the cold runs.
Cold timing starts after 12 untimed cold runs: from about the 10th run on a connection, psycopg's prepared statement
and PostgreSQL's generic plan take over, as on a long-running server (the text search gets much slower there).
Target: p95 under 300 ms cold at 100,000 leads on PostgreSQL.

AppTest would otherwise rerun the page file alone after the first run (it finds a pages/ folder beside Home.py);
a running server always starts at the entry script, so this benchmark makes AppTest do the same.

Run from the project root:
    .venv/bin/python bench/queue_page.py                   # a fresh PostgreSQL database, dropped afterwards
    .venv/bin/python bench/queue_page.py --leads 10000 --runs 10
    .venv/bin/python bench/queue_page.py --keep            # keep the seeded database and print its URL
    .venv/bin/python bench/queue_page.py --url postgresql+psycopg://postgres@127.0.0.1:5432/leadops_bench_x --no-seed
Options: --leads N (100000), --runs N (20), --json, --keep, --pg-admin-url URL (else TEST_POSTGRES_URL or the local
server as postgres). Seeding 100,000 leads takes a few minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/queue_page.py`, Python puts bench/ first on the path, where bench/queue.py would shadow the
# standard library's `queue` for everything imported later (concurrent.futures, streamlit...). Put the root there.
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
from typing import Any  # noqa: E402

import streamlit as st  # noqa: E402, TID251 - this drives the UI, as the page tests do
from sqlalchemy import text  # noqa: E402
from streamlit import logger as st_logger  # noqa: E402, TID251

from bench._common import (  # noqa: E402
    add_user,
    by_label,
    count_leads,
    entry_script_every_run,
    fresh_postgres,
    remove_user,
    run,
    seed_demo,
    server_version,
    signed_in,
    use_database,
)
from core import lead_views  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Role  # noqa: E402
from db.scratch import DEFAULT_POSTGRES_ADMIN_URL, PostgresUnavailable  # noqa: E402
from db.session import get_engine, make_engine  # noqa: E402

TARGET_MS = 300.0
# Untimed cold runs first: psycopg prepares a statement from its 5th execution and PostgreSQL may switch to a
# generic plan after 5 more, which is what a long-running server's pooled connections settle on.
WARMUP = 12
SEARCH = "okonkwo"
TIMEOUT_S = 120


@dataclass(frozen=True)
class Case:
    """One way of looking at the queue, set up through the page's own widgets."""

    name: str
    setup: Callable[[Any], None]


@dataclass
class Timing:
    case: str
    shown: str
    cold_p50_ms: float
    cold_p95_ms: float
    query_p50_ms: float
    warm_p50_ms: float
    warm_p95_ms: float


CASES = [
    Case("default (all, by score)", lambda at: None),
    Case("status=NEW", lambda at: by_label(at.selectbox, "Status").select("NEW")),
    Case(f"search '{SEARCH}'", lambda at: by_label(at.text_input, "Search name, email or company").input(SEARCH)),
    Case("page 2 (Next pressed)", lambda at: by_label(at.button, "Next →").click()),
]


# --- the app under AppTest ----------------------------------------------------------------------------------------

def _signed_in_queue(username: str, password: str) -> Any:
    """A fresh session that signed in through the form and opened the lead queue."""
    at = signed_in(username, password, timeout=TIMEOUT_S)
    if not any(t.value.startswith("Signed in as ") for t in at.sidebar.text):
        raise RuntimeError(f"sign-in failed: {[e.value for e in at.error]}")
    at.switch_page("pages/queue.py")
    run(at)
    if [t.value for t in at.title] != ["Lead queue"]:
        raise RuntimeError(f"the queue did not open: {[t.value for t in at.title]}")
    return at


def _shown(at: Any) -> str:
    """What the page says it shows ("Leads 1–50 of 99,412"), to check each view is what it claims."""
    captions = [c.value for c in at.caption if str(c.value).startswith("Leads ")]
    return captions[0] if captions else "no leads: " + "; ".join(i.value for i in at.info)


class _QueryClock:
    """Times core.lead_views.queue_page (the page's only lead query: a page of 50 and the count)."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._original = lead_views.queue_page

    def __enter__(self) -> _QueryClock:
        def timed(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return self._original(**kwargs)
            finally:
                self.spent += time.perf_counter() - started
        lead_views.queue_page = timed  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        lead_views.queue_page = self._original  # type: ignore[assignment]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return round(statistics.median(samples), 1), round(samples[max(0, int(len(samples) * 0.95) - 1)], 1)


def time_case(case: Case, username: str, password: str, runs: int) -> Timing:
    at = _signed_in_queue(username, password)
    case.setup(at)
    run(at)
    shown = _shown(at)
    st.cache_data.clear()
    st_logger.set_log_level("error")  # outside a server Streamlit warns about the missing runtime at every clear
    for _ in range(WARMUP):
        st.cache_data.clear()
        run(at)
    cold, query = [], []
    with _QueryClock() as clock:
        for _ in range(runs):
            st.cache_data.clear()
            clock.spent = 0.0
            started = time.perf_counter()
            run(at)
            cold.append((time.perf_counter() - started) * 1000)
            query.append(clock.spent * 1000)
    run(at)  # fills the cache again
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        run(at)
        warm.append((time.perf_counter() - started) * 1000)
    if _shown(at) != shown:
        raise RuntimeError(f"{case.name}: the view changed while timing ({shown!r} -> {_shown(at)!r})")
    cold_p50, cold_p95 = _percentiles(cold)
    warm_p50, warm_p95 = _percentiles(warm)
    return Timing(case.name, shown, cold_p50, cold_p95, _percentiles(query)[0], warm_p50, warm_p95)


# --- the database -------------------------------------------------------------------------------------------------

def _prepare(url: str, seed_leads: int | None) -> dict[str, Any]:
    """Migrates and seeds (unless told not to), runs ANALYZE and adds the admin the benchmark signs in as."""
    engine = make_engine(url)
    try:
        seed_s = None
        if seed_leads:
            print("migrating and seeding", file=sys.stderr)
            upgrade(url)
            seed_s = seed_demo(engine, seed_leads)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))
        username, password = add_user(engine, Role.ADMIN)
        leads = count_leads(engine)
        version = server_version(engine)
    finally:
        engine.dispose()
    return {"leads": leads, "seed_seconds": seed_s, "version": version, "username": username, "password": password}


def _remove_user(url: str, username: str) -> None:
    engine = make_engine(url)
    try:
        remove_user(engine, username)
    finally:
        engine.dispose()


def bench(url: str, *, seed_leads: int | None, runs: int) -> dict[str, Any]:
    """Prepares the database, then times every case through AppTest."""
    st_logger.set_log_level("error")
    prepared = _prepare(url, seed_leads)
    use_database(url)
    label = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"{label}: timing {runs} cold and {runs} warm reruns per view at {prepared['leads']:,} leads",
          file=sys.stderr)
    timings = []
    try:
        with entry_script_every_run():
            for case in CASES:
                timings.append(time_case(case, prepared["username"], prepared["password"], runs))
                print(f"  {case.name}: done", file=sys.stderr)
    finally:
        st.cache_data.clear()
        get_engine.cache_clear()
        _remove_user(url, prepared["username"])
    return {"database": label, "version": prepared["version"], "leads": prepared["leads"],
            "seed_seconds": prepared["seed_seconds"], "runs": runs, "target_ms": TARGET_MS,
            "timings": [asdict(t) for t in timings]}


def print_report(result: dict[str, Any]) -> None:
    seeded = f", seeded in {result['seed_seconds']:.1f} s" if result["seed_seconds"] else ""
    print(f"\n{result['database']} ({result['version']}): {result['leads']:,} leads{seeded}; one rerun of Home.py "
          f"+ pages/queue.py, {result['runs']} runs each; target p95 < {TARGET_MS:.0f} ms cold")
    print(f"{'view':<26} {'shown':<24} {'cold p50':>9} {'cold p95':>9} {'query p50':>10} {'warm p50':>9} "
          f"{'warm p95':>9}")
    for t in result["timings"]:
        flag = "" if t["cold_p95_ms"] < TARGET_MS else "  <-- over target"
        print(f"{t['case']:<26} {t['shown']:<24} {t['cold_p50_ms']:>9.1f} {t['cold_p95_ms']:>9.1f} "
              f"{t['query_p50_ms']:>10.1f} {t['warm_p50_ms']:>9.1f} {t['warm_p95_ms']:>9.1f}{flag}")
    print("(ms; cold = after st.cache_data.clear(), query = inside core.lead_views.queue_page on the cold runs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000, help="leads to seed (default 100000)")
    parser.add_argument("--runs", type=int, default=20, help="timed reruns per view, cold and warm each (default 20)")
    parser.add_argument("--url", help="an existing database to use instead of a fresh PostgreSQL one")
    parser.add_argument("--no-seed", action="store_true", help="with --url: time the database as it is")
    parser.add_argument("--keep", action="store_true", help="keep the fresh PostgreSQL database and print its URL")
    parser.add_argument("--pg-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL, help="where to create the fresh database")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    if args.no_seed and not args.url:
        parser.error("--no-seed needs --url")
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    if args.url:
        result = bench(args.url, seed_leads=None if args.no_seed else args.leads, runs=args.runs)
    else:
        try:
            with fresh_postgres(args.pg_admin_url, keep=args.keep) as url:
                result = bench(url, seed_leads=args.leads, runs=args.runs)
        except PostgresUnavailable as exc:
            print(f"{exc}; nothing was measured", file=sys.stderr)
            return 1
    print_report(result)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
