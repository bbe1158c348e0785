"""The Manager: owns actors, their threads, the timer thread and the ZeroMQ transport."""

from __future__ import annotations

import heapq
import itertools
import logging
import signal
import threading
import time
from typing import Any, Optional

from . import wire
from .actor import _FINAL, _FROM_TIMER, Actor, ActorRef, LocalActorRef, RemoteActorRef, _Cell
from .messages import Reject, Shutdown, Start, Timeout, _spec_for, PayloadError
from .stats import Stats
from .transport import Transport, TransportConfig

__all__ = ["Manager"]

log = logging.getLogger("tern")


class _Timers:
    """One thread per Manager; a heap of deadlines and a Condition wait until the next."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []  # (deadline, timer id); ids never repeat
        self._live: dict[int, tuple[_Cell, float]] = {}  # id -> (cell, period or 0.0)
        self._ids = itertools.count(1)
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    def add(self, cell: _Cell, seconds: float, periodic: bool) -> int:
        seconds = float(seconds)
        if not seconds >= 0.0:
            raise ValueError(f"timer delay must be >= 0, got {seconds!r}")
        if periodic and seconds <= 0.0:
            raise ValueError("a periodic timer needs a period > 0")
        with self._cond:
            tid = next(self._ids)
            self._live[tid] = (cell, seconds if periodic else 0.0)
            cell.timers.add(tid)
            heapq.heappush(self._heap, (time.monotonic() + seconds, tid))
            if self._heap[0][1] == tid:  # new earliest deadline: re-arm the wait
                self._cond.notify()
        return tid

    def cancel(self, cell: _Cell, tid: int) -> bool:
        with self._cond:
            if tid not in cell.timers:
                return False
            # Also covers a one-shot that fired but whose Timeout is still queued: the
            # actor skips Timeouts whose id is no longer in cell.timers.
            cell.timers.discard(tid)
            self._live.pop(tid, None)  # its heap entry is skipped when it comes up
        return True

    def is_periodic(self, tid: int) -> bool:
        entry = self._live.get(tid)
        return entry is not None and entry[1] > 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tern-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        heap, live, cond = self._heap, self._live, self._cond
        with cond:
            while not self._stopping:
                if not heap:
                    cond.wait()
                    continue
                deadline, tid = heap[0]
                now = time.monotonic()
                if deadline > now:
                    cond.wait(deadline - now)
                    continue
                heapq.heappop(heap)
                entry = live.get(tid)
                if entry is None:
                    continue  # cancelled
                cell, period = entry
                if period > 0.0:
                    # Next deadline from the previous one (no drift); if we fell behind,
                    # do not fire a burst to catch up.
                    heapq.heappush(heap, (max(deadline + period, now), tid))
                else:
                    del live[tid]
                cell.put(Timeout(tid), _FROM_TIMER)


class Manager:
    """Runs actors. ``endpoint`` (e.g. ``"tcp://*:5001"``) is the PULL endpoint remote
    peers send to; None means this process only sends (its actors cannot be answered).

    Lifecycle: ``manage()`` actors, ``init()`` (starts threads, delivers Start), ``run()``
    (blocks until ``terminate()``), ``end()`` (delivers Shutdown, drains, joins, closes).
    ``advertise`` overrides the endpoint put in ``sender_endpoint`` (default: the bind
    endpoint with ``*``/``0.0.0.0`` replaced by ``localhost``). Keyword arguments of
    TransportConfig (linger_ms, max_peers, max_backlog, max_message_bytes) are accepted.
    """

    def __init__(self, endpoint: Optional[str] = None, *, advertise: Optional[str] = None,
                 join_timeout: float = 10.0, **transport_options: Any) -> None:
        if endpoint is not None and (not isinstance(endpoint, str) or "://" not in endpoint):
            raise ValueError(f"invalid endpoint {endpoint!r}: expected e.g. 'tcp://*:5001'")
        self.endpoint = endpoint
        if advertise is None and endpoint is not None:
            advertise = wire.connect_address(endpoint)
        self.advertised_endpoint: Optional[str] = advertise
        self.join_timeout = join_timeout
        self._stats = Stats()
        self._cells: dict[str, _Cell] = {}
        self._lock = threading.Lock()
        self._state = "new"  # new -> running -> ended
        self._terminated = threading.Event()
        self._timers = _Timers()
        self._transport = Transport(endpoint, self._route, self._stats,
                                    TransportConfig(**transport_options))

    # -- set-up ------------------------------------------------------------------------

    def manage(self, name: str, actor: Actor) -> LocalActorRef:
        """Add ``actor`` under ``name`` and return its reference. Start is queued first in
        its mailbox. If the Manager is already running the actor's thread starts now."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"actor name must be a non-empty string, got {name!r}")
        if not isinstance(actor, Actor):
            raise TypeError(f"{type(actor).__name__} is not a tern.Actor")
        if actor._tern_cell is not None:
            raise ValueError(f"actor {name!r} is already managed as {actor._tern_cell.name!r}")
        with self._lock:
            if self._state == "ended":
                raise RuntimeError("manage() after end()")
            if name in self._cells:
                raise ValueError(f"an actor named {name!r} is already managed")
            cell = _Cell(name, actor, self)
            actor._tern_cell = cell
            actor.manager = self
            actor.self_ref = cell.ref
            cell.put(Start(), None)
            self._cells[name] = cell
            if self._state == "running":
                cell.start()
        return cell.ref

    def init(self) -> None:
        """Bind the endpoint, start the transport, timer and actor threads (each actor
        handles Start first). Raises OSError naming the endpoint if the bind fails."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"init() called twice (state {self._state})")
            self._transport.start()
            self._timers.start()
            self._state = "running"
            for cell in self._cells.values():
                cell.start()

    def run(self, timeout: Optional[float] = None) -> bool:
        """Block until ``terminate()`` (from any thread or actor), or SIGINT/SIGTERM when
        called from the main thread. Returns True if terminated, False on ``timeout``."""
        ev = self._terminated
        if threading.current_thread() is not threading.main_thread():
            return ev.wait(timeout)
        previous = {}

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("signal %d: terminating", signum)
            # Python runs this handler on the main thread between bytecodes, possibly
            # while that thread holds the Event's internal lock inside wait(): setting
            # the Event from here could deadlock, so a helper thread sets it.
            threading.Thread(target=ev.set, name="tern-signal", daemon=True).start()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not ev.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                ev.wait(left)
            return ev.is_set()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def terminate(self) -> None:
        """Make ``run()`` return. Any thread; idempotent; does not stop the actors."""
        self._terminated.set()

    @property
    def terminated(self) -> bool:
        return self._terminated.is_set()

    def end(self) -> None:
        """Stop timers, deliver Shutdown to every actor behind its queued messages, join
        the actor threads, then flush and close the transport. Idempotent. Must not be
        called from an actor's own thread."""
        with self._lock:
            if self._state == "ended":
                return
            cells = list(self._cells.values())
            me = threading.current_thread()
            if any(c.thread is me for c in cells):
                raise RuntimeError("end() called from an actor thread; call terminate() instead")
            was_running = self._state == "running"
            self._state = "ended"
        self._terminated.set()
        self._timers.stop()
        if was_running:
            for cell in cells:
                cell.put(Shutdown(), _FINAL)
            deadline = time.monotonic() + self.join_timeout
            for cell in cells:
                cell.thread.join(max(0.0, deadline - time.monotonic()))
                if cell.thread.is_alive():
                    log.error("actor %r did not finish its Shutdown within %.1fs",
                              cell.name, self.join_timeout)
        for cell in cells:
            cell.closed = True
        self._transport.stop()

    def __enter__(self) -> "Manager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end()

    # -- references and stats -----------------------------------------------------------

    def lookup(self, name: str) -> Optional[LocalActorRef]:
        """The local actor named ``name``, or None."""
        cell = self._cells.get(name)
        return cell.ref if cell is not None else None

    def remote(self, name: str, endpoint: str) -> RemoteActorRef:
        """A reference to actor ``name`` in the process whose PULL socket is ``endpoint``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"actor name must be a non-empty string, got {name!r}")
        if not isinstance(endpoint, str) or "://" not in endpoint:
            raise ValueError(f"invalid endpoint {endpoint!r}: expected e.g. 'tcp://host:5001'")
        return RemoteActorRef(name, endpoint, self)

    def stats(self) -> dict:
        """A snapshot of the counters: messages in/out, rejects, errors, drops by cause."""
        return self._stats.snapshot()

    @property
    def actors(self) -> list[str]:
        return list(self._cells)

    # -- transport thread ----------------------------------------------------------------

    def _route(self, env: wire.Envelope) -> Optional[tuple]:
        """Deliver one checked inbound envelope. Returns None, or (drop cause, Reject
        reason or None)."""
        cell = self._cells.get(env.receiver)
        if cell is None:
            return "unknown_actor", f"Actor '{env.receiver}' not found"
        spec = _spec_for(env.message_type)
        if spec is None:
            return "unknown_type", f"Unknown message type: {env.message_type}"
        try:
            msg, ignored = spec.build_counted(env.message)
        except PayloadError as exc:
            return "bad_payload", str(exc)
        ignored += env.ignored
        if ignored:
            self._stats.inc("keys_ignored", ignored)
        sender: Optional[ActorRef] = None
        if env.replyable:
            sender = RemoteActorRef(env.sender_actor, env.sender_endpoint, self)
        if not cell.put(msg, sender):
            return "actor_stopped", None
        self._stats.inc("messages_in")
        if type(msg) is Reject:
            self._stats.inc("rejects_received")
        return None
