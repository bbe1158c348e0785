"""C++ and Python actors talk both ways over the wire protocol (shared/wire-protocol.md).

Every test starts real processes on loopback ports picked free at run time: the C++
examples (examples/gateway_ping, gateway_pong), the Python examples (python/examples/
ping.py, pong.py, research_actor.py), and tests/integration/stream_peer (a C++ market
actor streaming Quotes and checking the Signals). A bare pyzmq socket in this process
stands in for a peer where a test must see the exact bytes. The `procs` fixture kills and
reaps every process, also when a test fails, and checks that none is left.
"""
import json
import re
import subprocess

import pytest
import zmq

from xlang import (PY, PY_EXAMPLES, ROOT, BUILD, cpp_example, envelope, last_stats, procs,  # noqa: F401
                   py_env, require, stats_line, stream_peer)

N = 10_000  # messages each way


# ---- starting the peers ------------------------------------------------------------------

def python_example(procs, script, name, extra=()):
    """A Python example listening on a free loopback port: (proc, endpoint)."""
    tag = script.split(".")[0].split("_")[0]
    p, port = procs.start_listener(
        tag, lambda port: [PY, PY_EXAMPLES / script, "--endpoint", f"tcp://127.0.0.1:{port}",
                           "--name", name, *extra],
        env=py_env(), ready=rf"^{tag}: listening on ")
    return p, f"tcp://127.0.0.1:{port}"


def cpp_pong(procs, extra=()):
    exe = require(cpp_example("gateway_pong"))
    p, port = procs.start_listener(
        "gateway_pong", lambda port: [exe, "--endpoint", f"tcp://127.0.0.1:{port}", *extra])
    return p, f"tcp://127.0.0.1:{port}"


def stream(procs, peer, *args):
    p = procs.start("stream_peer", [require(stream_peer()), "--peer", peer, *args])
    ep = p.wait_line(r"^stream: listening on (\S+)").group(1)
    return p, ep


class RawPeer:
    """A bare pyzmq peer: PULL bound on a free loopback port, PUSH to `target` (if any)."""

    def __init__(self, target, name="tester"):
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.linger = 0
        self.pull.rcvtimeo = 10_000
        port = self.pull.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.linger = 0
        self.push.sndtimeo = 10_000
        if target:
            self.push.connect(target)
        self.name = name

    def send(self, receiver, type_, payload):
        self.push.send(envelope(self.name, self.endpoint, receiver, type_, payload))

    def recv(self):
        try:
            return json.loads(self.pull.recv())
        except zmq.Again:
            raise AssertionError("nothing received within 10 s") from None

    def close(self):
        self.push.close()
        self.pull.close()
        self.ctx.term()


@pytest.fixture
def raw_peers():
    made = []

    def make(target, name="tester"):
        r = RawPeer(target, name)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# ---- 10,000 each way through the examples -------------------------------------------------

def test_cpp_ping_python_pong_10000_round_trips(procs):
    pong, ep = python_example(procs, "pong.py", "pong")
    ping = procs.start("gateway_ping", [require(cpp_example("gateway_ping")), "--peer", ep,
                                        "--peer-name", "pong", "--count", N])
    assert ping.wait(120) == 0, ping.output()
    assert re.search(r"p50", ping.stdout) and re.search(r"msgs/s", ping.stdout), ping.output()
    assert pong.stop() == 0, pong.output()
    assert f"pong: answered {N} pings; rejects_sent=0 dropped=0" in pong.stdout, pong.output()


def test_python_ping_cpp_pong_10000_round_trips(procs):
    pong, ep = cpp_pong(procs)
    ping = procs.start("ping.py", [PY, PY_EXAMPLES / "ping.py", "--peer", ep, "--peer-name", "pong",
                                   "--count", N, "--timeout", 90], env=py_env())
    assert ping.wait(120) == 0, ping.output()
    m = re.search(r"^ping: count=(\d+) p50_us=", ping.stdout, re.M)
    assert m and int(m.group(1)) == N, ping.output()
    assert pong.stop() == 0, pong.output()
    assert f"pong: answered {N} pings; rejects_sent=0 dropped=0" in pong.stdout, pong.output()


