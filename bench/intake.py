"""Lead intake over HTTP: leads per second and latency of `POST /api/leads` with the rules engine.

For SQLite and then PostgreSQL it creates a fresh database (a temporary file; a `leadops_bench_<random>` database,
dropped afterwards), serves the real API routes with uvicorn on 127.0.0.1 in a separate process (so the client's
threads do not share its interpreter lock), and sends N believable leads (core.demo's generator) from 1 and from
4 concurrent clients, reporting leads/s and p50/p95/p99 in ms. Target: p50 under 20 ms.

The API allows each key 60 requests at once and 10 a second after that; the benchmark spreads its requests over
enough keys (made with core.api_keys.create) that it measures intake, not the rate limiter.

Run from the project root:
    .venv/bin/python bench/intake.py                 # both databases, 500 leads per run
    .venv/bin/python bench/intake.py --n 2000 --workers 1,4,8 --json
Options: --skip-sqlite, --skip-postgres, --pg-admin-url URL (else TEST_POSTGRES_URL or the local server as postgres).
PostgreSQL is skipped, with a message, when it does not answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/intake.py`, Python puts bench/ first on the path, where bench/queue.py would shadow the
# standard library's `queue` for everything imported later. Put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from core import api_keys, demo  # noqa: E402
from db.models import Lead  # noqa: E402
from db.scratch import DEFAULT_POSTGRES_ADMIN_URL, PostgresUnavailable, postgres_database, sqlite_database  # noqa: E402
from db.session import make_engine, session_scope  # noqa: E402

TARGET_P50_MS = 20.0
# Each key may send 60 requests at once; staying well under that keeps the limiter out of the figures.
REQUESTS_PER_KEY = 40
# The server process gets its database URL this way, not as an argument that `ps` would show with its password.
URL_VARIABLE = "LEADOPS_BENCH_DATABASE_URL"


@dataclass
class Result:
    database: str
    workers: int
    requests: int
    created: int
    errors: dict[str, int]
    seconds: float
    leads_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


# --- the server (its own process) -------------------------------------------------------------------------------

def serve(url: str, port: int) -> None:
    """Serves the API's real routes for `url` until terminated (the child process's whole job)."""
    import uvicorn
    from starlette.applications import Starlette

    from api.routes import Api
    from core.config import Settings

    # Explicit Nones: the developer's shell must not switch the benchmark to Gemini or add webhooks.
    settings = Settings(_env_file=None, database_url=url, gemini_api_key=None, leadops_api_key=None,  # type: ignore[call-arg]
                        webhook_url=None, smtp_host=None)
    app = Starlette(routes=Api(engine=make_engine(url), settings=settings).routes())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def api_server(url: str) -> Iterator[str]:
    """The API for `url` served by a child process; yields its base URL and stops it afterwards."""
    port = _free_port()
    log = tempfile.TemporaryFile(mode="w+")
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", "--port", str(port)],
                             cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, URL_VARIABLE: url})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the API server exited with {child.returncode}:\n{log.read()}")
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not answer /api/health within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


# --- databases --------------------------------------------------------------------------------------------------

def make_keys(url: str, count: int) -> list[str]:
    """`count` fresh API keys (their secrets live only in this process's memory)."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return [api_keys.create(session=session, name=f"bench {i}")[1] for i in range(count)]
    finally:
        engine.dispose()


def count_leads(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return session.scalar(select(func.count()).select_from(Lead)) or 0
    finally:
        engine.dispose()


# --- the load -----------------------------------------------------------------------------------------------------

def send(base: str, keys: list[str], bodies: list[dict[str, str]], workers: int) -> tuple[list[float], Counter[str],
                                                                                          float]:
    """Posts every body, spread over `workers` threads; returns the latencies (ms), answers by status and wall time."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                headers = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
                started = time.perf_counter()
                try:
                    status = str(client.post("/api/leads", json=bodies[i], headers=headers).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    statuses[status] += 1

    threads = [threading.Thread(target=worker, name=f"client-{n}") for n in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses, time.perf_counter() - started


def bench_database(label: str, url: str, *, n: int, workers: list[int], warmup: int) -> list[Result]:
    """Warm-up, then one timed run per concurrency level against a server for `url`."""
    bodies = demo.lead_bodies(warmup + n * len(workers), seed=11)
    results = []
    with api_server(url) as base:
        send(base, make_keys(url, math.ceil(warmup / REQUESTS_PER_KEY)), bodies[:warmup], 1)
        for run, concurrency in enumerate(workers):
            keys = make_keys(url, math.ceil(n / REQUESTS_PER_KEY))
            batch = bodies[warmup + run * n: warmup + (run + 1) * n]
            print(f"{label}: {n} leads from {concurrency} client(s)", file=sys.stderr)
            latencies, statuses, seconds = send(base, keys, batch, concurrency)
            created = statuses.get("201", 0)
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            results.append(Result(label, concurrency, n, created, {k: v for k, v in statuses.items() if k != "201"},
                                  round(seconds, 2), round(created / seconds, 1), round(cuts[49], 2),
                                  round(cuts[94], 2), round(cuts[98], 2), round(max(latencies), 2)))
    stored = count_leads(url)
    expected = warmup + sum(r.created for r in results)
    if stored < expected:
        print(f"{label}: only {stored} leads stored of {expected} created", file=sys.stderr)
    return results


def print_table(results: list[Result]) -> None:
    print(f"\nPOST /api/leads with the rules engine; target p50 < {TARGET_P50_MS:.0f} ms")
    print(f"{'database':<11} {'clients':>7} {'leads':>6} {'created':>7} {'leads/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8}  errors")
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items())) or "-"
        flag = "" if r.p50_ms < TARGET_P50_MS else "  <-- p50 over target"
        print(f"{r.database:<11} {r.workers:>7} {r.requests:>6} {r.created:>7} {r.leads_per_s:>8.1f} {r.p50_ms:>8.2f} "
              f"{r.p95_ms:>8.2f} {r.p99_ms:>8.2f} {r.max_ms:>8.2f}  {errors}{flag}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="leads per run (default 500)")
    parser.add_argument("--workers", default="1,4", help="concurrent clients, one run each (default 1,4)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed leads first (default 20)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--pg-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL, help="where to create the fresh database")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(os.environ[URL_VARIABLE], args.port)
        return 0
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.n < 2 or not workers or min(workers) < 1:
        parser.error("--n must be at least 2 and --workers a list of whole numbers from 1")

    results: list[Result] = []
    if not args.skip_sqlite:
        with sqlite_database() as url:
            results += bench_database("SQLite", url, n=args.n, workers=workers, warmup=args.warmup)
    if not args.skip_postgres:
        try:
            with postgres_database(args.pg_admin_url, prefix="leadops_bench") as pg_url:
                results += bench_database("PostgreSQL", pg_url, n=args.n, workers=workers, warmup=args.warmup)
        except PostgresUnavailable as exc:
            print(f"{exc}; skipping PostgreSQL", file=sys.stderr)
    if not results:
        print("nothing was measured", file=sys.stderr)
        return 1
    print_table(results)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
