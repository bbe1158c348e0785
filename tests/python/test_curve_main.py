"""CURVE together with main's features: honest per-peer accounting with keyed peers,
registry lookups and ask() over CURVE, Manager re-creation (replace=) with curve=."""

import threading

import pytest

import tern
from conftest import WAIT, Collector, free_port, wait_until
from tern import security
from tern.registry import RegistryServer, ServerConfig


def _msgs():
    from messages_for_tests import Ping, Pong  # imported late: see test_curve._msgs
    return Ping, Pong


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    made = {}

    def make(name):
        if name not in made:
            pub_path, sec_path = security.create_key_pair(d, name)
            made[name] = (security.load_public_key(pub_path), sec_path)
        return made[name]

    return make


@pytest.fixture
def server():
    cfg = ServerConfig(expire_after_s=1.5, suspect_after_s=0.8, sweep_interval_s=0.2)
    srv = RegistryServer(f"tcp://127.0.0.1:{free_port()}", cfg)
    srv.endpoint = srv.bind()
    t = threading.Thread(target=srv.serve, name="test-registry-server", daemon=True)
    t.start()
    yield srv
    srv.stop()
    t.join(WAIT)
    assert not t.is_alive()


def test_each_address_and_key_is_a_peer_of_its_own_and_every_accepted_send_is_accounted(keys):
    Ping, _ = _msgs()
    _, sec = keys("me")
    k1, _ = keys("p1")
    k2, _ = keys("p2")
    k3, _ = keys("p3")
    addr = f"tcp://127.0.0.1:{free_port()}"  # nobody listens: nothing is ever delivered
    m = tern.Manager(None, curve=tern.CurveConfig(sec, allow_keys=[k1]), max_backlog=3,
                     max_peers=2, sndhwm=1, linger_ms=0)
    m.init()
    try:
        accepted = {}
        for key in (k1, k2):
            ref = m.remote("x", addr, server_key=key)
            accepted[key] = sum(ref.send(Ping(i)) for i in range(10))
        # max_backlog counts per (address, key): the second key is not refused because the
        # first filled its backlog (at most sndhwm more went into ZeroMQ meanwhile)
        for key in (k1, k2):
            assert 3 <= accepted[key] <= 5, accepted
        # a third key at the same address is a third peer: max_peers=2 refuses it
        assert not m.remote("x", addr, server_key=k3).send(Ping(0))
        s = m.stats()
        assert s["dropped"]["too_many_peers"] == 1, s
        assert s["dropped"]["peer_backlog_full"] == 20 - sum(accepted.values()), s
    finally:
        report = m.end()
    out = m.stats()["messages_out"]
    assert report.total + out == sum(accepted.values()), (report, out)
    assert set(report.unsent) == {addr}, report  # named by address, not by the key


def test_lookup_remote_and_ask_over_curve_with_a_registry_and_replace(server, keys, tmp_path):
    Ping, Pong = _msgs()
    a_pub, a_sec = keys("a")
    b_pub, b_sec = keys("b")

    def make(name, sec, allow, ep):
        m = tern.Manager(ep, registry=server.endpoint, registry_heartbeat=0.2,
                         registry_timeout=2.0, curve=tern.CurveConfig(sec, allow_keys=[allow]))
        return m

    b_ep = f"tcp://127.0.0.1:{free_port()}"
    b = make("b", b_sec, a_pub, b_ep)
    b.manage("pong", Collector(reply_with=lambda msg: Pong(msg.count)))
    b.init()
    # the notebook cell run twice: a second Manager on b's endpoint, curve= and registry=,
    # replaces the first (replace=True is the default)
    b2 = make("b", b_sec, a_pub, b_ep)
    b2.manage("pong", Collector(reply_with=lambda msg: Pong(msg.count + 100)))
    b2.init()
    a = make("a", a_sec, b_pub, f"tcp://127.0.0.1:{free_port()}")
    a.init()
    try:
        with pytest.raises(ValueError, match="needs the peer's public key"):
            a.lookup_remote("pong")
        ref = a.lookup_remote("pong", server_key=b_pub)
        assert ref.server_key == b_pub and ref.endpoint == b2.advertised_endpoint
        reply = ref.ask(Ping(7), timeout=WAIT)
        assert isinstance(reply, Pong) and reply.count == 107
        for m in (a, b2):
            s = m.stats()
            assert s["auth_denied"] == 0 and s["handshakes_failed"] == 0, s
            assert s["dropped_total"] == 0, s
    finally:
        a.end()
        b2.end()
        b.end()
    assert b.stats()["messages_in"] == 0
