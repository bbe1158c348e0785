"""The registry (python/tern/registry.py): the server's protocol with a fake clock, the server
over a real socket against malformed input, and Manager(registry=...) end to end in-process.
Real-process tests (C++ and Python, kill and restart) are in tests/integration/test_registry_processes.py.
"""

import json
import threading
import time

import pytest
import zmq

import tern
from tern.registry import (ManagerLink, RegistryClient, RegistryServer, ServerConfig,
                           make_manager_id)

from conftest import WAIT, Collector, free_port, wait_until
from messages_for_tests import Ping, Pong


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def req(server, conn=b"c1", **fields):
    return server.handle(json.dumps(fields).encode(), conn)


def register(server, manager, name, endpoint="tcp://localhost:5001", conn=b"c1"):
    return req(server, conn, message_type="RegisterActor", manager_id=manager, actor_name=name,
               actor_endpoint=endpoint)


def lookup(server, name):
    return req(server, message_type="LookupActor", actor_name=name)


# ---- the protocol, no sockets ------------------------------------------------------------


def test_register_and_lookup_answer_exactly_the_family_replies():
    s = RegistryServer(clock=Clock())
    assert register(s, "m1", "quotes", "tcp://10.0.0.5:5001") == {
        "message_type": "RegistrationOk", "actor_name": "quotes"}
    assert lookup(s, "quotes") == {"message_type": "LookupResult", "actor_name": "quotes",
                                   "endpoint": "tcp://10.0.0.5:5001", "online": True}
    assert lookup(s, "nobody") == {"message_type": "LookupResult", "actor_name": "nobody",
                                   "endpoint": None, "online": False}
    assert req(s, message_type="Heartbeat", manager_id="m1", timestamp_ms=5) == {
        "message_type": "HeartbeatAck"}
    assert req(s, message_type="Frobnicate") == {"error": "Unknown message type: Frobnicate"}


def test_a_duplicate_name_from_another_manager_is_refused_naming_the_owner():
    s = RegistryServer(clock=Clock())
    register(s, "m1", "quotes")
    r = register(s, "m2", "quotes", "tcp://elsewhere:1", conn=b"c2")
    assert r == {"message_type": "RegistrationFailed", "actor_name": "quotes",
                 "reason": "Name already registered", "owner": "m1"}
    assert lookup(s, "quotes")["endpoint"] == "tcp://localhost:5001"


def test_the_same_manager_may_register_again_and_move_its_endpoint():
    s = RegistryServer(clock=Clock())
    register(s, "m1", "quotes", "tcp://localhost:5001")
    assert register(s, "m1", "quotes", "tcp://localhost:6001")["message_type"] == "RegistrationOk"
    assert lookup(s, "quotes")["endpoint"] == "tcp://localhost:6001"


def test_unregister_is_owner_checked_by_manager_id_or_by_connection():
    s = RegistryServer(clock=Clock())
    register(s, "m1", "quotes", conn=b"c1")
    # another manager, by id
    r = req(s, b"c2", message_type="UnregisterActor", actor_name="quotes", manager_id="m2")
    assert r["message_type"] == "RegistrationFailed" and r["owner"] == "m1"
    # a family client sends only the name: a connection that never spoke for m1 is refused
    r = req(s, b"c3", message_type="UnregisterActor", actor_name="quotes")
    assert r["message_type"] == "RegistrationFailed"
    assert lookup(s, "quotes")["endpoint"] is not None
    # the connection that registered it may
    assert req(s, b"c1", message_type="UnregisterActor", actor_name="quotes") == {
        "message_type": "RegistrationOk", "actor_name": "quotes"}
    assert lookup(s, "quotes")["endpoint"] is None
    # an unknown name: Ok, as the family's server answers
    assert req(s, b"c9", message_type="UnregisterActor", actor_name="nobody")[
        "message_type"] == "RegistrationOk"


def test_a_silent_manager_goes_offline_then_its_names_expire_and_heartbeats_keep_it():
    clock = Clock()
    s = RegistryServer(clock=clock)
    register(s, "m1", "a")
    register(s, "m2", "b", conn=b"c2")
    for _ in range(5):  # m2 beats every 2 s for 10 s; m1 is silent
        clock.t += 2.0
        req(s, b"c2", message_type="Heartbeat", manager_id="m2", timestamp_ms=1)
        s.sweep()
        if clock.t - 1000.0 == 4.0:
            assert lookup(s, "a") == {"message_type": "LookupResult", "actor_name": "a",
                                      "endpoint": "tcp://localhost:5001", "online": False}
    assert lookup(s, "a")["endpoint"] is None
    assert lookup(s, "b")["online"] is True
    assert s.stats()["names_expired"] == 1
    # m1 comes back (a restarted process re-registers): its name is back
    assert register(s, "m1", "a")["message_type"] == "RegistrationOk"
    assert lookup(s, "a")["online"] is True


