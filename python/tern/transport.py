"""ZeroMQ transport: one thread owns every socket of a Manager.

The transport thread owns the PULL socket bound to the Manager's endpoint, one cached
PUSH socket per peer address, and the receiving end of an inproc PAIR used as a
wake-up. Other threads never touch those sockets: ``post()`` admits an encoded envelope
under a lock (at most ``max_backlog`` held per peer), appends it to a deque and, only if
the transport is not already due to wake, sends one empty frame on the PAIR. The thread
blocks in ``zmq.Poller.poll()`` with no timeout on the PULL socket, the wake socket, and
the PUSH sockets that have a backlog (POLLOUT), so it never sleeps on a timer and never
blocks on a slow peer.

Accounting: every envelope ``post()`` accepted is, exactly once, either handed to ZeroMQ
(``messages_out``) or recorded as not sent, per peer and cause (``Stats.lost``), which
``Manager.end()`` returns in its EndReport.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from typing import Callable, Optional

import zmq

from . import wire
from .security import Curve, CurveConfig
from .stats import Stats

__all__ = ["EndReport", "Transport", "TransportConfig"]

log = logging.getLogger("tern")


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"TransportConfig.{name} must be an int >= {minimum}, got {value!r}")
    return value


class TransportConfig:
    """Tuning knobs of one Manager's transport (all have working defaults).

    Worst-case memory held for outbound messages: ``max_peers * max_backlog`` envelopes in
    our backlogs, plus up to ``sndhwm`` per peer inside ZeroMQ.
    """

    def __init__(self, *, linger_ms: int = 1000, max_peers: int = 256,
                 max_backlog: int = 100_000, max_message_bytes: int = 16 << 20,
                 sndhwm: int = 1000, curve: Optional[CurveConfig] = None) -> None:
        #: end() hands held messages to ZeroMQ for at most this long (what is still held
        #: then is reported unsent), then gives ZeroMQ at most this long again to write
        #: out what it accepted
        self.linger_ms = _check_int("linger_ms", linger_ms, 0)
        #: cached PUSH sockets; beyond this the least recently used idle one is closed.
        #: Also the most peers that may have messages held at once (send() refuses a
        #: message to one more: ``too_many_peers``)
        self.max_peers = _check_int("max_peers", max_peers, 1)
        #: messages send() accepted for one peer and not yet handed to ZeroMQ (waiting
        #: for the transport thread, or held while ZeroMQ's queue for that peer is at its
        #: high-water mark); a send beyond it waits (timeout=) or is refused
        #: (``peer_backlog_full``)
        self.max_backlog = _check_int("max_backlog", max_backlog, 1)
        #: inbound frames larger than this make libzmq drop the connection (ZMQ_MAXMSGSIZE)
        self.max_message_bytes = _check_int("max_message_bytes", max_message_bytes, 1)
        #: ZeroMQ's own queue per peer (ZMQ_SNDHWM, messages); 0 means unbounded
        self.sndhwm = _check_int("sndhwm", sndhwm, 0)
        #: CURVE authentication and encryption (tern.security); None: plain TCP, no
        #: authentication, for trusted networks only
        if curve is not None and not isinstance(curve, CurveConfig):
            raise TypeError(f"curve must be a tern.CurveConfig, got {type(curve).__name__}")
        self.curve = curve


class EndReport:
    """What ``Manager.end()`` could not send: an exact account of the messages ``send()``
    accepted (returned True for) that never reached ZeroMQ, over the Manager's life.

    ``unsent``: {peer address: {cause: count}}; causes: ``unsent_at_end`` (still held when
    end()'s linger ran out), ``send_error`` (ZeroMQ refused it), ``bad_endpoint`` (the
    address could not be connected), ``transport_failed`` (the transport thread died).
    ``total``: their sum. ``zmq_flushed``: False when ZeroMQ itself still held messages it
    had accepted when its linger ran out; libzmq discards those without saying how many
    (at most ``sndhwm`` per peer), so they are not in ``unsent``.
    """

    __slots__ = ("unsent", "total", "zmq_flushed")

    def __init__(self, unsent: dict, zmq_flushed: bool) -> None:
        self.unsent = unsent
        self.total = sum(n for causes in unsent.values() for n in causes.values())
        self.zmq_flushed = zmq_flushed

    @property
    def complete(self) -> bool:
        """True when every accepted message was handed to ZeroMQ and ZeroMQ wrote all."""
        return self.total == 0 and self.zmq_flushed

    def __repr__(self) -> str:
        return (f"EndReport(total={self.total}, unsent={self.unsent!r}, "
                f"zmq_flushed={self.zmq_flushed})")


def _peer_key(addr: str, server_key: Optional[str]) -> str:
    """The key of a peer in _held, _outq and _peers: its address, or with CURVE its
    address and the server key it must prove (one socket per pair)."""
    return addr if server_key is None else addr + "\0" + server_key


def _split_key(pk: str) -> tuple[str, Optional[str]]:
    addr, sep, key = pk.partition("\0")
    return addr, (key if sep else None)


class _Peer:
    __slots__ = ("pk", "addr", "sock", "backlog")

    def __init__(self, pk: str, sock: zmq.Socket) -> None:
        self.pk = pk                      # _peer_key(): what _held and _peers use
        self.addr = _split_key(pk)[0]     # the address: what logs and the ledger name
        self.sock = sock
        self.backlog: deque[bytes] = deque()


# route(envelope, client key or None) -> None when delivered, or (cause, reason) when it was
# not. The key is the CURVE public key the sender authenticated with (None when CURVE is off).
Router = Callable[[wire.Envelope, Optional[str]], Optional[tuple]]


class Transport:
    def __init__(self, bind: Optional[str], router: Router, stats: Stats,
                 config: Optional[TransportConfig] = None) -> None:
        self.bind = bind
        self._route = router
        self._stats = stats
        self._cfg = config or TransportConfig()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # senders waiting for backlog room
        self._waiting = 0
        self._outq: deque[tuple[str, bytes]] = deque()  # (_peer_key, envelope)
        # CURVE: keys and allow-list read now, so a bad file raises in Manager()
        self.curve: Optional[Curve] = Curve(self._cfg.curve) if self._cfg.curve else None
        # _peer_key -> messages accepted and not yet handed to ZeroMQ or recorded as lost
        # (in _outq or a peer's backlog). Entries at 0 are removed, so len() is the number
        # of peers with messages held, at most max_peers.
        self._held: dict[str, int] = {}
        self._wake_pending = False
        self._closed = False
        self._stopping = False
        self._report: Optional[EndReport] = None
        self._thread: Optional[threading.Thread] = None
        self._ctx: Optional[zmq.Context] = None
        self._wake_tx: Optional[zmq.Socket] = None
        self._wake_rx: Optional[zmq.Socket] = None
        self._pull: Optional[zmq.Socket] = None
        self._peers: "OrderedDict[str, _Peer]" = OrderedDict()
        self._peers_at_close = 0  # peer sockets closed by the thread (ctx.term waits on them)
        self._closed_at = 0.0     # when the thread closed them: their linger starts there
        self._evicted = 0
        self._poller = zmq.Poller()

    # -- any thread ------------------------------------------------------------------

    def start(self) -> None:
        """Create the sockets, bind, and start the thread. Raises on a bind failure."""
        ctx = zmq.Context()
        try:
            if self.bind is not None:
                pull = ctx.socket(zmq.PULL)
                pull.setsockopt(zmq.LINGER, 0)
                pull.setsockopt(zmq.MAXMSGSIZE, self._cfg.max_message_bytes)
                if self.curve is not None:  # before bind: the first client needs CURVE
                    try:
                        self.curve.start_server(ctx, pull, self._stats)
                    except BaseException:
                        pull.close(0)
                        raise
                try:
                    pull.bind(self.bind)
                except zmq.ZMQError as exc:
                    if self.curve is not None:
                        self.curve.stop_monitor(pull)
                    pull.close(0)
                    raise OSError(exc.errno, f"cannot bind {self.bind!r}: {exc}") from None
                self._pull = pull
            addr = "inproc://tern-wake"  # each Manager has its own Context
            self._wake_rx = ctx.socket(zmq.PAIR)
            self._wake_rx.setsockopt(zmq.LINGER, 0)
            self._wake_rx.bind(addr)
            self._wake_tx = ctx.socket(zmq.PAIR)
            self._wake_tx.setsockopt(zmq.LINGER, 0)
            self._wake_tx.connect(addr)
        except BaseException:
            if self.curve is not None and self._pull is not None:
                self.curve.stop_monitor(self._pull)
            for s in (self._pull, self._wake_rx, self._wake_tx):
                if s is not None:
                    s.close(0)
            self._pull = self._wake_rx = self._wake_tx = None
            if self.curve is not None:
                self.curve.stop()
            ctx.term()
            raise
        self._ctx = ctx
        # The sockets move to the new thread here; Thread.start() is the memory barrier
        # ZeroMQ asks for when a socket changes threads.
        self._thread = threading.Thread(target=self._run, name="tern-transport", daemon=True)
        self._thread.start()
        with self._lock:
            if self._outq and not self._wake_pending:  # posted before start()
                self._wake()

    def post(self, endpoint: str, data: bytes, timeout: Optional[float] = None,
             server_key: Optional[str] = None) -> Optional[str]:
        """Admit one encoded envelope for ``endpoint`` (with CURVE: whose server must prove
        ``server_key``; each (address, key) pair is a peer of its own). Any thread but the
        transport's.

        Returns None when accepted: it will be handed to ZeroMQ, or recorded as not sent
        (``Stats.lost``, in the EndReport). Otherwise returns the cause (counted as a
        drop): ``peer_backlog_full`` (``max_backlog`` already held for that peer),
        ``too_many_peers`` (``max_peers`` peers already have messages held) or
        ``transport_stopped``. With ``timeout`` (seconds; ``math.inf`` for no limit) a full
        backlog is waited on until room appears, the time is up, or the transport stops;
        without, it never waits.
        """
        pk = _peer_key(wire.connect_address(endpoint), server_key)
        cfg = self._cfg
        held = self._held
        deadline = None
        with self._lock:
            while True:
                if self._closed:
                    cause = "transport_stopped"
                    break
                n = held.get(pk, 0)
                if n < cfg.max_backlog and (n or len(held) < cfg.max_peers):
                    held[pk] = n + 1
                    self._outq.append((pk, data))
                    if not self._wake_pending and self._wake_tx is not None:
                        self._wake()
                    return None
                cause = "peer_backlog_full" if n else "too_many_peers"
                if not timeout:
                    break
                if deadline is None:
                    deadline = time.monotonic() + timeout  # inf stays inf
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._waiting += 1
                try:
                    self._room.wait(None if math.isinf(left) else left)
                finally:
                    self._waiting -= 1
        self._stats.drop(cause)
        return cause

    def held(self) -> int:
        """Messages accepted and not yet handed to ZeroMQ (nor recorded as lost)."""
        with self._lock:
            return sum(self._held.values())

    def _wake(self) -> None:
        # Called with _lock held. At most one wake frame is ever outstanding (the flag is
        # cleared only after the transport took it), so the PAIR never fills; NOBLOCK
        # only matters if the transport thread has died and closed its end.
        self._wake_pending = True
        try:
            self._wake_tx.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _release(self, done: Counter) -> None:
        """Transport thread: ``done[pk]`` held messages left our hands (sent or lost)."""
        held = self._held
        with self._lock:
            for pk, n in done.items():
                left = held.get(pk, 0) - n
                if left > 0:
                    held[pk] = left
                else:
                    held.pop(pk, None)
            if self._waiting:
                self._room.notify_all()

    def stop(self) -> EndReport:
        """Refuse new messages; hand what is held to ZeroMQ for at most linger_ms and
        record what is still held then as unsent; close every socket, giving ZeroMQ at
        most linger_ms to write out what it accepted; join. Returns the EndReport (the
        same one on every later call)."""
        with self._lock:
            if self._stopping:
                stopping_already = True
            else:
                stopping_already = False
                self._stopping = True
                self._closed = True
                self._room.notify_all()  # waiting senders give up: transport_stopped
                if self._wake_tx is not None and not self._wake_pending:
                    self._wake()
        if stopping_already:
            if self._thread is not None:
                self._thread.join()
            while self._report is None:  # another thread is finishing stop()
                time.sleep(0.001)
            return self._report
        try:
            self._report = self._close()
        finally:
            if self._report is None:  # _close() raised: still answer later callers
                self._report = EndReport(self._stats.unsent(), False)
        return self._report

    def _close(self) -> EndReport:
        if self._thread is not None:
            self._thread.join()
        else:  # never started: what was posted will never leave
            self._lose_outq("transport_stopped")
        if self._wake_tx is not None:
            self._wake_tx.close(0)
            self._wake_tx = None
        flushed = True
        if self.curve is not None:
            self.curve.stop()  # its sockets live in the context
        if self._ctx is not None:
            self._ctx.term()  # waits up to linger_ms for the PUSH sockets the thread closed
            # Measured from when the thread closed them (their linger ran from there), so a
            # slow join cannot hide a linger that expired.
            waited = time.monotonic() - self._closed_at
            self._ctx = None
            # term() returns early only once every socket has written all it held; a term
            # that took (nearly) the whole linger discarded what was left.
            if self._peers_at_close and waited >= self._cfg.linger_ms / 1000.0 - 0.005:
                flushed = False
                log.warning("tern: end(): ZeroMQ still held accepted messages for some of "
                            "%d peers after linger_ms=%d; libzmq discarded them (at most "
                            "sndhwm=%d per peer)", self._peers_at_close, self._cfg.linger_ms,
                            self._cfg.sndhwm)
                self._stats.inc("zmq_unflushed_at_end")
        return EndReport(self._stats.unsent(), flushed)

    def _lose_outq(self, cause: str) -> None:
        with self._lock:
            items, self._outq = self._outq, deque()
            self._held.clear()
            self._room.notify_all()
        lost = Counter(_split_key(pk)[0] for pk, _ in items)
        for addr, n in lost.items():
            self._stats.lost(addr, cause, n)

    # -- transport thread --------------------------------------------------------------

    def _run(self) -> None:
        poller = self._poller
        wake, pull = self._wake_rx, self._pull
        poller.register(wake, zmq.POLLIN)
        if pull is not None:
            poller.register(pull, zmq.POLLIN)
        deadline: Optional[float] = None  # set once stop() asked: end of the linger
        cause = "transport_failed"
        try:
            while True:
                timeout = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0 or not any(p.backlog for p in self._peers.values()):
                        cause = "unsent_at_end"
                        return
                    timeout = max(1, math.ceil(left * 1000))
                try:
                    events = poller.poll(timeout)
                except zmq.ZMQError as exc:  # EINTR and the like: just poll again
                    log.debug("poll interrupted: %s", exc)
                    continue
                for sock, ev in events:
                    if sock is wake:
                        if self._drain_outbound() and deadline is None:
                            deadline = time.monotonic() + self._cfg.linger_ms / 1000.0
                            if self._pull is not None:  # the actors are gone: stop reading
                                poller.unregister(self._pull)
                                if self.curve is not None:
                                    self.curve.stop_monitor(self._pull)
                                self._pull.close(0)
                                self._pull = None
                    elif sock is self._pull:
                        self._receive()
                    elif ev & zmq.POLLOUT:
                        self._flush(sock)
        except BaseException:  # a bug here must not go unnoticed, but must not hang end()
            log.exception("tern transport thread failed")
        finally:
            self._shutdown(cause)

    def _drain_outbound(self) -> bool:
        """Send what other threads queued; True when stop() was requested."""
        # Exactly one wake frame is ever outstanding (see _wake_pending), and poll() said
        # it is here, so this recv does not block.
        self._wake_rx.recv()
        with self._lock:
            items, self._outq = self._outq, deque()
            self._wake_pending = False
            stopping = self._stopping
        if items:
            done: Counter = Counter()
            for pk, data in items:
                if self._send_held(pk, data):
                    done[pk] += 1
            self._release(done)
        return stopping

    def _receive(self) -> None:
        # One message per poll round: poll() said one is ready, so recv does not block,
        # and we never pay for a failing NOBLOCK recv. A burst is read one poll at a time,
        # which also lets outbound work interleave.
        key = None
        try:
            if self.curve is None:
                parts = self._pull.recv_multipart(zmq.NOBLOCK)
            else:  # the client key our ZAP handler authenticated: replies must ask for it
                frames = self._pull.recv_multipart(zmq.NOBLOCK, copy=False)
                key = frames[0].get("User-Id")
                parts = [f.bytes for f in frames]
        except zmq.ZMQError as exc:
            log.warning("recv failed: %s", exc)
            return
        self._stats.inc("frames_in")
        try:
            self._on_frames(parts, key)
        except Exception:  # the router or a message class misbehaved: survive it
            log.exception("error handling an inbound frame")
            self._stats.drop("internal_error")

    def _on_frames(self, parts: list, key: Optional[str] = None) -> None:
        if len(parts) != 1:
            self._stats.drop("multipart")
            err = wire.FrameError("multipart", "Multipart messages are not supported",
                                  wire.salvage(parts[0]))
            self._reject(err, key)
            return
        try:
            env = wire.decode_frame(parts[0])
        except wire.FrameError as err:
            self._stats.drop(err.cause)
            self._reject(err, key)
            return
        failure = self._route(env, key)
        if failure is not None:
            cause, reason = failure
            self._stats.drop(cause)
            if reason is not None:
                self._reject_env(env, reason, key)

    def _reject(self, err: wire.FrameError, key: Optional[str] = None) -> None:
        if err.replyable and err.message_type != "Reject":
            self._send_reject(err.sender_actor, err.sender_endpoint, err.message_type,
                              err.reason, err.receiver, key)

    def _reject_env(self, env: wire.Envelope, reason: str, key: Optional[str] = None) -> None:
        # Never answer a Reject with a Reject: two peers could bounce them forever.
        if env.replyable and env.message_type != "Reject":
            self._send_reject(env.sender_actor, env.sender_endpoint, env.message_type,
                              reason, env.receiver, key)

    def _send_reject(self, to_actor: str, to_endpoint: str, mtype: str, reason: str,
                     rejected_by: str, key: Optional[str] = None) -> None:
        # Sender fields are null, as the peers send them: a Reject is not from an actor.
        # A Reject is ours, not a caller's: it is never held in a backlog (so every
        # backlog belongs to a peer admitted by post()), only handed to ZeroMQ or dropped.
        data = wire.encode(None, None, to_actor, "Reject",
                           {"message_type": mtype, "reason": reason, "rejected_by": rejected_by})
        peer = self._peer(_peer_key(wire.connect_address(to_endpoint), key))
        if peer is None:
            self._stats.drop("bad_endpoint")
            return
        if peer.backlog:
            self._stats.drop("reject_not_sent")
            return
        try:
            peer.sock.send(data, zmq.NOBLOCK)
        except zmq.ZMQError:
            self._stats.drop("reject_not_sent")
            return
        self._stats.inc("messages_out")
        self._stats.inc("rejects_sent")

    def _peer(self, pk: str) -> Optional[_Peer]:
        peers = self._peers
        peer = peers.get(pk)
        if peer is not None:
            peers.move_to_end(pk)
            return peer
        if len(peers) >= self._cfg.max_peers and not self._evict_one():
            return None
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, self._cfg.linger_ms)
        sock.setsockopt(zmq.SNDHWM, self._cfg.sndhwm)
        addr, key = _split_key(pk)
        # CURVE: the socket must prove our key pair and ask the peer to prove ``key``
        if self.curve is not None and not self.curve.configure_client(sock, key):
            sock.close(0)
            log.warning("cannot connect to %r: CURVE is on and no valid server key is known "
                        "(%r)", addr, key)
            return None
        try:
            sock.connect(addr)
        except zmq.ZMQError as exc:
            sock.close(0)
            log.warning("cannot connect to %r: %s", addr, exc)
            return None
        peer = _Peer(pk, sock)
        peers[pk] = peer
        return peer

    def _evict_one(self) -> bool:
        """Close the least recently used peer socket with nothing held. Such a peer always
        exists when post() admitted the message being sent (at most max_peers peers hold
        messages, the new one among them); for a Reject there may be none (False)."""
        for pk, peer in self._peers.items():
            if not peer.backlog:
                del self._peers[pk]
                peer.sock.close()  # ZeroMQ still gets linger_ms for what it holds
                self._stats.inc("peers_closed")
                self._evicted += 1
                return True
        return False

    def _send_held(self, pk: str, data: bytes) -> bool:
        """Hand one admitted envelope to ZeroMQ, or hold it in the peer's backlog. True
        when it left our hands (sent, or recorded as lost); False when held."""
        peer = self._peer(pk)
        if peer is None:
            self._stats.lost(_split_key(pk)[0], "bad_endpoint")
            return True
        if peer.backlog:  # keep FIFO behind what is already waiting
            peer.backlog.append(data)
            return False
        try:
            peer.sock.send(data, zmq.NOBLOCK)
        except zmq.Again:  # high-water mark reached: hold it, wait for POLLOUT
            peer.backlog.append(data)
            self._poller.register(peer.sock, zmq.POLLOUT)
            return False
        except zmq.ZMQError as exc:
            log.warning("send to %r failed: %s", peer.addr, exc)
            self._stats.lost(peer.addr, "send_error")
            return True
        self._stats.inc("messages_out")
        return True

    def _flush(self, sock: zmq.Socket) -> None:
        for peer in self._peers.values():
            if peer.sock is sock:
                break
        else:
            self._poller.unregister(sock)
            return
        backlog = peer.backlog
        sent = 0
        lost = 0
        while backlog:
            try:
                sock.send(backlog[0], zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                log.warning("send to %r failed: %s", peer.addr, exc)
                lost = len(backlog)
                self._stats.lost(peer.addr, "send_error", lost)
                backlog.clear()
                break
            backlog.popleft()
            sent += 1
        if sent:
            self._stats.inc("messages_out", sent)
        if sent or lost:
            self._release(Counter({peer.pk: sent + lost}))
        if not backlog:
            self._poller.unregister(sock)

    def _shutdown(self, cause: str) -> None:
        # What is still held now was accepted and never reached ZeroMQ: record it per
        # peer and cause. ZeroMQ then gets linger_ms to write out what it holds, in
        # ctx.term() (stop() times it).
        self._closed_at = time.monotonic()
        for peer in self._peers.values():
            if peer.backlog:
                n = len(peer.backlog)
                log.warning("tern: end(): %d messages for %s not sent (%s)", n, peer.addr,
                            cause)
                self._stats.lost(peer.addr, cause, n)
                peer.backlog.clear()
            peer.sock.close()
        self._peers_at_close = len(self._peers) + self._evicted
        self._peers.clear()
        if self._pull is not None:
            if self.curve is not None:
                self.curve.stop_monitor(self._pull)
            self._pull.close(0)
            self._pull = None
        self._wake_rx.close(0)
        self._wake_rx = None
        with self._lock:
            self._closed = True
        self._lose_outq(cause)  # only non-empty if the thread failed before draining
