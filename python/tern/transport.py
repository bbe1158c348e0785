"""ZeroMQ transport: one thread owns every socket of a Manager.

The transport thread owns the PULL socket bound to the Manager's endpoint, one cached
PUSH socket per peer address, and the receiving end of an inproc PAIR used as a
wake-up. Other threads never touch those sockets: they append encoded envelopes to a
deque under a lock and, only if the transport is not already due to wake, send one
empty frame on the PAIR. The thread blocks in ``zmq.Poller.poll()`` with no timeout on
the PULL socket, the wake socket, and the PUSH sockets that have a backlog (POLLOUT),
so it never sleeps on a timer and never blocks on a slow peer.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from typing import Callable, Optional

import zmq

from . import wire
from .security import Curve, CurveConfig
from .stats import Stats

__all__ = ["Transport", "TransportConfig"]

log = logging.getLogger("tern")


class TransportConfig:
    """Tuning knobs of one Manager's transport (all have working defaults)."""

    def __init__(self, *, linger_ms: int = 1000, max_peers: int = 256,
                 max_backlog: int = 100_000, max_message_bytes: int = 16 << 20,
                 curve: Optional[CurveConfig] = None) -> None:
        #: how long end() may wait for unsent messages to reach a slow peer
        self.linger_ms = linger_ms
        #: cached PUSH sockets; beyond this the least recently used idle one is closed
        self.max_peers = max_peers
        #: messages held per peer once ZeroMQ's high-water mark (1000) is reached;
        #: beyond this new messages to that peer are dropped and counted
        self.max_backlog = max_backlog
        #: inbound frames larger than this make libzmq drop the connection (ZMQ_MAXMSGSIZE)
        self.max_message_bytes = max_message_bytes
        #: CURVE authentication and encryption (tern.security); None: plain TCP, no
        #: authentication, for trusted networks only
        if curve is not None and not isinstance(curve, CurveConfig):
            raise TypeError(f"curve must be a tern.CurveConfig, got {type(curve).__name__}")
        self.curve = curve


