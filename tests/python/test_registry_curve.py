"""The registry under CURVE (docs/registry.md, "CURVE"): the server behind tern.security's
ZAP handler, clients with the registry's key and a key pair of their own, the
actor_server_key extension, Manager(registry_server_key=...) end to end."""

import json
import threading

import pytest
import zmq

import tern
from conftest import WAIT, Collector, free_port, wait_until
from messages_for_tests import Ping, Pong
from tern import security
from tern.registry import RegistryClient, RegistryServer, ServerConfig


@pytest.fixture
def keys(tmp_path):
    """Key pairs reg, a, b (allowed) and stranger (not allowed); the allow dir holds a, b."""
    allow = tmp_path / "allow"
    allow.mkdir()
    out = {}
    for name in ("reg", "a", "b", "stranger"):
        pub_path, sec_path = security.create_key_pair(tmp_path, name)
        out[name] = security.load_key_pair(sec_path)
        out[name + "_file"] = sec_path
        if name in ("a", "b"):
            (allow / f"{name}.key").write_text(open(pub_path).read())
    out["allow"] = str(allow)
    return out


def start(srv):
    endpoint = srv.bind()
    t = threading.Thread(target=srv.serve, name="test-registry-server", daemon=True)
    t.start()
    srv.endpoint = endpoint
    return t


@pytest.fixture
def curve_server(keys):
    cfg = ServerConfig(expire_after_s=1.5, suspect_after_s=0.8, sweep_interval_s=0.2)
    srv = RegistryServer(f"tcp://127.0.0.1:{free_port()}", cfg,
                         curve=tern.CurveConfig(keys["reg_file"], keys["allow"]))
    t = start(srv)
    yield srv
    srv.stop()
    t.join(WAIT)
    assert not t.is_alive()


def client(srv, keys, who, timeout=WAIT):
    return RegistryClient(srv.endpoint, timeout=timeout, server_key=keys["reg"][0],
                          key_pair=keys[who])


def test_an_allowed_client_is_served_over_curve_and_the_key_extension_round_trips(curve_server, keys):
    assert curve_server.public_key == keys["reg"][0]
    c = client(curve_server, keys, "a")
    try:
        assert c.secure
        c.register("mgr-a", "quotes", "tcp://localhost:5001", server_key=keys["a"][0])
        c.register("mgr-a", "plain", "tcp://localhost:5001")
        assert c.resolve("quotes") == ("tcp://localhost:5001", True, keys["a"][0])
        assert c.lookup("quotes") == ("tcp://localhost:5001", True)
        assert c.resolve("plain") == ("tcp://localhost:5001", True, None)
        rows = {r["actor_name"]: r for r in c.list()}
        assert rows["quotes"]["server_key"] == keys["a"][0] and "server_key" not in rows["plain"]
        stats = c.stats()
        assert stats["auth_denied"] == 0 and stats["names"] == 2
    finally:
        c.close()


def test_an_unknown_client_key_gets_nothing_and_is_counted(curve_server, keys):
    c = client(curve_server, keys, "stranger", timeout=0.5)
    try:
        with pytest.raises(tern.RegistryError, match="did not answer RegisterActor within 0.5s"):
            c.register("evil", "quotes", "tcp://localhost:6666")
    finally:
        c.close()
    wait_until(lambda: curve_server.stats()["auth_denied"] >= 1, what="auth_denied")
    assert curve_server.stats()["names"] == 0  # nothing got through
    assert "requests.RegisterActor" not in curve_server.stats()


def test_a_plain_client_gets_no_answer_from_a_curve_registry(curve_server, keys):
    c = RegistryClient(curve_server.endpoint, timeout=0.5)
    try:
        with pytest.raises(tern.RegistryError, match="did not answer LookupActor"):
            c.lookup("x")
    finally:
        c.close()
    wait_until(lambda: curve_server.stats()["handshakes_failed"] >= 1, what="handshakes_failed")
    assert curve_server.stats().get("requests.LookupActor", 0) == 0


def test_a_plain_registry_keeps_the_family_replies_and_validates_the_key_field():
    srv = RegistryServer("tcp://127.0.0.1:0")
    reg = srv.handle(json.dumps({"message_type": "RegisterActor", "manager_id": "m",
                                 "actor_name": "q", "actor_endpoint": "tcp://h:1"}).encode())
    assert reg == {"message_type": "RegistrationOk", "actor_name": "q"}
    look = srv.handle(b'{"message_type": "LookupActor", "actor_name": "q"}')
    assert list(look) == ["message_type", "actor_name", "endpoint", "online"]
    bad = srv.handle(json.dumps({"message_type": "RegisterActor", "manager_id": "m",
                                 "actor_name": "k", "actor_endpoint": "tcp://h:1",
                                 "actor_server_key": "short"}).encode())
    assert bad == {"error": "Bad request: RegisterActor: key 'actor_server_key' must be a "
                            "CURVE public key (40 characters of Z85), got string of 5 characters"}
    assert "stats" in srv.handle(b'{"message_type": "RegistryStats"}')
    assert "auth_denied" not in srv.stats()


