"""Passes of a job run at the same moment, each as its own process would: with an engine of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine

from db.session import make_engine

T = TypeVar("T")


def at_once(db_url: str, work: Callable[[Engine], T], times: int = 2, timeout: float = 60) -> list[T]:
    """Runs `work` in `times` threads released together, each with its own engine on `db_url`; returns what each
    returned, and raises the first error any of them raised."""
    barrier = threading.Barrier(times)
    results: list[T] = []
    errors: list[BaseException] = []

    def one() -> None:
        engine = make_engine(db_url)
        try:
            barrier.wait(timeout=10)
            results.append(work(engine))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=one) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
    if len(results) != times:
        raise TimeoutError(f"{times - len(results)} of {times} passes did not finish within {timeout} s")
    return results