def test_market_data_example_streams_10000_quotes_to_python_research_and_counts_signals(procs):
    research, ep = python_example(procs, "research_actor.py", "research")
    market = procs.start("market_data_gateway", [
        require(cpp_example("market_data_gateway")), "--peer", ep, "--peer-name", "research",
        "--quotes", N, "--timeout", 90])
    assert market.wait(120) == 0, market.output()  # 0: every quote answered, in order
    m = re.search(r"^market: (\d+) quotes to 'research' at \S+, (\d+) signals back .*, "
                  r"(\d+) rejects", market.stdout, re.M)
    assert m and list(map(int, m.groups())) == [N, N, 0], market.output()
    assert research.stop() == 0, research.output()
    assert f"research: answered {N} quotes" in research.stdout, research.output()


def test_cpp_market_quotes_and_python_research_signals_10000_each_way(procs):
    research, ep = python_example(procs, "research_actor.py", "research")
    market, _ = stream(procs, ep, "--count", N, "--replies", "--stats-ms", 0, "--timeout", 90)
    assert market.wait(120) == 0, market.output()
    done = last_stats(market, "done")
    # every Signal in order, each with the Quote's symbol and seq and the model's answer:
    # side 0 for a symbol's first quote (4 symbols), +1 / 0.5 after that
    assert done["sent"] == N and done["out"] == N and done["signals"] == N, done
    assert done["firsts"] == 4 and done["gaps"] == 0 and done["bad"] == 0, done
    assert done["rejects"] == 0 and done["backlog"] == 0, done
    assert research.stop() == 0, research.output()
    assert f"research: answered {N} quotes" in research.stdout, research.output()


# ---- exact content on the wire, both ways --------------------------------------------------

