"""The registry with real processes on loopback: tern's server (scripts/registry), a C++
process (tests/integration/registry_peer.cpp, RegistryClient) and a Python process
(registry_py_peer.py, Manager(registry=...)).

- C++ and Python register, look each other up by name, and exchange Ping/Pong.
- A SIGKILLed process's names go offline and are gone within 8 s; restarted, they are back.
- A duplicate name from another manager is refused, naming the owner, both ways.
- Malformed requests get an error reply and the server lives; the family's own exchange
  (the protocol page's example, Python json.dumps formatting) gets exactly its replies.
"""
import json
import os
import signal
import time

import zmq

from xlang import BUILD, PY, ROOT, free_port, procs, py_env, require  # noqa: F401

PY_PEER = ROOT / "tests" / "integration" / "registry_py_peer.py"


def cpp_peer_path():
    return require(BUILD / "tests" / "registry_peer")


def start_registry(procs, *extra):
    p, port = procs.start_listener(
        "registry", lambda port: [ROOT / "scripts" / "registry", "--endpoint",
                                  f"tcp://127.0.0.1:{port}", *extra],
        env=py_env(), ready=r"^registry: listening on ")
    return p, f"tcp://127.0.0.1:{port}"


def start_cpp(procs, registry, name, *extra):
    p = procs.start(f"cpp {name}", [cpp_peer_path(), "--registry", registry, "--name", name, *extra])
    return p


def start_py(procs, registry, name, *extra):
    port = free_port()
    return procs.start(f"py {name}", [PY, PY_PEER, "--registry", registry, "--endpoint",
                                      f"tcp://127.0.0.1:{port}", "--name", name, *extra],
                       env=py_env())


class Req:
    """A bare REQ client, recreated after a lost reply (as the family's client does)."""

    def __init__(self, endpoint, timeout=10.0):
        self.ctx = zmq.Context()
        self.endpoint = endpoint
        self.timeout = timeout
        self.sock = None

    def raw(self, frame, timeout=None):
        if self.sock is None:
            self.sock = self.ctx.socket(zmq.REQ)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(self.endpoint)
        self.sock.setsockopt(zmq.RCVTIMEO, int((timeout or self.timeout) * 1000))
        self.sock.send(frame)
        try:
            return self.sock.recv()
        except zmq.Again:
            self.sock.close(0)
            self.sock = None
            return None

    def ask(self, **req):
        data = self.raw(json.dumps(req).encode())
        assert data is not None, f"no reply to {req}"
        return json.loads(data)

    def lookup(self, name):
        return self.ask(message_type="LookupActor", actor_name=name)

    def close(self):
        if self.sock is not None:
            self.sock.close(0)
        self.ctx.term()


def test_cpp_and_python_register_look_each_other_up_by_name_and_exchange_messages(procs):
    registry, ep = start_registry(procs)
    cpp = start_cpp(procs, ep, "cpp-pong", "--lookup", "py-pong", "--count", "5")
    py = start_py(procs, ep, "py-pong", "--lookup", "cpp-pong", "--count", "5")
    cpp.wait_line(r"^registry_peer: registered cpp-pong at tcp://\S+ as \S+")
    py.wait_line(r"^registry_py_peer: registered py-pong at tcp://127\.0\.0\.1:\d+ as \S+")
    cpp.wait_line(r"^registry_peer: found py-pong at tcp://127\.0\.0\.1:\d+$")
    py.wait_line(r"^registry_py_peer: found cpp-pong at tcp://")
    cpp.wait_line(r"^registry_peer: pongs 5 from py-pong$")
    py.wait_line(r"^registry_py_peer: pongs 5 from cpp-pong$")

    listing = procs.start("list", [ROOT / "scripts" / "registry", "--list", "--endpoint", ep],
                          env=py_env())
    assert listing.wait(30) == 0, listing.output()
    rows = {line.split("\t")[0]: line.split("\t") for line in listing.lines if "\t" in line}
    assert set(rows) == {"cpp-pong", "py-pong", "py-pinger"}, listing.output()  # all its actors
    assert not listing.errors, listing.output()
    assert rows["cpp-pong"][2] == "online" and rows["py-pong"][2] == "online"

    assert cpp.stop() == 0, cpp.output()
    assert py.stop() == 0, py.output()
    cpp.wait_line(r"^registry_peer: stopped$")
    c = Req(ep)
    try:  # both unregistered at end, not left to expire
        assert c.lookup("cpp-pong")["endpoint"] is None
        assert c.lookup("py-pong")["endpoint"] is None
    finally:
        c.close()
    assert registry.alive()


