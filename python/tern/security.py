"""CURVE authentication and encryption, with the same key files as the C++ gateway.

Each process has one key pair, read from a ZeroMQ certificate file (``NAME.key_secret``, the
format pyzmq's ``zmq.auth.create_certificates`` and czmq write; ``scripts/keygen NAME`` makes
a pair). It is the CURVE server key of the Manager's PULL socket and the client key of its
PUSH sockets. Clients get in only when their public key is on the allow-list: a ZAP handler
thread answers libzmq's requests (inproc://zeromq.zap.01) and counts refusals
(``auth_denied``); a monitor of the PULL socket counts handshakes that failed before
authentication (``handshakes_failed``: a client without CURVE, a wrong server key, not
ZeroMQ). Off by default: plain TCP, for trusted networks only. See docs/python.md.
"""

from __future__ import annotations

import datetime
import os
import stat
import threading
from typing import Iterable, Optional, Union

import zmq
from zmq.utils import z85

__all__ = ["CurveConfig", "KeyFileError", "load_key_pair", "load_public_key", "load_allow_dir",
           "create_key_pair", "valid_key"]

_Z85 = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
_MAX_CERT_BYTES = 64 * 1024
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"tern"
_FAILED_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL

PathLike = Union[str, "os.PathLike[str]"]


class KeyFileError(ValueError):
    """A key file or allow directory that cannot be used; the message names it."""


class CurveConfig:
    """CURVE settings of a Manager (``Manager(..., curve=CurveConfig(...))``).

    ``key_file``: our key pair (``NAME.key_secret``, mode 0600 or stricter).
    ``allow_dir``: every ``*.key`` file in it is an allowed client's public key.
    ``allow_keys``: more allowed public keys (Z85 text, 40 characters).
    Keys are read when the Manager is constructed; errors raise KeyFileError there.
    """

    def __init__(self, key_file: PathLike, allow_dir: Optional[PathLike] = None,
                 allow_keys: Iterable[Union[str, bytes]] = ()) -> None:
        if not key_file:
            raise ValueError("CurveConfig needs key_file (our NAME.key_secret)")
        self.key_file = os.fspath(key_file)
        self.allow_dir = os.fspath(allow_dir) if allow_dir else None
        self.allow_keys = [k.decode() if isinstance(k, bytes) else k for k in allow_keys]


def _key_problem(key: str) -> Optional[str]:
    if len(key) != 40:
        return f"40 characters of Z85 expected, got {len(key)} characters"
    for c in key:
        if c not in _Z85:
            return f"character {c!r} is not in the Z85 alphabet"
    return None


def valid_key(key: Union[str, bytes, None]) -> bool:
    """True when ``key`` is a CURVE key in Z85 text (40 characters)."""
    if isinstance(key, bytes):
        try:
            key = key.decode("ascii")
        except UnicodeDecodeError:
            return False
    return isinstance(key, str) and _key_problem(key) is None


def _fail(path: str, what: str) -> "KeyFileError":
    return KeyFileError(f"key file {path!r}: {what}")


