"""Waiting for a lock: attempts spaced by jittered exponential backoff until a deadline (store lock, DuckDB lock)."""
from __future__ import annotations

import random
import time
from typing import Iterator


def retry_waits(timeout: float, first: float, longest: float = 0.25) -> Iterator[None]:
    """Yield once per attempt; between attempts sleep `first`, growing 1.6x up to `longest`, each jittered.
    The loop ends (a `for ... else` runs) once an attempt has failed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        yield
        if time.monotonic() >= deadline:
            return
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 1.6, longest)
