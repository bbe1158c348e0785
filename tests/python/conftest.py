"""Shared helpers for the tern Python tests.

Everything here is bounded in time: waits take timeouts, sockets get RCVTIMEO, and an
autouse fixture ends every Manager a test created and checks no tern thread is left.
"""

import errno
import json
import os
import socket
import sys
import threading
import time

import pytest
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PYDIR = os.path.join(ROOT, "python")
if PYDIR not in sys.path:  # also works without PYTHONPATH=python
    sys.path.insert(0, PYDIR)

import tern  # noqa: E402

WAIT = 10.0  # upper bound for anything that should happen "soon"


def free_port() -> int:
    """A TCP port that was free a moment ago (the protocol has no bind-to-port-0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class Collector(tern.Actor):
    """Records (msg, sender) pairs; wait_for(n) blocks until n arrived or times out."""

    def __init__(self, reply_with=None):
        self.items = []
        self.cond = threading.Condition()
        self.reply_with = reply_with

    def on_unhandled(self, msg, sender):
        with self.cond:
            self.items.append((msg, sender))
            self.cond.notify_all()
        if self.reply_with is not None:
            self.reply(self.reply_with(msg))

    def wait_for(self, n, timeout=WAIT):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.items) >= n, timeout)
            assert ok, f"timed out with {len(self.items)}/{n} messages: {self.items[-3:]}"
            return list(self.items)

    @property
    def msgs(self):
        with self.cond:
            return [m for m, _ in self.items]


def wait_until(pred, timeout=WAIT, what="condition"):
    """Poll a predicate (tests only): fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


class RawPeer:
    """A bare pyzmq peer: a PULL bound to a free port (to see what we get back) and
    PUSH sockets to send arbitrary frames."""

    def __init__(self, ctx):
        self.ctx = ctx
        for _ in range(20):
            self.port = free_port()
            self.pull = ctx.socket(zmq.PULL)
            self.pull.setsockopt(zmq.LINGER, 0)
            self.pull.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
            try:
                self.pull.bind(f"tcp://*:{self.port}")
                break
            except zmq.ZMQError as exc:
                self.pull.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
        self.endpoint = f"tcp://localhost:{self.port}"
        self.pushes = {}

    def push(self, endpoint, frames):
        sock = self.pushes.get(endpoint)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, int(WAIT * 1000))
            sock.connect(tern.connect_address(endpoint))
            self.pushes[endpoint] = sock
        if isinstance(frames, (bytes, bytearray)):
            sock.send(frames)
        else:
            sock.send_multipart(frames)

    def send_env(self, endpoint, receiver, mtype, message, sender_actor="raw",
                 sender_endpoint="default", **extra):
        if sender_endpoint == "default":
            sender_endpoint = self.endpoint
        env = {"sender_actor": sender_actor, "sender_endpoint": sender_endpoint,
               "receiver": receiver, "message_type": mtype, "message": message, **extra}
        self.push(endpoint, json.dumps(env).encode())

    def recv(self, timeout=WAIT):
        self.pull.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        try:
            return json.loads(self.pull.recv())
        except zmq.Again:
            pytest.fail(f"raw peer got nothing within {timeout}s")

    def expect_nothing(self, timeout=0.3):
        if self.pull.poll(int(timeout * 1000)):
            pytest.fail(f"raw peer unexpectedly got {self.pull.recv()!r}")

    def close(self):
        for s in self.pushes.values():
            s.close(0)
        self.pull.close(0)


@pytest.fixture
def raw_peer():
    ctx = zmq.Context()
    peer = RawPeer(ctx)
    yield peer
    peer.close()
    ctx.term()


@pytest.fixture
def start_manager():
    """start_manager(setup, remote=True) -> (manager, advertised endpoint).

    ``setup(manager)`` manages the actors; on EADDRINUSE (another process took the port
    we picked) a new Manager is built and ``setup`` runs again.
    """
    made = []

    def start(setup=None, remote=True, **opts):
        for _ in range(20):
            endpoint = f"tcp://*:{free_port()}" if remote else None
            mgr = tern.Manager(endpoint, **opts)
            made.append(mgr)
            if setup is not None:
                setup(mgr)
            try:
                mgr.init()
            except OSError as exc:
                mgr.end()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return mgr
        raise RuntimeError("no free port found")

    yield start
    for mgr in reversed(made):
        mgr.end()


@pytest.fixture(autouse=True)
def no_leftover_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        left = [t for t in threading.enumerate()
                if t not in before and t.name.startswith("tern-") and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not left, f"threads left running: {left}"
