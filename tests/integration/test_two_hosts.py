"""Two hosts: the gateway across a real network link, not loopback.

Two network namespaces ("hosts") joined by a veth pair, each end with its own address in a
private 10.x/24 made up per run. Both ends are created inside the namespaces, so nothing is
added to the host's own network and no traffic leaves the pair. The C++ examples/gateway_pong
runs in host A; pings run in host B through `ip netns exec`: examples/gateway_ping (C++) and
python/examples/ping.py's actor (tests/integration/two_hosts_ping.py). Checked: the
ping-pong count, a Reject across the link ("Actor 'nobody' not found"), and why a sender
bound to all interfaces must advertise its real address (GatewayConfig::advertise,
tern.Manager(advertise=...)): the protocol rewrites a `*` host to localhost, which on
another host is the wrong machine.

Needs root (ip netns, veth) and iproute2; skips saying which is missing. The namespaces are
deleted in teardown whatever happened, after the processes started in them are killed.
"""
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))
PY = sys.executable
PONG = BUILD / "examples" / "gateway_pong"
PING = BUILD / "examples" / "gateway_ping"
PY_PING = pathlib.Path(__file__).with_name("two_hosts_ping.py")
PORT = 5001  # each host has its own ports: fixed numbers cannot clash with anything


def _run(*cmd, timeout=10, check=True):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, check=check)


def _why_not():
    """Why this machine cannot run the test, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return ("not root: creating network namespaces and a veth pair (ip netns add, ip link "
                "add) needs CAP_SYS_ADMIN and CAP_NET_ADMIN; run the suite as root")
    if shutil.which("ip") is None:
        return "the `ip` command is missing (Debian package iproute2)"
    if not PONG.is_file() or not PING.is_file():
        return f"examples/gateway_pong and gateway_ping are not built in {BUILD}"
    return None


class Host:
    """One network namespace with one end of the veth pair."""

    def __init__(self, ns, ifname, address):
        self.ns = ns
        self.ifname = ifname
        self.address = address

    def endpoint(self, port):
        return f"tcp://{self.address}:{port}"

    def cmd(self, *argv):
        return ["ip", "netns", "exec", self.ns, *[str(a) for a in argv]]


class Proc:
    """A process started in a host, its output read by a thread (so pipes never fill)."""

    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env, start_new_session=True)
        self.lines = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.p.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()

    def output(self):
        with self._cv:
            return "\n".join(self.lines)

    def wait_line(self, pattern, timeout=10):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self._cv:
            while True:
                for line in self.lines:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s; "
                                         f"output:\n{chr(10).join(self.lines)}")
                self._cv.wait(min(left, 0.1))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the process (its own session's group) and waits; SIGKILL if it lingers."""
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=10)
        self._reader.join(timeout=5)
        return self.p.returncode