def test_a_killed_process_names_go_offline_within_8_s_and_come_back_when_it_restarts(procs):
    _, ep = start_registry(procs)
    cpp = start_cpp(procs, ep, "cpp-k")
    py = start_py(procs, ep, "py-k")
    cpp.wait_line(r"^registry_peer: registered cpp-k ")
    py.wait_line(r"^registry_py_peer: registered py-k ")
    c = Req(ep)
    try:
        assert c.lookup("cpp-k")["online"] is True and c.lookup("py-k")["online"] is True
        t0 = time.monotonic()
        os.killpg(cpp.pid, signal.SIGKILL)
        os.killpg(py.pid, signal.SIGKILL)
        gone, offline = {}, {}
        while len(gone) < 2 and time.monotonic() - t0 < 12.0:
            for name in ("cpp-k", "py-k"):
                if name in gone:
                    continue
                r = c.lookup(name)
                now = time.monotonic() - t0
                if r["endpoint"] is None:
                    gone[name] = now
                elif not r["online"]:
                    offline.setdefault(name, now)
            time.sleep(0.1)
        # Heartbeats every 2 s, expiry 6 s after the last one, swept each second: a name
        # goes 4-7 s after the kill (6-7 s after the last heartbeat).
        for name in ("cpp-k", "py-k"):
            assert name in gone, (name, gone, offline)
            assert 3.0 <= gone[name] <= 8.0, (name, gone)
            assert name in offline and offline[name] < gone[name], (name, offline, gone)

        # Restarted (new processes, new manager ids): registered again, reachable by name.
        cpp2 = start_cpp(procs, ep, "cpp-k")
        cpp2.wait_line(r"^registry_peer: registered cpp-k ")
        py2 = start_py(procs, ep, "py-k", "--lookup", "cpp-k", "--count", "3")
        py2.wait_line(r"^registry_py_peer: pongs 3 from cpp-k$")
        assert c.lookup("cpp-k")["online"] is True and c.lookup("py-k")["online"] is True
        assert cpp2.stop() == 0 and py2.stop() == 0
    finally:
        c.close()


def test_a_duplicate_name_from_another_manager_is_refused_naming_the_owner(procs):
    _, ep = start_registry(procs)
    cpp = start_cpp(procs, ep, "dup-a", "--manager-id", "cpp-owner")
    cpp.wait_line(r"^registry_peer: registered dup-a at \S+ as cpp-owner$")
    py = start_py(procs, ep, "dup-a", "--exit")
    assert py.wait(30) == 3, py.output()
    py.wait_line(r"^registry_py_peer: name taken: actor name 'dup-a' is already registered "
                 r"by manager 'cpp-owner'")

    py_owner = start_py(procs, ep, "dup-b", "--manager-id", "py-owner")
    py_owner.wait_line(r"^registry_py_peer: registered dup-b at \S+ as py-owner$")
    cpp2 = start_cpp(procs, ep, "dup-b", "--exit")
    assert cpp2.wait(30) == 3, cpp2.output()
    cpp2.wait_line(r"^registry_peer: name taken: tern: registry: actor name 'dup-b' is already "
                   r"registered by manager 'py-owner'")

    c = Req(ep)
    try:
        # the owners still hold their names; a family-style unregister from a stranger fails
        assert c.lookup("dup-a")["online"] is True
        r = c.ask(message_type="UnregisterActor", actor_name="dup-b")
        assert r == {"message_type": "RegistrationFailed", "actor_name": "dup-b",
                     "reason": "Name registered by another manager", "owner": "py-owner"}
        assert c.lookup("dup-b")["online"] is True
    finally:
        c.close()
    assert cpp.stop() == 0 and py_owner.stop() == 0


def test_malformed_requests_get_an_error_reply_and_the_server_lives(procs):
    registry, ep = start_registry(procs)
    c = Req(ep)
    try:
        frames = [
            b"not json", b"", b"\x00\x9f\x92\x96\xff" * 50, b"[1,2,3]", b"null", b"{",
            b'{"message_type": null}',
            b'{"message_type": "RegisterActor"}',
            b'{"message_type": "RegisterActor", "manager_id": 1, "actor_name": "a", '
            b'"actor_endpoint": "tcp://h:1"}',
            b'{"message_type": "LookupActor", "actor_name": ["a"]}',
            b'{"message_type": "Heartbeat", "manager_id": "m", "timestamp_ms": {}}',
            json.dumps({"message_type": "LookupActor", "actor_name": "x" * 500_000}).encode(),
            json.dumps({"message_type": "RegisterActor", "manager_id": "m", "actor_name": "a",
                        "actor_endpoint": "e" * 1000}).encode(),
            b"{" * 3000 + b"}" * 3000,
        ]
        for f in frames:
            data = c.raw(f)
            assert data is not None, f"no reply to {f[:60]!r}"
            reply = json.loads(data)
            assert list(reply) == ["error"], (f[:60], reply)
        assert json.loads(c.raw(b'{"message_type": "Bogus"}')) == {
            "error": "Unknown message type: Bogus"}
        # Over socket_max_bytes (1 MiB) libzmq drops the connection: no reply, no harm.
        assert c.raw(b"x" * (2 << 20), timeout=1.0) is None
        # The family's own exchange, byte for byte as its Python client writes it.
        assert c.raw(b'{"message_type": "RegisterActor", "manager_id": "md-host-1", '
                     b'"actor_name": "quotes", "actor_endpoint": "tcp://10.0.0.5:5001"}') == \
            b'{"message_type": "RegistrationOk", "actor_name": "quotes"}'
        assert json.loads(c.raw(b'{"message_type": "LookupActor", "actor_name": "quotes"}')) == {
            "message_type": "LookupResult", "actor_name": "quotes",
            "endpoint": "tcp://10.0.0.5:5001", "online": True}
        assert json.loads(c.raw(b'{"message_type": "Heartbeat", "manager_id": "md-host-1", '
                                b'"timestamp_ms": 1733212800000}')) == {
            "message_type": "HeartbeatAck"}
        assert json.loads(c.raw(b'{"message_type": "UnregisterActor", "actor_name": "quotes"}')) \
            == {"message_type": "RegistrationOk", "actor_name": "quotes"}
        assert registry.alive()
    finally:
        c.close()
    assert registry.stop() == 0, registry.output()
    registry.wait_line(r"^registry: stopped .*'errors\.bad_request': 14\b")
