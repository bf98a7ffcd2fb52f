"""`python -m jobs` runs every job on its schedule; `python -m jobs run NAME` runs one pass and exits."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler

from core.config import get_settings
from db.session import get_engine
from jobs import registry

log = logging.getLogger("jobs")


def run_once(name: str) -> int:
    """One pass of one job; prints its summary line."""
    settings = get_settings()
    try:
        print(registry.run(name, engine=get_engine(settings.database_url), settings=settings))
    except Exception as exc:  # noqa: BLE001 - the exit code and one line are the job's whole report
        log.exception("job %s failed", name)
        print(f"{name}: failed: {exc}", file=sys.stderr)
        return 1
    return 0


def serve() -> int:
    """The long-running jobs process: one scheduler, in-memory job store, each job with an explicit id."""
    settings = get_settings()
    engine = get_engine(settings.database_url)
    scheduler = BlockingScheduler(timezone=settings.leadops_timezone)

    last_line: dict[str, str] = {}

    def make_pass(name: str):  # noqa: ANN202 - a closure per job
        def one_pass() -> None:
            try:
                line = registry.run(name, engine=engine, settings=settings)
            except Exception:
                log.exception("job %s failed; the next pass will try again", name)
                last_line.pop(name, None)
                return
            # The webhooks job runs every 5 s: an idle pass repeating the last line is not worth a log line.
            log.log(logging.DEBUG if last_line.get(name) == line else logging.INFO, "%s", line)
            last_line[name] = line
        return one_pass

    for name, (_job, interval) in registry.JOBS.items():
        # The scheduler only triggers passes; coalescing and a generous grace time stop a slow pass from piling up.
        # The first pass runs at start (not one interval later): a restart does not delay what is due.
        scheduler.add_job(make_pass(name), "interval", seconds=interval, id=name, name=name, coalesce=True,
                          max_instances=1, misfire_grace_time=interval, next_run_time=datetime.now(UTC))
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    log.info("jobs process started: %s", ", ".join(registry.JOBS))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs", description="LeadOps background jobs")
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("run", help="run one pass of one job and exit")
    one.add_argument("name", choices=sorted(registry.JOBS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler announces every job it adds and runs; our own line per pass says what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return run_once(args.name) if args.command == "run" else serve()


if __name__ == "__main__":
    sys.exit(main())