@pytest.fixture(scope="module")
def hosts():
    """(A, B): two namespaces, veth A <-> B, 10.x.y.1/24 in A and 10.x.y.2/24 in B."""
    why = _why_not()
    if why:
        pytest.skip(why)
    tag = uuid.uuid4().hex[:8]
    a = Host(f"tern-{tag}-a", "tern-a", f"10.{random.randint(64, 254)}.{random.randint(0, 255)}.1")
    b = Host(f"tern-{tag}-b", "tern-b", a.address.rsplit(".", 1)[0] + ".2")
    created = []
    try:
        for h in (a, b):
            r = _run("ip", "netns", "add", h.ns, check=False)
            if r.returncode != 0:
                pytest.skip(f"ip netns add failed: {r.stderr.strip()}")
            created.append(h.ns)
        # Both ends are born inside the namespaces: the host's own network never sees them.
        _run("ip", "link", "add", a.ifname, "netns", a.ns, "type", "veth",
             "peer", "name", b.ifname, "netns", b.ns)
        for h in (a, b):
            _run("ip", "-n", h.ns, "addr", "add", f"{h.address}/24", "dev", h.ifname)
            _run("ip", "-n", h.ns, "link", "set", h.ifname, "up")
            _run("ip", "-n", h.ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        for ns in created:
            # Anything still running in our namespaces was started by this module.
            pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", ns, check=False)
        left = _run("ip", "netns", "list", check=False).stdout
        assert not any(ns in left for ns in created), f"namespaces left behind:\n{left}"


@pytest.fixture
def pong(hosts):
    """examples/gateway_pong in host A, bound to all its interfaces."""
    a, _ = hosts
    proc = Proc(a.cmd(PONG, "--endpoint", f"tcp://*:{PORT}", "--name", "pong"))
    try:
        proc.wait_line(r"^pong: listening on ")
        yield proc
    finally:
        proc.stop()


def pong_summary(proc):
    """Stops the pong; returns (answered, rejects_sent, dropped) from its last lines."""
    assert proc.stop() == 0, proc.output()
    m = re.search(r"answered (\d+) pings; rejects_sent=(\d+) dropped=(\d+)", proc.output())
    assert m, proc.output()
    return tuple(int(x) for x in m.groups())


def run_in(host, *argv, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    return subprocess.run(host.cmd(*argv), capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_the_two_hosts_reach_each_other_only_through_the_link(hosts):
    a, b = hosts
    routes_b = _run("ip", "-n", b.ns, "route").stdout
    assert routes_b.strip() == f"{a.address.rsplit('.', 1)[0]}.0/24 dev {b.ifname} proto kernel " \
                               f"scope link src {b.address}", routes_b
    assert a.address not in _run("ip", "addr").stdout  # nothing on the host itself


def test_cpp_ping_pong_across_hosts(hosts, pong):
    a, b = hosts
    # Bound to its own address: that is also what it advertises as sender_endpoint.
    r = run_in(b, PING, "--peer", a.endpoint(PORT), "--endpoint", b.endpoint(5002),
               "--count", "500", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^ping: count=500 ", r.stdout, re.M), r.stdout
    assert pong_summary(pong) == (500, 0, 0)


def test_python_ping_bound_to_all_interfaces_advertises_its_address(hosts, pong):
    a, b = hosts
    r = run_in(b, PY, PY_PING, "--peer", a.endpoint(PORT), "--bind", "tcp://*:5003",
               "--advertise", b.endpoint(5003), "--count", "200", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ping: count=200 advertised={b.endpoint(5003)}" in r.stdout
    assert pong_summary(pong) == (200, 0, 0)


def test_cpp_ping_bound_to_all_interfaces_advertises_its_address(hosts, pong):
    a, b = hosts
    usage = _run(PING, "--help", check=False).stdout
    if "--advertise" not in usage:
        pytest.skip("examples/gateway_ping has no --advertise option (GatewayConfig::advertise)")
    r = run_in(b, PING, "--peer", a.endpoint(PORT), "--endpoint", "tcp://*:5004",
               "--advertise", b.endpoint(5004), "--count", "200", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    assert pong_summary(pong) == (200, 0, 0)


def test_without_advertise_a_wildcard_bind_is_answered_on_the_wrong_host(hosts, pong):
    a, b = hosts
    # tcp://*:5005 is advertised as tcp://localhost:5005: host A answers itself.
    r = run_in(b, PY, PY_PING, "--peer", a.endpoint(PORT), "--bind", "tcp://*:5005",
               "--count", "1", "--timeout", "3")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "advertised tcp://localhost:5005" in r.stderr
    answered, rejects, dropped = pong_summary(pong)
    assert (answered, rejects) == (1, 0)  # the Ping arrived; its Pong went to A's localhost


def test_a_reject_crosses_the_link_back_to_the_sender(hosts, pong):
    a, b = hosts
    r = run_in(b, PING, "--peer", a.endpoint(PORT), "--peer-name", "nobody",
               "--endpoint", b.endpoint(5006), "--count", "1", "--timeout", "20")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "rejected by 'nobody': Actor 'nobody' not found" in r.stderr
    r = run_in(b, PY, PY_PING, "--peer", a.endpoint(PORT), "--peer-name", "nobody",
               "--bind", "tcp://*:5007", "--advertise", b.endpoint(5007), "--timeout", "20")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "rejected by 'nobody': Actor 'nobody' not found" in r.stderr
    assert pong_summary(pong) == (0, 2, 2)  # two unknown_actor drops, both answered