def _read_cert(path: str) -> tuple[Optional[str], Optional[str], int]:
    """(public-key, secret-key, line of public-key) from the file's ``curve`` section."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CERT_BYTES + 1)
    except OSError as exc:
        raise _fail(path, f"cannot open: {exc.strerror}") from None
    if len(data) > _MAX_CERT_BYTES:
        raise _fail(path, "larger than 64 KiB: not a certificate")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "not UTF-8 text: not a certificate") from None
    found: dict[str, tuple[str, int]] = {}
    section = ""
    for no, line in enumerate(text.split("\n"), 1):
        t = line.strip(" \t\r")
        if not t or t.startswith("#"):
            continue
        if line[0] not in " \t":
            section = t
            continue
        if section != "curve" or "=" not in t:
            continue
        name, value = (s.strip(" \t\r") for s in t.split("=", 1))
        if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
            value = value[1:-1]
        if name not in ("public-key", "secret-key"):
            continue
        if name in found:
            raise _fail(path, f"line {no}: {name} given twice (also line {found[name][1]})")
        problem = _key_problem(value)
        if problem:
            raise _fail(path, f"line {no}: {name} is not a CURVE key: {problem}")
        found[name] = (value, no)
    pub = found.get("public-key", (None, 0))
    sec = found.get("secret-key", (None, 0))
    return pub[0], sec[0], pub[1]


def load_key_pair(path: PathLike) -> tuple[str, str]:
    """(public key, secret key), Z85, from a ``NAME.key_secret`` certificate. Raises
    KeyFileError naming the file: unreadable, readable by group or others, no secret-key,
    a malformed key, or a public key that does not belong to the secret key."""
    path = os.fspath(path)
    pub, sec, line = _read_cert(path)
    if sec is None:
        raise _fail(path, "no secret-key in its curve section (a public certificate? the pair "
                          "is in NAME.key_secret)")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _fail(path, f"cannot open: {exc.strerror}") from None
    if mode & 0o077:
        raise _fail(path, f"holds a secret key but its mode is {stat.S_IMODE(mode):04o} "
                          "(group or others may read it); chmod 600 it")
    if pub is None:
        raise _fail(path, "no public-key in its curve section")
    if zmq.curve_public(sec.encode()).decode() != pub:
        raise _fail(path, f"line {line}: public-key does not belong to the secret-key")
    return pub, sec


def load_public_key(path: PathLike) -> str:
    """The ``public-key`` (Z85) of a certificate (``NAME.key``, or a ``NAME.key_secret``).
    Raises KeyFileError naming the file and the problem."""
    path = os.fspath(path)
    pub, _sec, _line = _read_cert(path)
    if pub is None:
        raise _fail(path, "no public-key in its curve section")
    return pub


def load_allow_dir(directory: PathLike) -> list[str]:
    """The public keys of every ``*.key`` file in ``directory``, in file-name order."""
    directory = os.fspath(directory)
    try:
        names = sorted(n for n in os.listdir(directory)
                       if n.endswith(".key") and len(n) > 4 and not n.startswith("."))
    except OSError as exc:
        raise KeyFileError(f"allow directory {directory!r}: cannot open: {exc.strerror}") from None
    return [load_public_key(os.path.join(directory, n)) for n in names]


def _write(path: str, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise _fail(path, f"cannot create: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask must not change it
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def create_key_pair(directory: PathLike, name: str) -> tuple[str, str]:
    """Make a key pair and write ``directory/NAME.key`` (public, 0644) and
    ``directory/NAME.key_secret`` (both keys, 0600) in pyzmq's certificate format. Refuses to
    overwrite. Returns the two paths (public, secret)."""
    directory = os.fspath(directory)
    if not name or "/" in name:
        raise ValueError(f"key name {name!r} must be non-empty, without '/'")
    pub, sec = (k.decode() for k in zmq.curve_keypair())
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    base = os.path.join(directory, name)
    _write(base + ".key",
           f"#   ****  Generated on {when} by tern  ****\n"
           "#   ZeroMQ CURVE Public Certificate\n"
           "#   Exchange securely, or use a secure mechanism to verify the contents\n"
           "#   of this file after exchange.\n\n"
           f"metadata\ncurve\n    public-key = \"{pub}\"\n", 0o644)
    _write(base + ".key_secret",
           f"#   ****  Generated on {when} by tern  ****\n"
           "#   ZeroMQ CURVE **Secret** Certificate\n"
           "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
           f"metadata\ncurve\n    public-key = \"{pub}\"\n    secret-key = \"{sec}\"\n", 0o600)
    return base + ".key", base + ".key_secret"


class Curve:
    """One Manager's CURVE state: keys, allow-list, and the ZAP/monitor thread."""

    def __init__(self, cfg: CurveConfig) -> None:
        if not zmq.has("curve"):
            raise RuntimeError("this libzmq was built without CURVE (zmq.has('curve'))")
        self.public_key, self.secret_key = load_key_pair(cfg.key_file)
        keys = list(cfg.allow_keys)
        for k in keys:
            problem = _key_problem(k) if isinstance(k, str) else "not a string"
            if problem:
                raise KeyFileError(f"allow_keys entry {k!r} is not a CURVE key: {problem}")
        if cfg.allow_dir:
            keys += load_allow_dir(cfg.allow_dir)
        if not keys:
            raise KeyFileError(f"the allow-list is empty (allow_dir {cfg.allow_dir!r} has no "
                               "*.key file and allow_keys is empty): no client could connect")
        self._allowed = frozenset(z85.decode(k) for k in keys)
        self._stats = None
        self._zap: Optional[zmq.Socket] = None
        self._monitor: Optional[zmq.Socket] = None
        self._stop_rx: Optional[zmq.Socket] = None
        self._stop_tx: Optional[zmq.Socket] = None
        self._thread: Optional[threading.Thread] = None

    # -- set-up: the thread that creates the sockets ----------------------------------------

    def start_server(self, ctx: zmq.Context, pull: zmq.Socket, stats) -> None:
        """Make ``pull`` (not yet bound) a CURVE server behind our ZAP handler, watch it for
        failed handshakes, and start the thread."""
        self._stats = stats
        pull.curve_secretkey = self.secret_key.encode()
        pull.curve_publickey = self.public_key.encode()
        pull.curve_server = True
        pull.zap_domain = ZAP_DOMAIN
        try:
            self._zap = ctx.socket(zmq.REP)
            self._zap.linger = 0
            self._zap.bind(ZAP_ENDPOINT)
            self._monitor = pull.get_monitor_socket(_FAILED_EVENTS)
            addr = f"inproc://tern-curve-stop-{id(self)}"
            self._stop_rx = ctx.socket(zmq.PAIR)
            self._stop_rx.linger = 0
            self._stop_rx.bind(addr)
            self._stop_tx = ctx.socket(zmq.PAIR)
            self._stop_tx.linger = 0
            self._stop_tx.connect(addr)
        except BaseException:
            self.stop()
            raise
        # The sockets move to the new thread here (Thread.start() is the barrier).
        self._thread = threading.Thread(target=self._run, name="tern-curve", daemon=True)
        self._thread.start()

    def configure_client(self, sock: zmq.Socket, server_key: Optional[str]) -> bool:
        """Make a PUSH socket (not yet connected) a CURVE client of ``server_key``."""
        if not valid_key(server_key):
            return False
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey = self.public_key.encode()
        sock.curve_secretkey = self.secret_key.encode()
        return True

    def stop_monitor(self, pull: zmq.Socket) -> None:
        """The thread that uses ``pull``, before closing it: libzmq would otherwise block on
        the monitor socket once our thread is gone."""
        if self._monitor is not None:
            try:
                pull.disable_monitor()
            except zmq.ZMQError:
                pass

    def stop(self) -> None:
        """Stop and join the thread, close its sockets. Before the context is terminated."""
        if self._thread is not None:
            self._stop_tx.send(b"")
            self._thread.join()
            self._thread = None
        for name in ("_zap", "_monitor", "_stop_rx", "_stop_tx"):
            s = getattr(self, name)
            if s is not None:
                s.close(0)
                setattr(self, name, None)

    # -- the curve thread ----------------------------------------------------------------------

    def _run(self) -> None:
        poller = zmq.Poller()
        for s in (self._zap, self._monitor, self._stop_rx):
            poller.register(s, zmq.POLLIN)
        while True:
            try:
                ready = dict(poller.poll())
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM:  # the context is going away: stop() came too late
                    return
                continue  # EINTR
            if self._stop_rx in ready:
                return
            if self._zap in ready:
                self._answer_zap()
            if self._monitor in ready:
                self._read_monitor()

    def _answer_zap(self) -> None:
        # Request (ZAP, RFC 27): version, request id, domain, address, routing id, mechanism,
        # credentials (CURVE: the client's 32-byte public key).
        req = self._zap.recv_multipart()
        if len(req) < 2:
            return
        ok = (len(req) >= 7 and req[0] == b"1.0" and req[5] == b"CURVE"
              and len(req[6]) == 32 and req[6] in self._allowed)
        if not ok:
            self._stats.inc("auth_denied")
        # Reply: the user id is the client's public key in Z85: frames from it carry it as
        # "User-Id", the key our replies to it must ask for.
        user = z85.encode(req[6]) if ok else b""
        self._zap.send_multipart([b"1.0", req[1], b"200" if ok else b"400",
                                  b"OK" if ok else b"client key not allowed", user, b""])

    def _read_monitor(self) -> None:
        for _ in range(64):
            try:
                parts = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if parts and len(parts[0]) >= 2:
                event = int.from_bytes(parts[0][:2], "little")
                if event & _FAILED_EVENTS:
                    self._stats.inc("handshakes_failed")