def test_expiry_is_after_expire_after_s_not_before():
    clock = Clock()
    s = RegistryServer(clock=clock)
    register(s, "m1", "a")
    clock.t += 6.0
    s.sweep()
    assert lookup(s, "a")["endpoint"] is not None
    clock.t += 0.01
    s.sweep()
    assert lookup(s, "a")["endpoint"] is None


@pytest.mark.parametrize("frame, reason", [
    (b"not json", "Bad request: malformed JSON"),
    (b"\xff\xfe\x00binary", "Bad request: not valid UTF-8"),
    (b"", "Bad request: malformed JSON"),
    (b"[1, 2]", "Bad request: request must be a JSON object, got array"),
    (b'{"actor_name": "x"}', "Bad request: missing key 'message_type'"),
    (b'{"message_type": 7}', "Bad request: key 'message_type' must be a string"),
    (b'{"message_type": "RegisterActor", "actor_name": "x", "actor_endpoint": "tcp://h:1"}',
     "Bad request: RegisterActor: missing key 'manager_id'"),
    (b'{"message_type": "RegisterActor", "manager_id": "m", "actor_name": 5, '
     b'"actor_endpoint": "tcp://h:1"}',
     "Bad request: RegisterActor: key 'actor_name' must be a string, got number"),
    (b'{"message_type": "RegisterActor", "manager_id": "m", "actor_name": "", '
     b'"actor_endpoint": "tcp://h:1"}',
     "Bad request: RegisterActor: key 'actor_name' must not be empty"),
    (b'{"message_type": "LookupActor", "actor_name": null}',
     "Bad request: LookupActor: key 'actor_name' must be a string, got null"),
    (b'{"message_type": "LookupActor", "actor_name": "' + b"n" * 300 + b'"}',
     "Bad request: LookupActor: key 'actor_name' is 300 bytes, longer than the limit 256"),
    (b'{"message_type": "Heartbeat", "manager_id": "m", "timestamp_ms": "soon"}',
     "Bad request: Heartbeat: key 'timestamp_ms' must be a number, got string"),
    (b'{"message_type": "UnregisterActor", "actor_name": "a", "manager_id": []}',
     "Bad request: UnregisterActor: key 'manager_id' must be a string, got array"),
    (b'{"message_type": "LookupActor", "actor_name": NaN}', "Bad request: malformed JSON"),
    (b"[" * 100_000, "Bad request: request of 100000 bytes exceeds max_request_bytes"),
    (b"[" * 4000, "Bad request: malformed JSON"),
])
def test_a_malformed_request_gets_an_error_naming_the_problem(frame, reason):
    s = RegistryServer(clock=Clock())
    r = s.handle(frame, b"c")
    assert list(r) == ["error"], r
    assert r["error"].startswith(reason), r


def test_tables_are_bounded_by_the_config():
    cfg = ServerConfig(max_names=5, max_names_per_manager=3, max_connections=4)
    s = RegistryServer(config=cfg, clock=Clock())
    assert [register(s, "m1", f"a{i}")["message_type"] for i in range(4)] == [
        "RegistrationOk"] * 3 + ["RegistrationFailed"]
    assert "max_names_per_manager" in register(s, "m1", "a9")["reason"]
    assert register(s, "m2", "b0")["message_type"] == "RegistrationOk"
    assert register(s, "m2", "b1")["message_type"] == "RegistrationOk"
    r = register(s, "m3", "c0")
    assert r["message_type"] == "RegistrationFailed" and "max_names=5" in r["reason"]
    for i in range(100):
        req(s, f"conn{i}".encode(), message_type="Heartbeat", manager_id=f"x{i}", timestamp_ms=0)
    st = s.stats()
    assert st["names"] == 5 and st["managers"] == 2 and st["connections"] == 4
    assert st["refused.full"] == 1 and st["refused.manager_full"] == 2


