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
    "handled",           # handlers that returned normally (including Start/Shutdown/Timeout)
    "handler_errors",    # handlers that raised (logged, actor keeps running); not in handled
    "unhandled",         # messages with no handler (on_unhandled was called)
    "timers_fired",      # Timeout messages delivered to a handler
    "peers_closed",      # idle peer sockets closed to stay within max_peers
    "zmq_unflushed_at_end",  # end() found ZeroMQ still holding messages after its linger
    "auth_denied",       # CURVE: handshakes refused, client key not on the allow-list
    "handshakes_failed",  # CURVE: handshakes failed before authentication (no CURVE, wrong key)
    "keys_ignored",      # unknown envelope keys and payload fields skipped (tolerated)
)

# Peers named in the unsent ledger; beyond this, further peers are summed under one key.
# Why a bound: reply() targets come from the network (a sender_endpoint per frame).
MAX_LEDGER_PEERS = 1024
OTHER_PEERS = "(other peers)"


class Stats:
    __slots__ = ("_lock", "_counts", "_drops", "_unsent")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()
        self._unsent: dict[str, Counter[str]] = {}

    def inc(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def drop(self, cause: str, n: int = 1) -> None:
        with self._lock:
            self._drops[cause] += n

    def lost(self, peer: str, cause: str, n: int = 1) -> None:
        """``n`` messages send() had accepted for ``peer`` never reached ZeroMQ: counted as
        a drop and in the per-peer ledger (``unsent``)."""
        with self._lock:
            self._drops[cause] += n
            ledger = self._unsent.get(peer)
            if ledger is None:
                if len(self._unsent) >= MAX_LEDGER_PEERS:
                    peer = OTHER_PEERS
                ledger = self._unsent.setdefault(peer, Counter())
            ledger[cause] += n

    def unsent(self) -> dict:
        with self._lock:
            return {peer: dict(c) for peer, c in self._unsent.items()}

    def snapshot(self) -> dict:
        with self._lock:
            out: dict = {k: self._counts.get(k, 0) for k in COUNTERS}
            out["dropped"] = dict(self._drops)
            out["dropped_total"] = sum(self._drops.values())
            out["unsent"] = {peer: dict(c) for peer, c in self._unsent.items()}
            out["unsent_total"] = sum(sum(c.values()) for c in self._unsent.values())
        return out
