"""The name service (registry): tern's server and its client, compatible with the family's.

Protocol (docs/registry.md): ZeroMQ REQ -> REP, one flat UTF-8 JSON object per frame,
``message_type`` naming the request. ``RegisterActor``, ``UnregisterActor``,
``LookupActor`` and ``Heartbeat`` are the family's; ``ListActors``, ``RegistryStats`` and the
``actor_server_key`` / ``server_key`` fields are tern extensions.

CURVE (optional, off by default): the server's ROUTER socket becomes a CURVE server behind
tern.security's ZAP handler (the same key files and allow-list rules as the gateway), and
the clients connect with the registry's public key and a key pair of their own.

The server (``RegistryServer``, run by ``scripts/registry``) is one thread with one ROUTER
socket (it answers REQ clients exactly like a REP socket, and lets us remember which
connection spoke for which manager). Every request gets exactly one reply, malformed ones an
``{"error": ...}`` object. All state is in bounded tables sized by ``ServerConfig``.

The client (``RegistryClient``) is what ``Manager(registry=...)`` uses: one REQ socket with a
receive timeout, closed and recreated whenever a reply is lost (a REQ socket that missed a
reply cannot send again).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from typing import Any, Optional

import zmq

from .security import Curve, CurveConfig, valid_key

__all__ = [
    "ServerConfig",
    "RegistryServer",
    "RegistryClient",
    "RegistryError",
    "NameTaken",
    "NotFound",
    "Offline",
    "make_manager_id",
    "ManagerLink",
    "Resolution",
    "DEFAULT_ENDPOINT",
]

log = logging.getLogger("tern.registry")

#: Where ``scripts/registry`` binds and clients connect by default (loopback: safe default).
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"

_DUPLICATE_REASON = "Name already registered"  # the reference server's words, kept as is


class RegistryError(RuntimeError):
    """A registry request failed: refused, an error reply, or no reply within the timeout."""


class NameTaken(RegistryError):
    """RegisterActor refused: ``name`` is held by another manager ``owner`` (None if the
    server did not say, as the family's server does not)."""

    def __init__(self, name: str, owner: Optional[str], reason: str) -> None:
        who = f"manager {owner!r}" if owner else "another manager"
        super().__init__(f"actor name {name!r} is already registered by {who} ({reason})")
        self.name = name
        self.owner = owner
        self.reason = reason


class NotFound(RegistryError, LookupError):
    """LookupActor: no actor of that name is registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"actor {name!r} is not registered")
        self.name = name


class Offline(RegistryError, LookupError):
    """LookupActor: the name is registered but its manager stopped heartbeating."""

    def __init__(self, name: str, endpoint: str) -> None:
        super().__init__(f"actor {name!r} at {endpoint} is offline (no recent heartbeat)")
        self.name = name
        self.endpoint = endpoint


def make_manager_id() -> str:
    """A manager id unique per process: ``host-pid-random``."""
    host = socket.gethostname() or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


# ---- server ------------------------------------------------------------------------------


class ServerConfig:
    """Limits and timing of a RegistryServer. Every table is bounded by one of these; the
    worst-case memory is documented in docs/registry.md."""

    def __init__(self, *, max_names: int = 10_000, max_names_per_manager: int = 1_000,
                 max_name_bytes: int = 256, max_endpoint_bytes: int = 256,
                 max_manager_id_bytes: int = 256, max_request_bytes: int = 4096,
                 socket_max_bytes: int = 1 << 20, recv_hwm: int = 100,
                 max_connections: int = 4096, expire_after_s: float = 6.0,
                 suspect_after_s: float = 3.0, sweep_interval_s: float = 1.0) -> None:
        #: registered names in all (a registration beyond it is refused: "Registry full")
        self.max_names = max_names
        #: names one manager may hold
        self.max_names_per_manager = max_names_per_manager
        #: longest actor_name / actor_endpoint / manager_id accepted (UTF-8 bytes)
        self.max_name_bytes = max_name_bytes
        self.max_endpoint_bytes = max_endpoint_bytes
        self.max_manager_id_bytes = max_manager_id_bytes
        #: longer requests are answered with an error without being parsed
        self.max_request_bytes = max_request_bytes
        #: libzmq drops a connection that sends a frame above this (ZMQ_MAXMSGSIZE): no reply
        self.socket_max_bytes = socket_max_bytes
        #: frames queued per connection before libzmq stops reading it (ZMQ_RCVHWM)
        self.recv_hwm = recv_hwm
        #: connections remembered (which manager spoke on which), least recently used evicted
        self.max_connections = max_connections
        #: a manager silent for longer is removed with all its names (the family's 6 s)
        self.expire_after_s = expire_after_s
        #: a manager silent for longer answers ``online: false`` until it expires
        self.suspect_after_s = suspect_after_s
        #: how often expired managers are swept
        self.sweep_interval_s = sweep_interval_s
        for key, value in vars(self).items():
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"ServerConfig.{key} must be > 0, got {value!r}")
        if suspect_after_s > expire_after_s:
            raise ValueError(f"ServerConfig.suspect_after_s ({suspect_after_s}) must not exceed "
                             f"expire_after_s ({expire_after_s})")


class _BadRequest(Exception):
    pass


class _Entry:
    __slots__ = ("endpoint", "manager_id", "server_key")

    def __init__(self, endpoint: str, manager_id: str, server_key: Optional[str]) -> None:
        self.endpoint = endpoint
        self.manager_id = manager_id
        #: the registrant's CURVE public key (extension ``actor_server_key``), or None
        self.server_key = server_key


class _Manager:
    __slots__ = ("last_seen", "names")

    def __init__(self, now: float) -> None:
        self.last_seen = now
        self.names: set[str] = set()


def _reply(message_type: str, **fields: Any) -> dict:
    out = {"message_type": message_type}
    out.update(fields)
    return out


def _error(reason: str) -> dict:
    return {"error": reason}


class RegistryServer:
    """The name service. ``handle()`` is the whole protocol (a pure function of the state
    and a clock, tested directly); ``serve()`` runs it on a ROUTER socket until ``stop()``.

    ``curve=tern.CurveConfig(key_file, allow_dir, allow_keys)``: serve over CURVE only
    clients whose public key is on the allow-list (tern.security's ZAP handler; refusals
    counted as ``auth_denied``, handshakes that fail before authentication, e.g. a plain-TCP
    client, as ``handshakes_failed``). Keys are read here: a bad file raises KeyFileError.

    Thread use: ``serve()`` on one thread; ``stop()``, ``snapshot()`` and ``stats()`` from
    any thread.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT,
                 config: Optional[ServerConfig] = None, clock=time.monotonic,
                 curve: Optional[CurveConfig] = None) -> None:
        self.endpoint = endpoint
        self.cfg = config or ServerConfig()
        self._clock = clock
        self._lock = threading.Lock()  # the tables; taken per request, never across I/O
        self._names: dict[str, _Entry] = {}
        self._managers: dict[str, _Manager] = {}
        self._conns: "OrderedDict[bytes, str]" = OrderedDict()  # connection id -> manager id
        self._counters: dict[str, int] = {}
        if curve is not None and not isinstance(curve, CurveConfig):
            raise TypeError(f"curve must be a tern.CurveConfig, got {type(curve).__name__}")
        self._curve: Optional[Curve] = Curve(curve) if curve is not None else None
        if self._curve is not None:
            self._counters.update(auth_denied=0, handshakes_failed=0)
        self._stop = threading.Event()
        self._ctx: Optional[zmq.Context] = None
        self._sock: Optional[zmq.Socket] = None
        self.bound_endpoint: Optional[str] = None

    # -- counters --------------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        self._counters[key] = self._counters.get(key, 0) + n

    def inc(self, key: str, n: int = 1) -> None:
        """Count ``key`` from another thread (tern.security's ZAP/monitor thread)."""
        with self._lock:
            self._count(key, n)

    @property
    def public_key(self) -> Optional[str]:
        """The server's CURVE public key (Z85), what clients pass as server_key; None
        without CURVE."""
        return self._curve.public_key if self._curve is not None else None

    def _stats_locked(self) -> dict:
        out = dict(self._counters)
        out["names"] = len(self._names)
        out["managers"] = len(self._managers)
        out["connections"] = len(self._conns)
        return out

    def stats(self) -> dict:
        """Counters (requests by type, errors by cause, refusals, expiries; with CURVE
        ``auth_denied`` and ``handshakes_failed``) and table sizes."""
        with self._lock:
            return self._stats_locked()

    # -- the protocol ----------------------------------------------------------------------

    def handle(self, frame: bytes, conn: bytes = b"") -> dict:
        """The reply to one request frame (never raises). ``conn`` identifies the client
        connection (the ROUTER routing id) for the owner check of UnregisterActor."""
        with self._lock:
            try:
                req = self._parse(frame)
                mtype = req.get("message_type")
                if not isinstance(mtype, str):
                    if "message_type" not in req:
                        raise _BadRequest("missing key 'message_type'")
                    raise _BadRequest("key 'message_type' must be a string")
                handler = self._handlers.get(mtype)
                if handler is None:
                    self._count("errors.unknown_type")
                    return _error(f"Unknown message type: {mtype[:self.cfg.max_name_bytes]}")
                self._count("requests." + mtype)
                return handler(self, req, conn)
            except _BadRequest as exc:
                self._count("errors.bad_request")
                return _error(f"Bad request: {exc}")
            except Exception as exc:  # a bug must not cost the client its reply
                log.exception("registry: internal error")
                self._count("errors.internal")
                return _error(f"Internal error: {type(exc).__name__}")

    def _parse(self, frame: bytes) -> dict:
        if len(frame) > self.cfg.max_request_bytes:
            raise _BadRequest(f"request of {len(frame)} bytes exceeds max_request_bytes "
                              f"({self.cfg.max_request_bytes})")
        try:
            text = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadRequest("not valid UTF-8") from None
        try:
            obj = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise _BadRequest(f"malformed JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise _BadRequest(f"request must be a JSON object, got {_json_type(obj)}")
        return obj

    def _field(self, req: dict, key: str, limit: int) -> str:
        if key not in req:
            raise _BadRequest(f"{req['message_type']}: missing key '{key}'")
        value = req[key]
        if not isinstance(value, str):
            raise _BadRequest(f"{req['message_type']}: key '{key}' must be a string, "
                              f"got {_json_type(value)}")
        if not value:
            raise _BadRequest(f"{req['message_type']}: key '{key}' must not be empty")
        n = len(value.encode("utf-8", "surrogatepass"))
        if n > limit:
            raise _BadRequest(f"{req['message_type']}: key '{key}' is {n} bytes, "
                              f"longer than the limit {limit}")
        return value

    def _touch(self, manager_id: str, conn: bytes, now: float) -> Optional[_Manager]:
        """Record liveness of a manager that holds names; remember the connection."""
        if conn:
            conns = self._conns
            conns[conn] = manager_id
            conns.move_to_end(conn)
            while len(conns) > self.cfg.max_connections:
                conns.popitem(last=False)
                self._count("connections_evicted")
        m = self._managers.get(manager_id)
        if m is not None:
            m.last_seen = now
        return m

    def _register(self, req: dict, conn: bytes) -> dict:
        cfg = self.cfg
        manager_id = self._field(req, "manager_id", cfg.max_manager_id_bytes)
        name = self._field(req, "actor_name", cfg.max_name_bytes)
        endpoint = self._field(req, "actor_endpoint", cfg.max_endpoint_bytes)
        server_key = req.get("actor_server_key")  # tern extension: the registrant's CURVE key
        if server_key is not None and not valid_key(server_key):
            raise _BadRequest(f"RegisterActor: key 'actor_server_key' must be a CURVE public "
                              f"key (40 characters of Z85), got {_json_type(server_key)}"
                              + (f" of {len(server_key)} characters"
                                 if isinstance(server_key, str) else ""))
        now = self._clock()
        m = self._touch(manager_id, conn, now)
        entry = self._names.get(name)
        if entry is not None and entry.manager_id != manager_id:
            self._count("refused.duplicate")
            return _reply("RegistrationFailed", actor_name=name, reason=_DUPLICATE_REASON,
                          owner=entry.manager_id)
        if entry is not None:  # the same manager again (e.g. restarted): update the endpoint
            entry.endpoint = endpoint
            entry.server_key = server_key
            self._count("reregistered")
            return _reply("RegistrationOk", actor_name=name)
        if len(self._names) >= cfg.max_names:
            self._count("refused.full")
            return _reply("RegistrationFailed", actor_name=name,
                          reason=f"Registry full (max_names={cfg.max_names})")
        if m is not None and len(m.names) >= cfg.max_names_per_manager:
            self._count("refused.manager_full")
            return _reply("RegistrationFailed", actor_name=name,
                          reason=f"Manager holds max_names_per_manager "
                                 f"({cfg.max_names_per_manager}) names")
        if m is None:
            m = self._managers[manager_id] = _Manager(now)
        m.names.add(name)
        self._names[name] = _Entry(endpoint, manager_id, server_key)
        return _reply("RegistrationOk", actor_name=name)

    def _unregister(self, req: dict, conn: bytes) -> dict:
        name = self._field(req, "actor_name", self.cfg.max_name_bytes)
        claimed = req.get("manager_id")
        if claimed is not None and not isinstance(claimed, str):
            raise _BadRequest(f"UnregisterActor: key 'manager_id' must be a string, "
                              f"got {_json_type(claimed)}")
        entry = self._names.get(name)
        if entry is None:
            return _reply("RegistrationOk", actor_name=name)
        # Owner check: the manager_id given (tern clients send it), else the manager this
        # connection registered or heartbeated for (the family's clients send only the name).
        who = claimed if claimed is not None else self._conns.get(conn)
        if who != entry.manager_id:
            self._count("refused.not_owner")
            return _reply("RegistrationFailed", actor_name=name,
                          reason="Name registered by another manager", owner=entry.manager_id)
        self._drop_name(name)
        return _reply("RegistrationOk", actor_name=name)

    def _drop_name(self, name: str) -> None:
        entry = self._names.pop(name)
        m = self._managers.get(entry.manager_id)
        if m is not None:
            m.names.discard(name)
            if not m.names:
                del self._managers[entry.manager_id]

    def _lookup(self, req: dict, conn: bytes) -> dict:
        name = self._field(req, "actor_name", self.cfg.max_name_bytes)
        entry = self._names.get(name)
        if entry is None:
            return _reply("LookupResult", actor_name=name, endpoint=None, online=False)
        m = self._managers.get(entry.manager_id)
        online = m is not None and self._clock() - m.last_seen <= self.cfg.suspect_after_s
        out = _reply("LookupResult", actor_name=name, endpoint=entry.endpoint, online=online)
        if entry.server_key is not None:  # extension: only for names registered with a key
            out["server_key"] = entry.server_key
        return out

    def _heartbeat(self, req: dict, conn: bytes) -> dict:
        manager_id = self._field(req, "manager_id", self.cfg.max_manager_id_bytes)
        ts = req.get("timestamp_ms")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
            raise _BadRequest(f"Heartbeat: key 'timestamp_ms' must be a number, "
                              f"got {_json_type(ts)}")
        self._touch(manager_id, conn, self._clock())
        return _reply("HeartbeatAck")

    def _list(self, req: dict, conn: bytes) -> dict:
        now = self._clock()
        actors = []
        for name, entry in sorted(self._names.items()):
            m = self._managers.get(entry.manager_id)
            online = m is not None and now - m.last_seen <= self.cfg.suspect_after_s
            row = {"actor_name": name, "endpoint": entry.endpoint, "online": online,
                   "manager_id": entry.manager_id}
            if entry.server_key is not None:
                row["server_key"] = entry.server_key
            actors.append(row)
        return _reply("ActorList", actors=actors)

    def _registry_stats(self, req: dict, conn: bytes) -> dict:
        return _reply("RegistryStats", stats=self._stats_locked())

    _handlers = {
        "RegisterActor": _register,
        "UnregisterActor": _unregister,
        "LookupActor": _lookup,
        "Heartbeat": _heartbeat,
        "ListActors": _list,  # tern extension
        "RegistryStats": _registry_stats,  # tern extension
    }

    def sweep(self) -> int:
        """Remove managers silent for more than expire_after_s, with their names. Returns
        how many names went. Called once per sweep_interval_s by serve()."""
        with self._lock:
            now = self._clock()
            dead = [mid for mid, m in self._managers.items()
                    if now - m.last_seen > self.cfg.expire_after_s]
            removed = 0
            for mid in dead:
                m = self._managers.pop(mid)
                for name in m.names:
                    entry = self._names.get(name)
                    if entry is not None and entry.manager_id == mid:
                        del self._names[name]
                        removed += 1
            if dead:
                self._count("managers_expired", len(dead))
                self._count("names_expired", removed)
            return removed

    def snapshot(self) -> list[dict]:
        """The registered actors, as ListActors answers them."""
        return self.handle(b'{"message_type": "ListActors"}')["actors"]

    # -- the socket loop -------------------------------------------------------------------

    def bind(self) -> str:
        """Create the ROUTER socket and bind it. Returns the bound endpoint (port resolved).
        Raises OSError naming the endpoint when the bind fails."""
        ctx = zmq.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.cfg.socket_max_bytes)
        sock.setsockopt(zmq.RCVHWM, self.cfg.recv_hwm)
        try:
            if self._curve is not None:  # before bind: the first client needs CURVE
                self._curve.start_server(ctx, sock, self)
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._close(ctx, sock)
            raise OSError(exc.errno, f"registry: cannot bind {self.endpoint!r}: {exc}") from None
        except BaseException:
            self._close(ctx, sock)
            raise
        self._ctx, self._sock = ctx, sock
        self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return self.bound_endpoint

    def serve(self) -> None:
        """Answer requests and sweep until stop(). Binds first if bind() was not called."""
        if self._sock is None:
            self.bind()
        sock = self._sock
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        next_sweep = time.monotonic() + self.cfg.sweep_interval_s
        try:
            while not self._stop.is_set():
                wait_ms = max(0, int((next_sweep - time.monotonic()) * 1000))
                # Wake at least every 200 ms to notice stop().
                try:
                    ready = poller.poll(min(wait_ms, 200))
                except zmq.ZMQError as exc:  # EINTR and the like: poll again
                    log.debug("registry: poll: %s", exc)
                    continue
                if ready:
                    for _ in range(64):  # a bounded burst per turn, then sweep if due
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._answer(sock, frames)
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + self.cfg.sweep_interval_s
        finally:
            self._close(self._ctx, sock)
            self._sock = None
            self._ctx = None

    def _close(self, ctx: zmq.Context, sock: zmq.Socket) -> None:
        if self._curve is not None:
            self._curve.stop_monitor(sock)
        sock.close(0)
        if self._curve is not None:
            self._curve.stop()  # its sockets live in ctx
        ctx.term()

    def _answer(self, sock: zmq.Socket, frames: list) -> None:
        # ROUTER gives [routing id, (envelope frames...,) b"", body] for a REQ client. Reply
        # with the same envelope so the REQ socket accepts it.
        conn = frames[0]
        try:
            cut = frames.index(b"", 1)
        except ValueError:
            cut = 0  # a DEALER without the empty delimiter: reply after the routing id only
        envelope = frames[:cut + 1] if cut else frames[:1]
        body = frames[cut + 1:] if cut else frames[1:]
        if len(body) != 1:
            with self._lock:
                self._count("errors.bad_request")
            reply = _error(f"Bad request: expected one frame, got {len(body)}")
        else:
            reply = self.handle(body[0], conn)
        try:
            sock.send_multipart(envelope + [json.dumps(reply).encode("utf-8")], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client went away or is not reading: drop it
            log.debug("registry: reply not sent: %s", exc)
            with self._lock:
                self._count("replies_dropped")

    def stop(self) -> None:
        """Make serve() return (within about 200 ms). Any thread."""
        self._stop.set()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


# ---- client ------------------------------------------------------------------------------


class Resolution(tuple):
    """What LookupActor answered: ``(endpoint or None, online, server_key or None)``;
    ``server_key`` is the registrant's CURVE public key (extension), None when it gave none."""

    __slots__ = ()

    def __new__(cls, endpoint: Optional[str], online: bool, server_key: Optional[str]):
        return tuple.__new__(cls, (endpoint, online, server_key))

    endpoint = property(lambda self: self[0])
    online = property(lambda self: self[1])
    server_key = property(lambda self: self[2])


def _check_curve_client(server_key: Any, key_pair: Any) -> Optional[tuple[str, str]]:
    if server_key is None and key_pair is None:
        return None
    if server_key is None:
        raise ValueError("registry: key_pair given without server_key (the registry's public "
                         "key): both or neither")
    if not valid_key(server_key):
        raise ValueError(f"registry server key {server_key!r} is not a CURVE public key "
                         "(40 characters of Z85)")
    if key_pair is None:
        raise ValueError("registry: server_key given without key_pair (our own public and "
                         "secret key, e.g. tern.security.load_key_pair('me.key_secret'))")
    if (not isinstance(key_pair, (tuple, list)) or len(key_pair) != 2
            or not all(valid_key(k) for k in key_pair)):
        raise ValueError("registry: key_pair must be (public key, secret key), each 40 "
                         "characters of Z85")
    return key_pair[0], key_pair[1]


class RegistryClient:
    """One REQ connection to a registry. Not thread-safe: one thread at a time (Manager
    keeps one for its heartbeat thread and one, under a lock, for callers).

    Every request waits at most ``timeout`` seconds; on a timeout the socket is closed and
    recreated (a REQ socket that lost a reply cannot send again) and RegistryError is raised.

    CURVE: ``server_key`` is the registry's public key (Z85) and ``key_pair`` our
    ``(public, secret)`` keys (``tern.security.load_key_pair(path)``), given together. A
    registry that refuses our key, or a plain registry, never answers: RegistryError after
    ``timeout``.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = 5.0,
                 context: Optional[zmq.Context] = None, server_key: Optional[str] = None,
                 key_pair: Optional[tuple[str, str]] = None) -> None:
        if not isinstance(endpoint, str) or "://" not in endpoint:
            raise ValueError(f"invalid registry endpoint {endpoint!r}: expected e.g. "
                             f"'tcp://127.0.0.1:5555'")
        self._keys = _check_curve_client(server_key, key_pair)
        self.server_key = server_key
        self.endpoint = endpoint
        self.timeout = timeout
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock: Optional[zmq.Socket] = None

    @property
    def secure(self) -> bool:
        """True when this client talks CURVE to the registry."""
        return self._keys is not None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            s = self._ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, max(1, int(self.timeout * 1000)))
            s.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout * 1000)))
            if self._keys is not None:
                s.curve_serverkey = self.server_key.encode()
                s.curve_publickey = self._keys[0].encode()
                s.curve_secretkey = self._keys[1].encode()
            s.connect(self.endpoint)
            self._sock = s
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def request(self, req: dict) -> dict:
        """Send one request and return the reply object. Raises RegistryError on a timeout,
        a malformed reply or an ``{"error": ...}`` reply."""
        sock = self._socket()
        try:
            sock.send(json.dumps(req).encode("utf-8"))
            data = sock.recv()
        except zmq.ZMQError as exc:
            self._reset()
            if exc.errno == zmq.EAGAIN:
                raise RegistryError(f"registry {self.endpoint} did not answer "
                                    f"{req.get('message_type')} within {self.timeout:g}s") from None
            raise RegistryError(f"registry {self.endpoint}: {exc}") from None
        try:
            reply = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RegistryError(f"registry {self.endpoint} sent a malformed reply: "
                                f"{data[:200]!r}") from None
        if not isinstance(reply, dict):
            raise RegistryError(f"registry {self.endpoint} sent a non-object reply: {reply!r}")
        if "error" in reply and "message_type" not in reply:
            raise RegistryError(f"registry {self.endpoint} refused "
                                f"{req.get('message_type')}: {reply['error']}")
        return reply

    def _expect(self, reply: dict, mtype: str) -> dict:
        if reply.get("message_type") != mtype:
            raise RegistryError(f"registry {self.endpoint}: expected {mtype}, got {reply!r}")
        return reply

    def register(self, manager_id: str, name: str, endpoint: str,
                 server_key: Optional[str] = None) -> None:
        """RegisterActor. ``server_key``: our CURVE public key, sent as the extension field
        ``actor_server_key`` (family servers ignore it). Raises NameTaken when another
        manager holds ``name``."""
        req = {"message_type": "RegisterActor", "manager_id": manager_id,
               "actor_name": name, "actor_endpoint": endpoint}
        if server_key is not None:
            req["actor_server_key"] = server_key
        reply = self.request(req)
        if reply.get("message_type") == "RegistrationFailed":
            reason = str(reply.get("reason", ""))
            if reason == _DUPLICATE_REASON:
                raise NameTaken(name, reply.get("owner"), reason)
            raise RegistryError(f"registry {self.endpoint} refused actor name {name!r}: {reason}")
        self._expect(reply, "RegistrationOk")

    def unregister(self, name: str, manager_id: Optional[str] = None) -> None:
        """UnregisterActor (with ``manager_id`` for tern's owner check)."""
        req = {"message_type": "UnregisterActor", "actor_name": name}
        if manager_id is not None:
            req["manager_id"] = manager_id
        reply = self.request(req)
        if reply.get("message_type") == "RegistrationFailed":
            raise RegistryError(f"registry {self.endpoint} refused to unregister {name!r}: "
                                f"{reply.get('reason')} (owner {reply.get('owner')!r})")
        self._expect(reply, "RegistrationOk")

    def lookup(self, name: str) -> tuple[Optional[str], bool]:
        """LookupActor: (endpoint or None, online)."""
        r = self.resolve(name)
        return r.endpoint, r.online

    def resolve(self, name: str) -> Resolution:
        """LookupActor: Resolution(endpoint or None, online, server_key or None). A
        ``server_key`` that is not a CURVE key is a RegistryError."""
        reply = self._expect(self.request({"message_type": "LookupActor", "actor_name": name}),
                             "LookupResult")
        endpoint = reply.get("endpoint")
        if endpoint is not None and not isinstance(endpoint, str):
            raise RegistryError(f"registry {self.endpoint}: bad endpoint in {reply!r}")
        key = reply.get("server_key")
        if key is not None and not valid_key(key):
            raise RegistryError(f"registry {self.endpoint}: bad server_key in {reply!r}")
        return Resolution(endpoint, bool(reply.get("online")), key)

    def stats(self) -> dict:
        """RegistryStats (tern extension): the server's counters and table sizes."""
        reply = self._expect(self.request({"message_type": "RegistryStats"}), "RegistryStats")
        stats = reply.get("stats")
        if not isinstance(stats, dict):
            raise RegistryError(f"registry {self.endpoint}: bad RegistryStats {reply!r}")
        return stats

    def heartbeat(self, manager_id: str) -> None:
        self._expect(self.request({"message_type": "Heartbeat", "manager_id": manager_id,
                                   "timestamp_ms": int(time.time() * 1000)}), "HeartbeatAck")

    def list(self) -> list[dict]:
        """ListActors (tern extension): [{actor_name, endpoint, online, manager_id}, ...]."""
        try:
            reply = self.request({"message_type": "ListActors"})
        except RegistryError as exc:
            if "Unknown message type" in str(exc):
                raise RegistryError(f"registry {self.endpoint} does not support ListActors "
                                    f"(a tern extension)") from None
            raise
        actors = self._expect(reply, "ActorList").get("actors")
        if not isinstance(actors, list):
            raise RegistryError(f"registry {self.endpoint}: bad ActorList {reply!r}")
        return actors

    def close(self) -> None:
        self._reset()
        if self._own_ctx:
            self._ctx.term()


# ---- the Manager's side ---------------------------------------------------------------------


class _Resolved:
    """What a name resolved to, shared by every NamedActorRef of that name in a Manager."""

    __slots__ = ("endpoint", "online", "server_key")

    def __init__(self, endpoint: str, online: bool, server_key: Optional[str]) -> None:
        self.endpoint = endpoint
        self.online = online
        self.server_key = server_key  # the registrant's CURVE key, from a CURVE registry


def _named_ref_class():
    from .actor import RemoteActorRef

    class NamedActorRef(RemoteActorRef):
        """A RemoteActorRef found by name (``Manager.lookup_remote``). Its endpoint is
        re-resolved by the Manager's registry thread every heartbeat period, so a peer that
        moves (restarts elsewhere and re-registers) is followed within about 2 s. Its
        ``server_key`` is the one given to lookup_remote(), else (CURVE registry) the one
        the peer registered, followed the same way."""

        __slots__ = ("_resolved", "_explicit_key")

        def __init__(self, name: str, resolved: _Resolved, manager: Any,
                     server_key: Optional[str] = None) -> None:
            self._resolved = resolved
            super().__init__(name, resolved.endpoint, manager, server_key)

        @property
        def server_key(self) -> Optional[str]:  # type: ignore[override]
            if self._explicit_key is not None:
                return self._explicit_key
            return self._resolved.server_key

        @server_key.setter
        def server_key(self, value: Optional[str]) -> None:
            self._explicit_key = value

        @property
        def endpoint(self) -> str:  # type: ignore[override]
            return self._resolved.endpoint

        @endpoint.setter
        def endpoint(self, value: str) -> None:
            self._resolved.endpoint = value

        @property
        def online(self) -> bool:
            """What the last lookup said (refreshed every heartbeat period)."""
            return self._resolved.online

        def __repr__(self) -> str:
            return f"NamedActorRef({self.name!r}, {self.endpoint!r})"

    return NamedActorRef


_NamedActorRef = None


class ManagerLink:
    """A Manager's registry connection: registers its actors, heartbeats on its own thread
    (``tern-registry``), re-registers its names when the registry lost them (a restarted
    registry, or our own expiry after a long stall), re-resolves names looked up through it,
    and unregisters at stop().

    Two REQ sockets: one owned by the heartbeat thread, one for callers under a lock, so a
    slow lookup never delays a heartbeat.

    CURVE: ``server_key`` (the registry's public key) and ``key_pair`` (the Manager's own
    keys) make both sockets CURVE clients; ``own_key`` (the Manager's public key, when its
    transport runs CURVE) is registered with every name (extension ``actor_server_key``).
    """

    def __init__(self, endpoint: str, manager_id: Optional[str], advertised: Optional[str],
                 *, timeout: float = 5.0, heartbeat_s: float = 2.0,
                 server_key: Optional[str] = None,
                 key_pair: Optional[tuple[str, str]] = None,
                 own_key: Optional[str] = None) -> None:
        if manager_id is not None and (not isinstance(manager_id, str) or not manager_id):
            raise ValueError(f"manager_id must be a non-empty string, got {manager_id!r}")
        if not heartbeat_s > 0:
            raise ValueError(f"registry heartbeat period must be > 0, got {heartbeat_s!r}")
        self.endpoint = endpoint
        self.manager_id = manager_id or make_manager_id()
        self.advertised = advertised
        self.heartbeat_s = heartbeat_s
        self.own_key = own_key
        self.secure = _check_curve_client(server_key, key_pair) is not None
        self._counts = {"registry_heartbeats": 0, "registry_reregistered": 0,
                        "registry_errors": 0}
        self._ctx = zmq.Context()
        self._calls = RegistryClient(endpoint, timeout=timeout, context=self._ctx,
                                     server_key=server_key, key_pair=key_pair)
        self._beats = RegistryClient(endpoint, timeout=min(timeout, heartbeat_s),
                                     context=self._ctx, server_key=server_key,
                                     key_pair=key_pair)
        self._calls_lock = threading.Lock()
        self._names_lock = threading.Lock()
        self._mine: list[str] = []                  # names we registered, in order
        self._resolved: dict[str, _Resolved] = {}   # names looked up, re-resolved each beat
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._failing = False
        self._turn = 0

    def _inc(self, key: str) -> None:
        with self._names_lock:
            self._counts[key] += 1

    def counters(self) -> dict:
        """registry_heartbeats (acknowledged), registry_reregistered (names registered again
        after the registry lost them), registry_errors (failed beats, refused re-registrations)."""
        with self._names_lock:
            return dict(self._counts)

    # -- caller threads --------------------------------------------------------------------

    def _call(self, fn, *args):
        with self._calls_lock:
            return fn(*args)

    def register(self, name: str) -> None:
        """RegisterActor for a local actor. Raises NameTaken / RegistryError."""
        if self.advertised is None:
            raise ValueError("a Manager without an endpoint cannot register actors "
                             "(nobody could send to them)")
        self._call(self._calls.register, self.manager_id, name, self.advertised, self.own_key)
        with self._names_lock:
            if name not in self._mine:
                self._mine.append(name)

    def register_all(self, names: list[str]) -> None:
        """Register every name; on a refusal unregister those done and re-raise."""
        done = []
        try:
            for name in names:
                self.register(name)
                done.append(name)
        except BaseException:
            for name in done:
                try:
                    self._call(self._calls.unregister, name, self.manager_id)
                except RegistryError:
                    pass
            with self._names_lock:
                self._mine = [n for n in self._mine if n not in done]
            raise

    def lookup(self, manager: Any, name: str, allow_offline: bool = False,
               server_key: Optional[str] = None, want_key: bool = False):
        """``want_key``: the caller runs CURVE and gave no server_key: take the one the
        peer registered (only a CURVE registry is trusted for it)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"actor name must be a non-empty string, got {name!r}")
        endpoint, online, key = self._call(self._calls.resolve, name)
        if endpoint is None:
            raise NotFound(name)
        if not online and not allow_offline:
            raise Offline(name, endpoint)
        if not self.secure:
            key = None  # a key from an unauthenticated registry is never used
        if want_key and key is None:
            raise RegistryError(f"actor {name!r} at {endpoint} was registered without a CURVE "
                                f"server key (its process does not run CURVE, or registered "
                                f"with an older client): pass server_key=")
        global _NamedActorRef
        if _NamedActorRef is None:
            _NamedActorRef = _named_ref_class()
        with self._names_lock:
            slot = self._resolved.get(name)
            if slot is None:
                slot = self._resolved[name] = _Resolved(endpoint, online, key)
            else:
                slot.endpoint, slot.online = endpoint, online
                if key is not None:
                    slot.server_key = key
        return _NamedActorRef(name, slot, manager, server_key)

    def list(self) -> list[dict]:
        return self._call(self._calls.list)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tern-registry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop heartbeating, unregister our names (each waits at most the timeout; after
        one failure the rest are skipped: the registry expires them), close the sockets.
        Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._names_lock:
            names, self._mine = self._mine, []
        for name in names:
            try:
                self._call(self._calls.unregister, name, self.manager_id)
            except RegistryError as exc:
                log.warning("registry: could not unregister %r: %s (it expires by itself)",
                            name, exc)
                break
        self._calls.close()
        self._beats.close()
        self._ctx.term()

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._beat()
                if self._failing:
                    log.warning("registry %s: reachable again", self.endpoint)
                self._failing = False
            except RegistryError as exc:
                self._inc("registry_errors")
                if not self._failing:  # once per outage, not every 2 s
                    log.warning("registry: %s", exc)
                self._failing = True
            except Exception:  # a bug here must not end the heartbeats silently
                self._inc("registry_errors")
                log.exception("registry thread: unexpected error")

    def _beat(self) -> None:
        beats = self._beats
        beats.heartbeat(self.manager_id)
        self._inc("registry_heartbeats")
        with self._names_lock:
            mine = list(self._mine)
            looked = list(self._resolved.items())
        # One of our names per beat, in turn: a registry that restarted, or expired us after
        # a stall, has lost all of them, so one lookup notices; then every name is checked.
        if mine:
            self._turn = (self._turn + 1) % len(mine)
            if beats.lookup(mine[self._turn])[0] is not None:
                mine = []
        for name in mine:
            if self._stop.is_set():
                return
            endpoint, _online = beats.lookup(name)
            if endpoint is None:  # the registry restarted or expired us: register again
                try:
                    beats.register(self.manager_id, name, self.advertised, self.own_key)
                    self._inc("registry_reregistered")
                    log.info("registry: re-registered %r", name)
                except NameTaken as exc:
                    self._inc("registry_errors")
                    log.error("registry: %s", exc)
        for name, slot in looked:
            if self._stop.is_set():
                return
            endpoint, online, key = beats.resolve(name)
            if endpoint is not None:
                slot.endpoint = endpoint
                if key is not None and self.secure:
                    slot.server_key = key
            slot.online = endpoint is not None and online


# ---- command line (scripts/registry) -------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import signal

    p = argparse.ArgumentParser(
        prog="scripts/registry",
        description="tern's registry server (name service), or --list to print what a "
                    "registry holds. See docs/registry.md.")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT,
                   help=f"bind (server) or connect (--list) endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--list", action="store_true",
                   help="print the registered actors (tern extension ListActors) and exit")
    p.add_argument("--stats", action="store_true",
                   help="print the server's counters (tern extension RegistryStats) and exit")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="--list/--stats: reply timeout in s")
    p.add_argument("--key-file", metavar="FILE",
                   help="CURVE: our key pair (NAME.key_secret, mode 0600; scripts/keygen). "
                        "Serving: the registry's key, with --allow-dir/--allow-key; "
                        "--list/--stats: the client's key, with --server-key")
    p.add_argument("--allow-dir", metavar="DIR",
                   help="CURVE server: every *.key file in DIR is an allowed client")
    p.add_argument("--allow-key", metavar="KEY", action="append", default=[],
                   help="CURVE server: an allowed client's public key (Z85); repeatable")
    p.add_argument("--server-key", metavar="FILE",
                   help="--list/--stats over CURVE: the registry's public certificate "
                        "(NAME.key)")
    d = ServerConfig()
    for key in ("max_names", "max_names_per_manager", "max_name_bytes", "max_endpoint_bytes",
                "max_manager_id_bytes", "max_request_bytes", "socket_max_bytes", "recv_hwm",
                "max_connections"):
        p.add_argument("--" + key.replace("_", "-"), type=int, default=getattr(d, key))
    for key in ("expire_after_s", "suspect_after_s", "sweep_interval_s"):
        p.add_argument("--" + key.replace("_", "-"), type=float, default=getattr(d, key))
    args = p.parse_args(argv)
    from . import security

    if args.list or args.stats:
        if args.allow_dir or args.allow_key:
            p.error("--allow-dir/--allow-key are for serving, not --list/--stats")
        if bool(args.server_key) != bool(args.key_file):
            p.error("--list/--stats over CURVE needs both --server-key (the registry's NAME.key) "
                    "and --key-file (our NAME.key_secret)")
        try:
            server_key = security.load_public_key(args.server_key) if args.server_key else None
            pair = security.load_key_pair(args.key_file) if args.key_file else None
            client = RegistryClient(args.endpoint, timeout=args.timeout,
                                    server_key=server_key, key_pair=pair)
        except ValueError as exc:
            print(f"registry: {exc}", flush=True)
            return 1
        try:
            if args.stats:
                stats = client.stats()
            else:
                actors = client.list()
        except RegistryError as exc:
            print(f"registry: {exc}", flush=True)
            return 1
        finally:
            client.close()
        if args.stats:
            for key in sorted(stats):
                print(f"{key}\t{stats[key]}")
            return 0
        for a in actors:
            state = "online" if a.get("online") else "offline"
            print(f"{a.get('actor_name')}\t{a.get('endpoint')}\t{state}\t{a.get('manager_id')}")
        print(f"registry: {len(actors)} actors", flush=True)
        return 0

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = ServerConfig(**{k: getattr(args, k) for k in vars(d)})
    except ValueError as exc:
        p.error(str(exc))
    if args.server_key:
        p.error("--server-key is for --list/--stats; serving uses --key-file")
    if (args.allow_dir or args.allow_key) and not args.key_file:
        p.error("--allow-dir/--allow-key need --key-file (the registry's key pair)")
    curve = None
    if args.key_file:
        curve = security.CurveConfig(args.key_file, args.allow_dir, args.allow_key)
    try:
        server = RegistryServer(args.endpoint, cfg, curve=curve)
    except (ValueError, RuntimeError) as exc:  # KeyFileError is a ValueError
        print(f"registry: {exc}", flush=True)
        return 1
    try:
        bound = server.bind()
    except OSError as exc:
        print(str(exc), flush=True)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    if server.public_key:
        print(f"registry: CURVE on, public key {server.public_key}", flush=True)
    print(f"registry: listening on {bound}", flush=True)
    server.serve()
    print(f"registry: stopped {server.stats()}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