def test_cpp_quotes_arrive_byte_exact_in_python_10000(procs, raw_peers):
    raw = raw_peers(None)  # only its PULL socket: it stands in for the research actor
    market, market_ep = stream(procs, raw.endpoint, "--count", N, "--stats-ms", 0,
                               "--timeout", 90)
    symbols = ["AAPL", "MSFT", "ES", "EURUSD"]
    for seq in range(N):
        env = raw.recv()
        bid = 100.0 + 0.5 * (seq // 4)
        assert env == {"sender_actor": "market", "sender_endpoint": market_ep,
                       "receiver": "research", "message_type": "Quote",
                       "message": {"symbol": symbols[seq % 4], "bid": bid, "ask": bid + 1.0,
                                   "seq": seq}}, (seq, env)
        assert type(env["message"]["bid"]) is float and type(env["message"]["seq"]) is int
    assert market.wait(60) == 0, market.output()
    done = last_stats(market, "done")
    assert done["sent"] == N and done["out"] == N and done["dropped"] == 0, done


@pytest.mark.parametrize("side", ["cpp", "python"])
def test_python_pings_get_10000_pongs_carrying_the_repliers_name_and_endpoint(
        procs, raw_peers, side):
    if side == "cpp":
        pong, ep = cpp_pong(procs)
    else:
        pong, ep = python_example(procs, "pong.py", "pong")
    raw = raw_peers(ep)
    sent = received = 0
    window = 200  # pipelined, well under the high-water marks on both sides
    while received < N:
        while sent < N and sent - received < window:
            sent += 1
            raw.send("pong", "Ping", {"count": sent})
        env = raw.recv()
        received += 1
        assert env == {"sender_actor": "pong", "sender_endpoint": ep, "receiver": "tester",
                       "message_type": "Pong", "message": {"count": received}}, env
    assert pong.stop() == 0, pong.output()
    assert f"pong: answered {N} pings; rejects_sent=0 dropped=0" in pong.stdout, pong.output()


# ---- Rejects, both ways -------------------------------------------------------------------

# (name, receiver, message_type, payload, reason) from Python to the C++ pong. The reasons
# are shared/wire-protocol.md's for an unknown actor / type, and docs/gateway.md's for a bad
# payload (the field and the C++ type it must have).
CPP_REJECTS = [
    ("unknown-actor", "nobody", "Ping", {"count": 1}, "Actor 'nobody' not found"),
    ("unknown-type", "pong", "Bogus", {"count": 1}, "Unknown message type: Bogus"),
    ("missing-field", "pong", "Ping", {}, "Missing field 'count' for Ping"),
    ("mistyped-field", "pong", "Ping", {"count": "seven"},
     "Field 'count' for Ping must be int64, got string"),
]


def test_cpp_gateway_rejects_bad_python_messages_with_the_protocols_reasons(procs, raw_peers):
    pong, ep = cpp_pong(procs)
    raw = raw_peers(ep)
    for i, (case, receiver, type_, payload, reason) in enumerate(CPP_REJECTS):
        raw.send(receiver, type_, payload)
        assert raw.recv() == {
            "sender_actor": None, "sender_endpoint": None, "receiver": "tester",
            "message_type": "Reject",
            "message": {"message_type": type_, "reason": reason, "rejected_by": receiver}}, case
        raw.send("pong", "Ping", {"count": 100 + i})  # and it goes on answering
        assert raw.recv()["message"] == {"count": 100 + i}, case
    assert pong.stop() == 0, pong.output()
    # each bad frame counted by cause (docs/gateway.md), nothing else dropped
    assert "pong: answered 4 pings; rejects_sent=4 dropped=4" in pong.stdout, pong.output()
    assert re.search(r"^pong: gateway .* unknown_actor=1 unknown_type=1 bad_payload=2$",
                     pong.stdout, re.M), pong.output()


@pytest.mark.parametrize("case,type_,reason,rejected_by", [
    ("unknown-actor", "Quote", "Actor 'nobody' not found", "nobody"),
    ("unknown-type", "Bogus", "Unknown message type: Bogus", "research"),
    ("missing-field", "Quote", "Missing field 'ask' for Quote", "research"),
    ("mistyped-field", "Quote", "Field 'seq' for Quote must be int, got str", "research"),
])
def test_python_research_rejects_bad_cpp_messages_and_the_cpp_actor_gets_the_reject(
        procs, case, type_, reason, rejected_by):
    research, ep = python_example(procs, "research_actor.py", "research")
    probe, _ = stream(procs, ep, "--case", case, "--timeout", 20)
    assert probe.wait(30) == 0, probe.output()
    assert (f"stream: reject message_type={type_} reason={reason} rejected_by={rejected_by}"
            in probe.lines), probe.output()
    # the Python side survived it: a normal stream still gets every answer
    market, _ = stream(procs, ep, "--count", 100, "--replies", "--stats-ms", 0, "--timeout", 30)
    assert market.wait(40) == 0, market.output()
    assert last_stats(market, "done")["signals"] == 100
    assert research.stop() == 0, research.output()
    assert "research: answered 100 quotes" in research.stdout, research.output()


def test_python_ping_to_a_wrong_cpp_actor_name_is_rejected(procs):
    pong, ep = cpp_pong(procs)
    ping = procs.start("ping.py", [PY, PY_EXAMPLES / "ping.py", "--peer", ep, "--peer-name",
                                   "nobody", "--count", 5, "--timeout", 20], env=py_env())
    assert ping.wait(40) == 4, ping.output()
    assert "rejected by 'nobody': Actor 'nobody' not found" in ping.stderr, ping.output()
    assert pong.stop() == 0, pong.output()


def test_cpp_ping_to_a_wrong_python_actor_name_fails_with_the_reject(procs):
    pong, ep = python_example(procs, "pong.py", "pong")
    ping = procs.start("gateway_ping", [require(cpp_example("gateway_ping")), "--peer", ep,
                                        "--peer-name", "nobody", "--count", 5])
    assert ping.wait(60) == 4, ping.output()
    assert "ping: rejected by 'nobody': Actor 'nobody' not found" in ping.stderr, ping.output()
    assert pong.stop() == 0, pong.output()
    assert "rejects_sent=1" in pong.stdout, pong.output()


# ---- scripts/example ----------------------------------------------------------------------

@pytest.mark.parametrize("name,args", [
    ("cpp-ping-python-pong", ["--count", "200"]),
    ("python-ping-cpp-pong", ["--count", "200"]),
    ("market-data", []),
    ("market-topic", ["--quotes", "4000"]),
    ("shm", ["--seconds", "1"]),
    pytest.param("notebook", ["--quotes", "400"], marks=pytest.mark.skipif(
        not __import__("importlib").util.find_spec("pandas"), reason="needs python3-pandas")),
])
def test_scripts_example_runs_each_pair_and_leaves_nothing_behind(procs, name, args):
    p = procs.start(name, [ROOT / "scripts" / "example", name, *args],
                    env=dict(py_env(), TERN_BUILD=str(BUILD)))
    rc = p.wait(120)
    assert rc == 0, p.output()
    assert re.search(rf"^example {name}: ok", p.stdout, re.M), p.output()
    # the script's own cleanup ran: nothing of its session is left (checked again by procs)
    out = subprocess.run(["ps", "-o", "pid=", "-s", str(p.pid)], capture_output=True, text=True)
    assert out.stdout.strip() == "", out.stdout
