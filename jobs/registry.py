"""The jobs a pass can be run of, by name (the CLI, the scheduler and `POST /api/jobs/{name}` share this)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from core import day_stats, digest, followups, insights, learned_score, reanalysis, webhooks
from core.config import Settings

JobFn = Callable[[Engine, Settings], str]


def _reanalyze(engine: Engine, settings: Settings) -> str:
    return reanalysis.run_pass(engine=engine, settings=settings).line()


def _followups(engine: Engine, settings: Settings) -> str:
    return followups.run_pass(engine=engine, settings=settings).line()


def _insights(engine: Engine, settings: Settings) -> str:
    line = insights.run_pass(engine=engine, settings=settings).line()
    # Every READY report whose digest has not gone out yet (new ones, or SMTP was down last time).
    sent = [summary.line() for summary in digest.send_pending(engine=engine, settings=settings)]
    return "; ".join([line, *sent])


def _webhooks(engine: Engine, settings: Settings) -> str:
    return webhooks.run_pass(engine=engine, settings=settings).line()


def _dashboard(engine: Engine, settings: Settings) -> str:
    return day_stats.run_pass(engine=engine, settings=settings).line()


def _learn(engine: Engine, settings: Settings) -> str:
    return learned_score.run_pass(engine=engine, settings=settings).line()


# name -> (one pass returning its summary line, seconds between passes in the jobs process)
JOBS: dict[str, tuple[JobFn, int]] = {
    "followups": (_followups, 60),
    "webhooks": (_webhooks, 5),
    "reanalyze": (_reanalyze, 300),
    "insights": (_insights, 3600),
    "learn": (_learn, 3600),
    "dashboard": (_dashboard, 60),
}


def run(name: str, *, engine: Engine, settings: Settings) -> str:
    """Runs one pass of the named job and returns its one-line summary."""
    job, _interval = JOBS[name]
    return job(engine, settings)