def test_list_actors_is_the_tern_extension():
    s = RegistryServer(clock=Clock())
    register(s, "m1", "b", "tcp://h:2")
    register(s, "m1", "a", "tcp://h:1")
    assert req(s, message_type="ListActors") == {"message_type": "ActorList", "actors": [
        {"actor_name": "a", "endpoint": "tcp://h:1", "online": True, "manager_id": "m1"},
        {"actor_name": "b", "endpoint": "tcp://h:2", "online": True, "manager_id": "m1"}]}


def test_server_config_names_a_bad_value():
    with pytest.raises(ValueError, match="max_names must be > 0, got 0"):
        ServerConfig(max_names=0)
    with pytest.raises(ValueError, match="suspect_after_s"):
        ServerConfig(suspect_after_s=9.0)


# ---- the server over a socket -------------------------------------------------------------


@pytest.fixture
def server():
    cfg = ServerConfig(expire_after_s=1.5, suspect_after_s=0.8, sweep_interval_s=0.2)
    srv = RegistryServer(f"tcp://127.0.0.1:{free_port()}", cfg)
    endpoint = srv.bind()
    t = threading.Thread(target=srv.serve, name="test-registry-server", daemon=True)
    t.start()
    srv.endpoint = endpoint
    yield srv
    srv.stop()
    t.join(WAIT)
    assert not t.is_alive()


def test_the_server_answers_every_malformed_frame_and_lives(server):
    ctx = zmq.Context()
    try:
        frames = [b"", b"x", b"\x00\x01\x02\xff", b"{", b"null", b'{"message_type": {}}',
                  b'{"message_type": "RegisterActor", "manager_id": 1}',
                  json.dumps({"message_type": "RegisterActor", "manager_id": "m",
                              "actor_name": "a" * 200_000, "actor_endpoint": "tcp://h:1"}).encode()]
        for f in frames:
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
            s.connect(server.endpoint)
            s.send(f)
            reply = json.loads(s.recv())
            assert list(reply) == ["error"], (f[:40], reply)
            s.close(0)
        # a DEALER sending multipart garbage, and a request whose client left before the reply
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
        d.connect(server.endpoint)
        d.send_multipart([b"", b"one", b"two"])
        assert json.loads(d.recv_multipart()[-1])["error"].startswith("Bad request: expected one")
        d.close(0)
        gone = ctx.socket(zmq.REQ)
        gone.setsockopt(zmq.LINGER, 0)
        gone.connect(server.endpoint)
        gone.send(b'{"message_type": "ListActors"}')
        gone.close(0)
        # still serving
        c = RegistryClient(server.endpoint, timeout=WAIT, context=ctx)
        c.register("m1", "alive", "tcp://localhost:1")
        assert c.lookup("alive") == ("tcp://localhost:1", True)
        c.close()
        assert server.stats()["errors.bad_request"] >= len(frames)
    finally:
        ctx.term()


def test_a_client_whose_reply_is_lost_recreates_its_req_socket():
    port = free_port()
    c = RegistryClient(f"tcp://127.0.0.1:{port}", timeout=0.3)
    with pytest.raises(tern.RegistryError, match="did not answer LookupActor within 0.3s"):
        c.lookup("x")
    # the registry appears: the same client works again (a fresh REQ socket)
    srv = RegistryServer(f"tcp://127.0.0.1:{port}")
    srv.bind()
    t = threading.Thread(target=srv.serve, daemon=True)
    t.start()
    try:
        c.timeout = WAIT
        c._reset()
        assert c.lookup("x") == (None, False)
    finally:
        c.close()
        srv.stop()
        t.join(WAIT)


def test_manager_ids_are_unique_per_call():
    assert make_manager_id() != make_manager_id()


# ---- Manager(registry=...) ----------------------------------------------------------------


def manager(server, **kw):
    kw.setdefault("registry_heartbeat", 0.2)
    kw.setdefault("registry_timeout", 2.0)
    return tern.Manager(f"tcp://127.0.0.1:{free_port()}", registry=server.endpoint, **kw)


