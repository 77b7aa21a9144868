"""Charging many saved methods at once without going over the gateway's request rate.

Stripe allows about 100 requests per second in live mode and 25 in test mode; going over earns 429s, which the
gateway layer reports as "unavailable" (outcome unknown), so every charge above the limit would become a replay for
reconciliation. A token bucket shared by the worker threads keeps the calls under the configured rate, and enough
threads run that the gateway's latency does not keep the rate below it (rate x latency calls are in the air).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_RATE_PER_SECOND = 25
#: Threads per request/second of the limit: at 0.5, a 25/s limit runs 13 threads, enough for 500 ms per call.
THREADS_PER_RATE = 0.5
MAX_THREADS = 64


class TokenBucket:
    """``take()`` blocks until a request may be sent. Starts with one second's worth of tokens, refills at ``rate``
    per second, never holds more than ``burst``."""

    def __init__(self, rate: float, *, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("the rate limit must be above zero")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.burst
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)


class Turns:
    """At most ``n`` threads at a time work on the database; the others wait for the network (the gateway, the mail
    relay) meanwhile. A thread takes a turn with ``held()`` and gives it back around a network wait with
    ``Turns.given_back()``, only with no transaction open: it never waits for a turn while holding a lock or a
    connection another thread needs."""

    _current = threading.local()  # the Turns whose turn this thread holds, if any

    def __init__(self, n: int):
        self._free = threading.Semaphore(max(1, n))

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._free:
            Turns._current.turns = self
            try:
                yield
            finally:
                Turns._current.turns = None

    @staticmethod
    @contextmanager
    def given_back() -> Iterator[None]:
        """Around a wait on the network: this thread's turn, if it holds one, is another thread's meanwhile. The
        caller has ended its transaction (``locks.end_reads``)."""
        turns: Turns | None = getattr(Turns._current, "turns", None)
        if turns is None:
            yield
            return
        turns._free.release()
        try:
            yield
        finally:
            turns._free.acquire()


def threads_for(rate: float) -> int:
    return max(1, min(MAX_THREADS, round(rate * THREADS_PER_RATE) or 1))


def run_all(work: Callable[[T], R], items: Iterable[T], *, threads: int,
            on_done: Callable[[T, R], None] | None = None) -> list[R]:
    """Run ``work`` over ``items`` on ``threads`` threads; results in completion order. ``work`` must catch what it
    can handle: an exception here stops the run (after the running items finish) and is raised."""
    results: list[R] = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="run-due") as pool:
        futures = {pool.submit(work, item): item for item in items}
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_done is not None:
                on_done(futures[future], result)
    return results

