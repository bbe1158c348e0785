"""Thread-safe counters shared by a Manager's threads."""

from __future__ import annotations

import threading
from collections import Counter

# Top-level counters reported by Manager.stats(); drops are reported per cause.
COUNTERS = (
    "frames_in",         # raw ZeroMQ messages read from our PULL socket
    "messages_in",       # remote messages decoded and queued to a local actor
    "messages_out",      # envelopes handed to ZeroMQ (includes rejects_sent)
    "local_messages",    # messages queued to a local actor by a local send
    "rejects_sent",      # Reject envelopes we answered with
    "rejects_received",  # Reject messages delivered to our actors
    "handled",           # messages an actor handler ran for (including Start/Shutdown/Timeout)
    "handler_errors",    # exceptions raised by handlers (logged, actor keeps running)
    "unhandled",         # messages with no handler (on_unhandled was called)
    "timers_fired",      # Timeout messages delivered to a handler
    "keys_ignored",      # unknown envelope keys and payload fields skipped (tolerated)
)


class Stats:
    __slots__ = ("_lock", "_counts", "_drops")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()

    def inc(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def drop(self, cause: str, n: int = 1) -> None:
        with self._lock:
            self._drops[cause] += n

    def snapshot(self) -> dict:
        with self._lock:
            out: dict = {k: self._counts.get(k, 0) for k in COUNTERS}
            out["dropped"] = dict(self._drops)
            out["dropped_total"] = sum(self._drops.values())
        return out