def test_managers_register_look_each_other_up_by_name_and_exchange_messages(server):
    a, b = manager(server, manager_id="mgr-a"), manager(server, manager_id="mgr-b")
    pong = Collector(reply_with=lambda m: Pong(m.count))
    inbox = Collector()
    b.manage("pong", pong)
    a.manage("inbox", inbox)
    b.init()
    a.init()
    try:
        ref = a.lookup_remote("pong")
        assert ref.name == "pong" and ref.endpoint == b.advertised_endpoint and ref.online
        assert ref.send(Ping(7), sender=a.lookup("inbox"))
        msg, sender = inbox.wait_for(1)[0]
        assert isinstance(msg, Pong) and msg.count == 7
        listed = {x["actor_name"]: x for x in a.remote_actors()}
        assert listed["pong"]["manager_id"] == "mgr-b" and listed["inbox"]["online"]
        with pytest.raises(tern.NotFound, match="'nobody' is not registered"):
            a.lookup_remote("nobody")
        wait_until(lambda: a.stats()["registry_heartbeats"] >= 2, what="heartbeats")
    finally:
        a.end()
        b.end()
    c = RegistryClient(server.endpoint, timeout=WAIT)
    assert c.lookup("pong") == (None, False) and c.lookup("inbox") == (None, False)
    c.close()


def test_a_duplicate_name_fails_init_naming_name_and_owner_and_releases_everything(server):
    a, b = manager(server, manager_id="first"), manager(server, manager_id="second")
    a.manage("quotes", Collector())
    b.manage("other", Collector())
    b.manage("quotes", Collector())
    a.init()
    try:
        with pytest.raises(tern.NameTaken, match="'quotes' is already registered by "
                                                 "manager 'first'") as info:
            b.init()
        assert info.value.owner == "first" and info.value.name == "quotes"
        c = RegistryClient(server.endpoint, timeout=WAIT)
        assert c.lookup("other") == (None, False)  # rolled back
        c.close()
        # after init(), manage() registers first: a refused name is not managed
        late = manager(server, manager_id="third")
        late.init()
        try:
            with pytest.raises(tern.NameTaken, match="manager 'first'"):
                late.manage("quotes", Collector())
            assert late.actors == []
            late.manage("fresh", Collector())
            assert a.lookup_remote("fresh").endpoint == late.advertised_endpoint
        finally:
            late.end()
    finally:
        a.end()
        b.end()


def test_an_expired_name_reads_offline_then_not_found(server):
    c = RegistryClient(server.endpoint, timeout=WAIT)
    c.register("ghost-manager", "ghost", "tcp://localhost:1")
    a = manager(server)
    a.init()
    try:
        wait_until(lambda: c.lookup("ghost")[1] is False, what="ghost offline")
        with pytest.raises(tern.Offline, match="'ghost' at tcp://localhost:1 is offline"):
            a.lookup_remote("ghost")
        assert a.lookup_remote("ghost", allow_offline=True).endpoint == "tcp://localhost:1"
        wait_until(lambda: c.lookup("ghost")[0] is None, what="ghost expired")
        with pytest.raises(tern.NotFound):
            a.lookup_remote("ghost")
    finally:
        a.end()
        c.close()


def test_names_come_back_after_the_registry_restarts_and_named_refs_follow_a_move(server):
    a = manager(server, manager_id="mover")
    a.manage("svc", Collector())
    a.init()
    b = manager(server)
    b.init()
    try:
        ref = b.lookup_remote("svc")
        old = ref.endpoint
        # the registry forgets everything (as a restarted one would): a re-registers by itself
        with server._lock:
            server._names.clear()
            server._managers.clear()
        wait_until(lambda: a.stats()["registry_reregistered"] >= 1, what="re-registration")
        # "svc" moves: the same manager id registers a new endpoint (a restarted process)
        c = RegistryClient(server.endpoint, timeout=WAIT)
        c.register("mover", "svc", "tcp://localhost:1")
        c.close()
        wait_until(lambda: ref.endpoint == "tcp://localhost:1", what="ref re-resolved")
        assert old != ref.endpoint
    finally:
        b.end()
        a.end()


def test_a_manager_without_registry_says_so_and_one_without_endpoint_cannot_register(server):
    m = tern.Manager()
    with pytest.raises(RuntimeError, match="no registry"):
        m.lookup_remote("x")
    m.end()
    m = tern.Manager(registry=server.endpoint)
    m.manage("x", Collector())
    with pytest.raises(ValueError, match="without an endpoint cannot register"):
        m.init()
    m.end()


def test_an_unreachable_registry_fails_init_within_the_timeout():
    m = tern.Manager(f"tcp://127.0.0.1:{free_port()}",
                     registry=f"tcp://127.0.0.1:{free_port()}", registry_timeout=0.3)
    m.manage("x", Collector())
    t0 = time.monotonic()
    with pytest.raises(tern.RegistryError, match="did not answer RegisterActor"):
        m.init()
    assert time.monotonic() - t0 < 3.0
    m.end()
