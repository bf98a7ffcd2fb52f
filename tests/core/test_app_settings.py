"""Settings kept in the database: secrets generated once, even when two processes ask at the same moment."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from core import app_settings
from db.session import make_engine, run_with_retry, session_scope


def test_two_processes_asking_for_a_new_secret_at_once_get_the_same_one(engine: Engine, db_url: str) -> None:
    barrier = threading.Barrier(4)
    answers: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        own = make_engine(db_url)
        try:
            barrier.wait()

            def once() -> str:
                with session_scope(own) as session:
                    return app_settings.get_or_create_secret(session=session, key="unsubscribe_key")
            answers.append(run_with_retry(once, what="test"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(answers) == 4 and len(set(answers)) == 1 and len(answers[0]) >= 40
    with session_scope(engine) as session:
        assert app_settings.get_or_create_secret(session=session, key="unsubscribe_key") == answers[0]
