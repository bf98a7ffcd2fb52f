"""Settings kept in the database: secrets generated once, even when two processes ask at the same moment."""

from __future__ import annotations

import threading

import pytest
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


@pytest.mark.parametrize(("typed", "origin"), [
    ("https://www.example.com/", "https://www.example.com"),
    ("HTTPS://Shop.Example.com:443", "https://shop.example.com"),
    ("http://localhost:8080", "http://localhost:8080"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("https:\u2060//www\u2060.example.com", "https://www.example.com"),  # copied out of an error message
])
def test_origins_are_kept_as_a_browser_sends_them(typed: str, origin: str):
    assert app_settings.normalise_origin(typed) == origin


@pytest.mark.parametrize(("typed", "says"), [
    ("www.example.com", "write it as https://www.example.com"),
    ("https://example.com/contact", "keep only https://example.com"),
    ("ftp://example.com", "not a web origin: write it as https://example.com"),
    ("https://example.com:80x", "port that is not a number"),
    ("https://example.com:99999", "port that is not a number from 1 to 65535"),
])
def test_what_a_browser_never_sends_is_refused_with_the_fix(typed: str, says: str):
    with pytest.raises(ValueError, match=says):
        app_settings.normalise_origin(typed)