def test_client_and_server_name_bad_curve_arguments(keys, tmp_path):
    with pytest.raises(ValueError, match="server_key given without key_pair"):
        RegistryClient("tcp://127.0.0.1:1", server_key=keys["reg"][0])
    with pytest.raises(ValueError, match="key_pair given without server_key"):
        RegistryClient("tcp://127.0.0.1:1", key_pair=keys["a"])
    with pytest.raises(ValueError, match="'nope' is not a CURVE public key"):
        RegistryClient("tcp://127.0.0.1:1", server_key="nope", key_pair=keys["a"])
    with pytest.raises(security.KeyFileError, match="missing"):
        RegistryServer("tcp://127.0.0.1:0", curve=tern.CurveConfig(str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="registry_server_key needs curve="):
        tern.Manager("tcp://127.0.0.1:1", registry="tcp://127.0.0.1:2",
                     registry_server_key=keys["reg"][0])


def curve_manager(srv, keys, who, registry_key=True, **kw):
    return tern.Manager(f"tcp://127.0.0.1:{free_port()}", registry=srv.endpoint,
                        registry_server_key=keys["reg"][0] if registry_key else None,
                        registry_heartbeat=0.2, registry_timeout=2.0,
                        curve=tern.CurveConfig(keys[who + "_file"], keys["allow"]), **kw)


def test_curve_managers_register_their_keys_and_find_each_other_by_name_alone(curve_server, keys):
    a, b = curve_manager(curve_server, keys, "a"), curve_manager(curve_server, keys, "b")
    pong = Collector(reply_with=lambda m: Pong(m.count))
    inbox = Collector()
    b.manage("pong", pong)
    a.manage("inbox", inbox)
    b.init()
    a.init()
    try:
        ref = a.lookup_remote("pong")  # no server_key=: the key b registered
        assert ref.server_key == b.public_key == keys["b"][0]
        assert ref.send(Ping(3), sender=a.lookup("inbox"))
        msg, _ = inbox.wait_for(1)[0]
        assert isinstance(msg, Pong) and msg.count == 3
        assert {r["actor_name"]: r["server_key"] for r in a.remote_actors()} == \
            {"pong": keys["b"][0], "inbox": keys["a"][0]}
        wait_until(lambda: a.stats()["registry_heartbeats"] >= 2, what="heartbeats")
        assert a.stats()["registry_errors"] == 0
    finally:
        a.end()
        b.end()
    assert curve_server.stats()["auth_denied"] == 0


def test_a_curve_manager_on_a_plain_registry_must_name_the_key(keys):
    srv = RegistryServer(f"tcp://127.0.0.1:{free_port()}",
                         ServerConfig(expire_after_s=1.5, suspect_after_s=0.8,
                                      sweep_interval_s=0.2))
    t = start(srv)
    b = curve_manager(srv, keys, "b", registry_key=False)
    a = curve_manager(srv, keys, "a", registry_key=False)
    b.manage("pong", Collector())
    b.init()
    a.init()
    try:
        # b registered its key (the extension), but a plain registry is not trusted for it
        assert srv.snapshot()[0]["server_key"] == keys["b"][0]
        with pytest.raises(ValueError, match="needs the peer's public key.*CURVE registry"):
            a.lookup_remote("pong")
        assert a.lookup_remote("pong", server_key=keys["b"][0]).server_key == keys["b"][0]
    finally:
        a.end()
        b.end()
        srv.stop()
        t.join(WAIT)


def test_a_curve_manager_whose_key_the_registry_refuses_fails_init_within_the_timeout(curve_server, keys):
    m = tern.Manager(f"tcp://127.0.0.1:{free_port()}", registry=curve_server.endpoint,
                     registry_server_key=keys["reg"][0], registry_timeout=0.5,
                     curve=tern.CurveConfig(keys["stranger_file"], keys["allow"]))
    m.manage("x", Collector())
    with pytest.raises(tern.RegistryError, match="did not answer RegisterActor"):
        m.init()
    wait_until(lambda: curve_server.stats()["auth_denied"] >= 1, what="auth_denied")
    assert curve_server.snapshot() == []


def test_registry_command_line_serves_lists_and_counts_over_curve(keys, capsys):
    from tern.registry import main
    srv = RegistryServer(f"tcp://127.0.0.1:{free_port()}",
                         curve=tern.CurveConfig(keys["reg_file"], keys["allow"]))
    t = start(srv)
    pub_file = keys["reg_file"][:-len("_secret")]
    try:
        c = client(srv, keys, "a")
        c.register("mgr-a", "quotes", "tcp://localhost:5001")
        c.close()
        assert main(["--list", "--endpoint", srv.endpoint, "--server-key", pub_file,
                     "--key-file", keys["a_file"]]) == 0
        out = capsys.readouterr().out
        assert "quotes\ttcp://localhost:5001\tonline\tmgr-a" in out
        assert main(["--stats", "--endpoint", srv.endpoint, "--timeout", "0.5",
                     "--server-key", pub_file, "--key-file", keys["stranger_file"]]) == 1
        assert main(["--stats", "--endpoint", srv.endpoint, "--server-key", pub_file,
                     "--key-file", keys["b_file"]]) == 0
        out = capsys.readouterr().out
        assert "auth_denied\t1" in out and "names\t1" in out
    finally:
        srv.stop()
        t.join(WAIT)
