"""The registry under CURVE with real processes on loopback: scripts/registry --key-file
--allow-dir, a C++ process (registry_peer, RegistryClient with the gateway's own key pair)
and a Python one (registry_py_peer.py, Manager(curve=..., registry_server_key=...)).

- C++ and Python register and look each other up by name through the CURVE registry, with
  no peer key passed: the refs use the keys they registered; Ping/Pong both ways.
- A client whose key is not on the registry's allow-list gets nothing through (C++ and
  Python peers fail to register within their timeout; --stats with that key fails), counted
  as auth_denied.
- A plain-TCP client gets no answer from the CURVE registry (bounded wait), counted as
  handshakes_failed.
"""
import re

from tern import security
from xlang import PY, ROOT, procs, py_env  # noqa: F401
from test_registry_processes import PY_PEER, Req, cpp_peer_path, free_port


def make_keys(tmp_path):
    keys = tmp_path / "keys"
    allow = tmp_path / "allow"
    keys.mkdir()
    allow.mkdir()
    for name in ("registry", "cpp", "py", "stranger"):
        pub, _ = security.create_key_pair(keys, name)
        if name in ("cpp", "py"):
            (allow / f"{name}.key").write_text(open(pub).read())
    return keys, allow


def registry_stats(procs, ep, keys, who, timeout=5):
    """scripts/registry --stats over CURVE with key pair `who`: (exit status, {counter: n},
    output)."""
    s = procs.start(f"stats as {who}", [
        ROOT / "scripts" / "registry", "--stats", "--endpoint", ep, "--timeout", timeout,
        "--server-key", keys / "registry.key", "--key-file", keys / f"{who}.key_secret"],
        env=py_env())
    rc = s.wait(30)
    out = {}
    for line in s.lines:
        m = re.match(r"^(\S+)\t(\d+)$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return rc, out, s.output()


def test_cpp_and_python_find_each_other_through_a_curve_registry_and_strangers_get_nothing(procs, tmp_path):
    keys, allow = make_keys(tmp_path)
    registry, port = procs.start_listener(
        "registry", lambda port: [ROOT / "scripts" / "registry", "--endpoint",
                                  f"tcp://127.0.0.1:{port}", "--key-file",
                                  keys / "registry.key_secret", "--allow-dir", allow],
        env=py_env(), ready=r"^registry: listening on ")
    ep = f"tcp://127.0.0.1:{port}"
    registry.wait_line(r"^registry: CURVE on, public key " +
                       re.escape(security.load_public_key(keys / "registry.key")) + "$")

    def curve_args(who):
        return ["--curve-key", keys / f"{who}.key_secret", "--allow-dir", allow,
                "--registry-key", keys / "registry.key"]

    cpp = procs.start("cpp", [cpp_peer_path(), "--registry", ep, "--name", "cpp-pong",
                              "--lookup", "py-pong", "--count", "5", *curve_args("cpp")])
    py = procs.start("py", [PY, PY_PEER, "--registry", ep, "--endpoint",
                            f"tcp://127.0.0.1:{free_port()}", "--name", "py-pong",
                            "--lookup", "cpp-pong", "--count", "5", *curve_args("py")],
                     env=py_env())
    cpp.wait_line(r"^registry_peer: registered cpp-pong at tcp://\S+ as \S+")
    py.wait_line(r"^registry_py_peer: registered py-pong at tcp://127\.0\.0\.1:\d+ as \S+")
    cpp.wait_line(r"^registry_peer: found py-pong at tcp://127\.0\.0\.1:\d+$")
    py.wait_line(r"^registry_py_peer: found cpp-pong at tcp://")
    # Pongs came back over CURVE gateways whose keys were never passed: from the registry
    cpp.wait_line(r"^registry_peer: pongs 5 from py-pong$")
    py.wait_line(r"^registry_py_peer: pongs 5 from cpp-pong$")

    # unknown client keys: a C++ and a Python peer, and the --stats tool, get nothing through
    stranger_cpp = procs.start("cpp stranger", [
        cpp_peer_path(), "--registry", ep, "--name", "evil-cpp", "--timeout-ms", "1000",
        "--curve-key", keys / "stranger.key_secret", "--allow-dir", allow,
        "--registry-key", keys / "registry.key"])
    assert stranger_cpp.wait(30) == 1, stranger_cpp.output()
    assert "did not answer RegisterActor within 1000 ms" in stranger_cpp.output()
    stranger_py = procs.start("py stranger", [
        PY, PY_PEER, "--registry", ep, "--endpoint", f"tcp://127.0.0.1:{free_port()}",
        "--name", "evil-py", "--timeout", "1", "--curve-key", keys / "stranger.key_secret",
        "--allow-dir", allow, "--registry-key", keys / "registry.key"], env=py_env())
    assert stranger_py.wait(30) == 1, stranger_py.output()
    assert "did not answer RegisterActor within 1s" in stranger_py.output()
    rc, _, out = registry_stats(procs, ep, keys, "stranger", timeout=1)
    assert rc == 1 and "did not answer RegistryStats" in out, out

    # a plain-TCP client: no answer within a bounded wait
    plain = Req(ep)
    try:
        assert plain.raw(b'{"message_type": "LookupActor", "actor_name": "cpp-pong"}',
                         timeout=1.0) is None
    finally:
        plain.close()

    rc, stats, out = registry_stats(procs, ep, keys, "cpp")
    assert rc == 0, out
    assert stats["auth_denied"] >= 3, out          # the three strangers
    assert stats["handshakes_failed"] >= 1, out    # the plain client
    assert stats["names"] == 3, out                # cpp-pong, py-pong, py-pinger, nothing else
    listing = procs.start("list", [ROOT / "scripts" / "registry", "--list", "--endpoint", ep,
                                   "--server-key", keys / "registry.key",
                                   "--key-file", keys / "py.key_secret"], env=py_env())
    assert listing.wait(30) == 0, listing.output()
    names = {line.split("\t")[0] for line in listing.lines if "\t" in line}
    assert names == {"cpp-pong", "py-pong", "py-pinger"}, listing.output()

    assert cpp.stop() == 0, cpp.output()
    assert py.stop() == 0, py.output()
    assert registry.stop() == 0, registry.output()
    stopped = registry.wait_line(r"^registry: stopped (.*)$").group(1)
    assert "'names': 0" in stopped, stopped  # both unregistered over CURVE at exit
