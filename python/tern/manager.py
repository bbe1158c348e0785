"""The Manager: owns actors, their threads, the timer thread and the ZeroMQ transport."""

from __future__ import annotations

import heapq
import itertools
import logging
import signal
import sys
import threading
import time
from typing import Any, Optional

from . import lifecycle, wire
from .ask import inbox_of, is_reply_name
from .actor import _FINAL, _FROM_TIMER, Actor, ActorRef, LocalActorRef, RemoteActorRef, _Cell
from .messages import Reject, Shutdown, Start, Timeout, _spec_for, PayloadError
from .security import valid_key
from .stats import Stats
from .registry import ManagerLink
from .transport import EndReport, Transport, TransportConfig

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
    """Runs actors. ``endpoint`` (e.g. ``"tcp://127.0.0.1:5001"``; ``"tcp://*:5001"`` listens on every interface: trusted networks only, or with CURVE) is the PULL endpoint remote
    peers send to; None means this process only sends (its actors cannot be answered).

    Lifecycle: ``manage()`` actors, ``init()`` (starts threads, delivers Start), ``run()``
    (blocks until ``terminate()``), ``end()`` (delivers Shutdown, drains, joins, closes;
    returns an EndReport of what could not be sent).
    ``advertise`` overrides the endpoint put in ``sender_endpoint`` (default: the bind
    endpoint with ``*``/``0.0.0.0`` replaced by ``localhost``). ``raise_on_drop`` is the
    default of every send's ``raise_on_drop`` (False: a refused send returns False; True:
    it raises SendError). Keyword arguments of TransportConfig (linger_ms, max_peers,
    max_backlog, max_message_bytes, sndhwm, curve) are accepted.
    ``curve=tern.CurveConfig(key_file, allow_dir)`` turns on CURVE (see tern.security);
    without it the transport is plain TCP, for trusted networks only.

    ``registry`` (e.g. ``"tcp://127.0.0.1:5555"``): a name service (docs/registry.md). The
    Manager then registers its actors there at ``init()`` (and those managed later) under
    ``manager_id`` (default: unique per process), heartbeats every ``registry_heartbeat``
    seconds, and unregisters them at ``end()``; ``lookup_remote(name)`` and
    ``remote_actors()`` ask it. Each registry request waits at most ``registry_timeout``.
    With ``curve=`` the Manager registers its public key with each name (extension
    ``actor_server_key``); ``registry_server_key`` (the registry's public key, Z85) makes
    the registry connection CURVE too, with the Manager's own key pair (so it needs
    ``curve=``), and lets ``lookup_remote(name)`` take the peer's key from the registry.

    ``replace``: when ``init()`` finds another running Manager of this process bound to
    the same endpoint (a notebook cell run twice), True ends that one first (logged);
    False raises OSError naming it. A Manager still running at interpreter exit is ended.
    """

    def __init__(self, endpoint: Optional[str] = None, *, advertise: Optional[str] = None,
                 join_timeout: float = 10.0, raise_on_drop: bool = False, replace: bool = True,
                 registry: Optional[str] = None, manager_id: Optional[str] = None,
                 registry_timeout: float = 5.0, registry_heartbeat: float = 2.0,
                 registry_server_key: Optional[str] = None,
                 **transport_options: Any) -> None:
        if endpoint is not None and (not isinstance(endpoint, str) or "://" not in endpoint):
            raise ValueError(f"invalid endpoint {endpoint!r}: expected e.g. 'tcp://127.0.0.1:5001'")
        self.endpoint = endpoint
        if advertise is None and endpoint is not None:
            advertise = wire.connect_address(endpoint)
        self.advertised_endpoint: Optional[str] = advertise
        self.join_timeout = join_timeout
        self.replace = replace
        caller = sys._getframe(1)
        self._origin = f"{caller.f_code.co_filename}:{caller.f_lineno}"  # for error messages
        self.raise_on_drop = bool(raise_on_drop)
        self._report: Optional[EndReport] = None
        self._stats = Stats()
        self._cells: dict[str, _Cell] = {}
        self._lock = threading.Lock()
        self._state = "new"  # new -> running -> ended
        self._terminated = threading.Event()
        self._timers = _Timers()
        self._transport = Transport(endpoint, self._route, self._stats,
                                    TransportConfig(**transport_options))
        self._registry: Optional[ManagerLink] = None
        curve = self._transport.curve
        if registry_server_key is not None and registry is None:
            raise ValueError("registry_server_key given without registry=")
        if registry_server_key is not None and curve is None:
            raise ValueError("registry_server_key needs curve=tern.CurveConfig(...): the "
                             "Manager's own key pair is its key at the registry")
        if registry is not None:
            keys = (curve.public_key, curve.secret_key) if registry_server_key else None
            self._registry = ManagerLink(registry, manager_id, self.advertised_endpoint,
                                         timeout=registry_timeout,
                                         heartbeat_s=registry_heartbeat,
                                         server_key=registry_server_key, key_pair=keys,
                                         own_key=curve.public_key if curve else None)

    # -- set-up ------------------------------------------------------------------------

    def manage(self, name: str, actor: Actor) -> LocalActorRef:
        """Add ``actor`` under ``name`` and return its reference. Start is queued first in
        its mailbox. If the Manager is already running the actor's thread starts now."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"actor name must be a non-empty string, got {name!r}")
        if is_reply_name(name):
            raise ValueError(f"actor name {name!r} is reserved: names starting with "
                             f"'_ask.' address replies to ask()")
        if not isinstance(actor, Actor):
            raise TypeError(f"{type(actor).__name__} is not a tern.Actor")
        if actor._tern_cell is not None:
            raise ValueError(f"actor {name!r} is already managed as {actor._tern_cell.name!r}")
        if self._registry is not None and self._state == "running" and name not in self._cells:
            # Registered before it is added: a refused name (NameTaken naming the owner)
            # leaves nothing behind. A name taken locally meanwhile is refused below.
            self._registry.register(name)
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
        handles Start first). Raises OSError naming the endpoint if the bind fails.
        Another running Manager of this process on the same endpoint is ended first
        (``replace=True``) or named in the OSError (``replace=False``)."""
        if self._state == "new":
            lifecycle.before_bind(self, self.replace)
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"init() called twice (state {self._state})")
            try:
                self._transport.start()
            except OSError as exc:
                raise lifecycle.bind_failed(self, exc) from None
            if self._registry is not None:
                try:  # after the bind (so the endpoint we register is live), before Start
                    self._registry.register_all(list(self._cells))
                except BaseException:
                    self._state = "ended"
                    self._registry.stop()
                    self._transport.stop()
                    raise
                self._registry.start()
            lifecycle.started(self)
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

    def end(self) -> EndReport:
        """Stop timers, deliver Shutdown to every actor behind its queued messages, join
        the actor threads, then flush and close the transport: messages still held for
        slow peers are handed to ZeroMQ for at most ``linger_ms``; what is still held then
        is not sent (logged per peer, counted ``unsent_at_end``); ZeroMQ then gets at most
        ``linger_ms`` more to write out what it accepted. Returns the EndReport: every
        message a remote ``send()`` accepted but that never reached ZeroMQ, by peer and
        cause, and whether ZeroMQ wrote out all it held. Idempotent (later calls return the
        same report, after the first has finished). Must not be called from an actor's own
        thread."""
        with self._lock:
            ended_already = self._state == "ended"
            cells = list(self._cells.values())
            me = threading.current_thread()
            if any(c.thread is me for c in cells):
                raise RuntimeError("end() called from an actor thread; call terminate() instead")
            was_running = self._state == "running"
            self._state = "ended"
        if ended_already:  # the first end() may still be running: stop() waits for it
            return self._transport.stop()
        self._terminated.set()
        if self._registry is not None:
            self._registry.stop()  # unregister first: nobody should find a stopping actor
        lifecycle.ended(self)
        inbox = self.__dict__.get("_inbox")
        if inbox is not None:  # fail the asks still waiting (tern.ask)
            inbox.close()
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
        return self._transport.stop()

    def __enter__(self) -> "Manager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end()

    # -- references and stats -----------------------------------------------------------

    def lookup(self, name: str) -> Optional[LocalActorRef]:
        """The local actor named ``name``, or None."""
        cell = self._cells.get(name)
        return cell.ref if cell is not None else None

    def remote(self, name: str, endpoint: str,
               server_key: Optional[str] = None) -> RemoteActorRef:
        """A reference to actor ``name`` in the process whose PULL socket is ``endpoint``.

        With CURVE on, ``server_key`` is required: that process's public key (Z85, e.g.
        ``tern.security.load_public_key("pong.key")``); without CURVE it must be None.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"actor name must be a non-empty string, got {name!r}")
        if not isinstance(endpoint, str) or "://" not in endpoint:
            raise ValueError(f"invalid endpoint {endpoint!r}: expected e.g. 'tcp://host:5001'")
        return RemoteActorRef(name, endpoint, self, self._check_server_key(name, server_key))

    def _check_server_key(self, name: str, server_key: Any) -> Optional[str]:
        if isinstance(server_key, bytes):
            server_key = server_key.decode("ascii", "replace")
        if self._transport.curve is None:
            if server_key is not None:
                raise ValueError(f"remote({name!r}) was given a server key but CURVE is off")
        elif server_key is None:
            raise ValueError(f"CURVE is on: remote({name!r}) needs the peer's public key "
                             "(server_key=)")
        elif not valid_key(server_key):
            raise ValueError(f"server key {server_key!r} for remote({name!r}) is not a CURVE "
                             "public key (40 characters of Z85)")
        return server_key

    @property
    def public_key(self) -> Optional[str]:
        """Our CURVE public key (Z85), what peers pass as server_key; None when CURVE is off."""
        return self._transport.curve.public_key if self._transport.curve else None

    def lookup_remote(self, name: str, *, allow_offline: bool = False,
                      server_key: Optional[str] = None) -> RemoteActorRef:
        """Ask the registry for actor ``name`` (any language, any process). Returns a
        RemoteActorRef whose endpoint is re-resolved every heartbeat period. With CURVE on,
        the peer's public key is ``server_key`` when given, else the key the peer registered
        (extension ``actor_server_key``), taken only from a CURVE registry
        (``registry_server_key=``); a plain registry's keys are never used, so there
        ``server_key`` is required, as for ``remote()``. Raises
        ``tern.NotFound`` (not registered), ``tern.Offline`` (its manager stopped
        heartbeating; ``allow_offline=True`` returns the ref anyway) or
        ``tern.RegistryError`` (no reply within ``registry_timeout``). Blocks for one
        round trip; any thread."""
        link = self._need_registry()
        want_key = server_key is None and self._transport.curve is not None and link.secure
        if not want_key:
            try:
                server_key = self._check_server_key(name, server_key)
            except ValueError as exc:
                if server_key is None:  # CURVE on, plain registry
                    raise ValueError(f"{exc}, or a CURVE registry (registry_server_key=) that "
                                     f"gives the key registered with the name") from None
                raise
        return link.lookup(self, name, allow_offline, server_key, want_key)

    def remote_actors(self) -> list[dict]:
        """Everything the registry holds: ``[{"actor_name", "endpoint", "online",
        "manager_id"}, ...]`` (plus ``server_key`` for names registered with one). Uses ListActors, a tern extension: a family registry answers
        it with an error (raised as RegistryError). Blocks for one round trip."""
        return self._need_registry().list()

    @property
    def manager_id(self) -> Optional[str]:
        """The id this Manager registers under (None without a registry)."""
        return self._registry.manager_id if self._registry is not None else None

    def _need_registry(self) -> ManagerLink:
        if self._registry is None:
            raise RuntimeError("this Manager has no registry: pass registry='tcp://host:5555'")
        return self._registry

    def stats(self) -> dict:
        """A snapshot of the counters: messages in/out, rejects, errors, drops by cause,
        ``unsent`` ({peer: {cause: n}} accepted but never handed to ZeroMQ), ``held``
        (accepted remote messages not yet handed to ZeroMQ), and the registry_* counters
        with a registry."""
        out = self._stats.snapshot()
        out["held"] = self._transport.held()
        if self._registry is not None:
            out.update(self._registry.counters())
        return out

    @property
    def actors(self) -> list[str]:
        """Names of the actors managed here (local ones), in the order they were managed.
        A new list each time; any thread."""
        return list(self._cells)

    # -- transport thread ----------------------------------------------------------------

    def _route(self, env: wire.Envelope, server_key: Optional[str] = None) -> Optional[tuple]:
        """Deliver one checked inbound envelope (``server_key``: the CURVE key its sender
        authenticated with, where replies must go). Returns None, or (drop cause, Reject
        reason or None)."""
        cell: Any = self._cells.get(env.receiver)
        if cell is None and is_reply_name(env.receiver):  # a reply to ask() (tern.ask)
            cell = inbox_of(self).lookup(env.receiver)
            if cell is None:  # its ask timed out or was cancelled: count, do not bounce
                return "late_reply", None
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
            sender = RemoteActorRef(env.sender_actor, env.sender_endpoint, self, server_key)
        if not cell.put(msg, sender):
            return "actor_stopped", None
        self._stats.inc("messages_in")
        if type(msg) is Reject:
            self._stats.inc("rejects_received")
        return None
