"""CURVE between C++ and Python processes: key files from scripts/keygen, 10,000 secured round
trips each way, and clients with an unknown key or without CURVE getting nothing through,
counted by the server (docs/gateway.md and docs/python.md, "Security").
"""
import os
import re
import stat
import subprocess

import pytest

from xlang import PY, PY_EXAMPLES, ROOT, cpp_example, free_port, procs, py_env, require  # noqa: F401

N = 10_000
KEYGEN = ROOT / "scripts" / "keygen"


def keygen(name, d):
    r = subprocess.run([str(KEYGEN), name, "--dir", str(d)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return d / f"{name}.key", d / f"{name}.key_secret"


@pytest.fixture
def pki(tmp_path):
    """Key pairs for ping, pong and a stranger; allow-ping holds pong's certificate (for the
    Pongs), allow-pong holds ping's (for the Pings); nobody lets the stranger in."""
    keys = tmp_path / "keys"
    for name in ("ping", "pong", "stranger"):
        keygen(name, keys)
    for me, other in (("ping", "pong"), ("pong", "ping")):
        d = tmp_path / f"allow-{me}"
        d.mkdir()
        (d / f"{other}.key").write_bytes((keys / f"{other}.key").read_bytes())
    return tmp_path


def server_args(pki, name):
    return ["--curve-key", pki / "keys" / f"{name}.key_secret", "--curve-allow", pki / f"allow-{name}"]


def client_args(pki, name, peer="pong"):
    return [*server_args(pki, name), "--curve-peer", pki / "keys" / f"{peer}.key"]


def start_pong(procs, name, argv):
    """Starts a pong on a free port, ready when it prints "listening on". Not through
    procs.start_listener: its probe connections close before any handshake, and the server
    counts each of those in handshakes_failed, which these tests check exactly."""
    for _ in range(3):
        port = free_port()
        p = procs.start(name, [*argv, "--endpoint", f"tcp://127.0.0.1:{port}"], env=py_env())
        try:
            p.wait_line(r"^pong: listening on ", timeout=20)
            return p, f"tcp://127.0.0.1:{port}"
        except AssertionError:
            if p.alive():
                raise
    raise AssertionError(f"{name} did not start\n{p.output()}")


def cpp_pong(procs, pki):
    return start_pong(procs, "gateway_pong",
                      [require(cpp_example("gateway_pong")), *server_args(pki, "pong")])


def python_pong(procs, pki):
    return start_pong(procs, "pong.py", [PY, PY_EXAMPLES / "pong.py", *server_args(pki, "pong")])


def summary(pong):
    m = re.search(r"^pong: answered (\d+) pings; rejects_sent=(\d+) dropped=(\d+)", pong.stdout, re.M)
    c = re.search(r"auth_denied=(\d+) handshakes_failed=(\d+)", pong.stdout)
    assert m and c, pong.output()
    return {"answered": int(m.group(1)), "dropped": int(m.group(3)),
            "auth_denied": int(c.group(1)), "handshakes_failed": int(c.group(2))}


def test_keygen_writes_a_pair_both_languages_read_and_refuses_to_overwrite(tmp_path):
    pub, sec = keygen("node", tmp_path / "new")
    assert stat.S_IMODE(os.stat(sec).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pub).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700
    r = subprocess.run([str(KEYGEN), "node", "--dir", str(tmp_path / "new")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "node.key': cannot create: File exists" in r.stderr, r.stderr
    r = subprocess.run([str(KEYGEN), "a/b"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "must be non-empty, without '/'" in r.stderr, r.stderr
    # the C++ gateway loads what keygen wrote (gateway_pong fails set-up otherwise)
    exe = require(cpp_example("gateway_pong"))
    bad = subprocess.run([exe, "--endpoint", "tcp://127.0.0.1:0", "--curve-key", str(pub),
                          "--curve-allow", str(tmp_path / "new")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and f"key file '{pub}': no secret-key" in bad.stderr, bad.stderr


def test_curve_cpp_ping_python_pong_10000_round_trips(procs, pki):
    pong, ep = python_pong(procs, pki)
    ping = procs.start("gateway_ping", [require(cpp_example("gateway_ping")), "--peer", ep,
                                        "--count", N, "--timeout", 90, *client_args(pki, "ping")])
    assert ping.wait(120) == 0, ping.output()
    assert re.search(rf"^ping: count={N} p50_us=", ping.stdout, re.M), ping.output()
    assert pong.stop() == 0, pong.output()
    assert summary(pong) == {"answered": N, "dropped": 0, "auth_denied": 0,
                             "handshakes_failed": 0}, pong.output()


def test_curve_python_ping_cpp_pong_10000_round_trips(procs, pki):
    pong, ep = cpp_pong(procs, pki)
    ping = procs.start("ping.py", [PY, PY_EXAMPLES / "ping.py", "--peer", ep, "--count", N,
                                   "--timeout", 90, *client_args(pki, "ping")], env=py_env())
    assert ping.wait(120) == 0, ping.output()
    assert re.search(rf"^ping: count={N} p50_us=", ping.stdout, re.M), ping.output()
    assert pong.stop() == 0, pong.output()
    assert summary(pong) == {"answered": N, "dropped": 0, "auth_denied": 0,
                             "handshakes_failed": 0}, pong.output()


@pytest.mark.parametrize("server", ["cpp", "python"])
def test_unknown_keys_and_plain_clients_get_nothing_through_and_are_counted(procs, pki, server):
    pong, ep = (cpp_pong if server == "cpp" else python_pong)(procs, pki)
    stranger = ["--curve-key", pki / "keys" / "stranger.key_secret",
                "--curve-allow", pki / "allow-ping", "--curve-peer", pki / "keys" / "pong.key"]
    clients = [
        ("C++ unknown key", [require(cpp_example("gateway_ping")), *stranger]),
        ("Python unknown key", [PY, PY_EXAMPLES / "ping.py", *stranger]),
        ("C++ plain", [require(cpp_example("gateway_ping"))]),
        ("Python plain", [PY, PY_EXAMPLES / "ping.py"]),
    ]
    for what, argv in clients:
        ping = procs.start(what, [*argv, "--peer", ep, "--count", 1, "--timeout", 2],
                           env=py_env())
        assert ping.wait(60) == 2, f"{what}: expected a timeout (2)\n{ping.output()}"
        assert "0/1 pongs" in ping.stderr, ping.output()
    # a known client still gets through afterwards (the test can fail)
    ok = procs.start("ping.py", [PY, PY_EXAMPLES / "ping.py", "--peer", ep, "--count", 10,
                                 "--timeout", 30, *client_args(pki, "ping")], env=py_env())
    assert ok.wait(60) == 0, ok.output()
    assert pong.stop() == 0, pong.output()
    s = summary(pong)
    assert s["answered"] == 10 and s["dropped"] == 0, pong.output()
    # each refused client retries (libzmq reconnects) until it gives up: at least one each
    assert s["auth_denied"] >= 2, pong.output()
    assert s["handshakes_failed"] >= 2, pong.output()