class _Peer:
    __slots__ = ("sock", "backlog")

    def __init__(self, sock: zmq.Socket) -> None:
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
        self._outq: deque[tuple[str, bytes, Optional[str]]] = deque()
        # CURVE: keys and allow-list read now, so a bad file raises in Manager()
        self.curve: Optional[Curve] = Curve(self._cfg.curve) if self._cfg.curve else None
        self._wake_pending = False
        self._closed = False
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._ctx: Optional[zmq.Context] = None
        self._wake_tx: Optional[zmq.Socket] = None
        self._wake_rx: Optional[zmq.Socket] = None
        self._pull: Optional[zmq.Socket] = None
        self._peers: "OrderedDict[str, _Peer]" = OrderedDict()
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

    def post(self, endpoint: str, data: bytes, server_key: Optional[str] = None) -> bool:
        """Queue one encoded envelope for ``endpoint`` (with CURVE: whose server must prove
        ``server_key``). Any thread; never blocks on I/O.

        Returns False (and counts a drop) once the transport is stopped.
        """
        with self._lock:
            if self._closed:
                self._stats.drop("transport_stopped")
                return False
            self._outq.append((endpoint, data, server_key))
            if not self._wake_pending and self._wake_tx is not None:
                self._wake()
        return True

    def _wake(self) -> None:
        # Called with _lock held. At most one wake frame is ever outstanding (the flag is
        # cleared only after the transport took it), so the PAIR never fills; NOBLOCK
        # only matters if the transport thread has died and closed its end.
        self._wake_pending = True
        try:
            self._wake_tx.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def stop(self) -> None:
        """Send what is queued, close every socket (waiting up to linger_ms), join."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._closed = True
            if self._wake_tx is not None and not self._wake_pending:
                self._wake()
        if self._thread is not None:
            self._thread.join()
        else:  # never started: what was posted will never leave
            with self._lock:
                if self._outq:
                    self._stats.drop("transport_stopped", len(self._outq))
                    self._outq.clear()
        if self._wake_tx is not None:
            self._wake_tx.close(0)
            self._wake_tx = None
        if self.curve is not None:
            self.curve.stop()  # its sockets live in the context
        if self._ctx is not None:
            self._ctx.term()  # waits for linger on the PUSH sockets closed by the thread
            self._ctx = None

    # -- transport thread --------------------------------------------------------------

    def _run(self) -> None:
        poller = self._poller
        wake, pull = self._wake_rx, self._pull
        poller.register(wake, zmq.POLLIN)
        if pull is not None:
            poller.register(pull, zmq.POLLIN)
        try:
            while True:
                try:
                    events = poller.poll()
                except zmq.ZMQError as exc:  # EINTR and the like: just poll again
                    log.debug("poll interrupted: %s", exc)
                    continue
                for sock, ev in events:
                    if sock is wake:
                        if self._drain_outbound():
                            return
                    elif sock is pull:
                        self._receive()
                    elif ev & zmq.POLLOUT:
                        self._flush(sock)
        except BaseException:  # a bug here must not go unnoticed, but must not hang end()
            log.exception("tern transport thread failed")
        finally:
            self._shutdown()

    def _drain_outbound(self) -> bool:
        """Send what other threads queued; True when stop() was requested."""
        # Exactly one wake frame is ever outstanding (see _wake_pending), and poll() said
        # it is here, so this recv does not block.
        self._wake_rx.recv()
        with self._lock:
            items, self._outq = self._outq, deque()
            self._wake_pending = False
            stopping = self._stopping
        for endpoint, data, key in items:
            self._send(endpoint, data, key)
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
        data = wire.encode(None, None, to_actor, "Reject",
                           {"message_type": mtype, "reason": reason, "rejected_by": rejected_by})
        if self._send(to_endpoint, data, key):
            self._stats.inc("rejects_sent")

    def _peer(self, endpoint: str, key: Optional[str] = None) -> Optional[_Peer]:
        addr = wire.connect_address(endpoint)
        peers = self._peers
        # CURVE: one socket per (address, server key): the key is what the peer must prove
        pkey = addr if key is None else (addr, key)
        peer = peers.get(pkey)
        if peer is not None:
            peers.move_to_end(pkey)
            return peer
        if len(peers) >= self._cfg.max_peers:
            self._evict_one()
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, self._cfg.linger_ms)
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
        peer = _Peer(sock)
        peers[pkey] = peer
        return peer

    def _evict_one(self) -> None:
        for addr, peer in self._peers.items():
            if not peer.backlog:
                del self._peers[addr]
                peer.sock.close()
                return
        # every peer has a backlog: close the oldest one anyway, counting what it held
        addr, peer = self._peers.popitem(last=False)
        self._stats.drop("peer_evicted", len(peer.backlog))
        self._poller.unregister(peer.sock)
        peer.sock.close(0)

    def _send(self, endpoint: str, data: bytes, key: Optional[str] = None) -> bool:
        peer = self._peer(endpoint, key)
        if peer is None:
            self._stats.drop("bad_endpoint")
            return False
        if peer.backlog:  # keep FIFO behind what is already waiting
            if len(peer.backlog) >= self._cfg.max_backlog:
                self._stats.drop("peer_backlog_full")
                return False
            peer.backlog.append(data)
            return True
        try:
            peer.sock.send(data, zmq.NOBLOCK)
        except zmq.Again:  # high-water mark reached: hold it, wait for POLLOUT
            peer.backlog.append(data)
            self._poller.register(peer.sock, zmq.POLLOUT)
            return True
        except zmq.ZMQError as exc:
            log.warning("send to %r failed: %s", endpoint, exc)
            self._stats.drop("send_error")
            return False
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
        while backlog:
            try:
                sock.send(backlog[0], zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                log.warning("send failed: %s", exc)
                self._stats.drop("send_error", len(backlog))
                backlog.clear()
                break
            backlog.popleft()
            sent += 1
        if sent:
            self._stats.inc("messages_out", sent)
        if not backlog:
            self._poller.unregister(sock)

    def _shutdown(self) -> None:
        # Hand the remaining backlogs to ZeroMQ once more; whatever still does not fit
        # is counted as dropped. Queued frames then get linger_ms to leave in ctx.term().
        for peer in self._peers.values():
            if peer.backlog:
                self._flush(peer.sock)
                if peer.backlog:
                    self._stats.drop("unsent_at_shutdown", len(peer.backlog))
                    peer.backlog.clear()
            peer.sock.close()
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
            leftover = len(self._outq)
            self._outq.clear()
        if leftover:
            self._stats.drop("transport_stopped", leftover)
