"""Helpers for the cross-language tests: where the programs are, free loopback ports, and
processes that are always killed and reaped.

Every process is started with subprocess.Popen in a session (and so a process group) of
its own; the `procs` fixture kills each group with SIGKILL and waits for it in teardown,
whatever the test did, then checks that no child of this process and no member of those
groups is left.
"""
import atexit
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))
PY = sys.executable  # scripts/test runs pytest with Debian's /usr/bin/python3 (pyzmq)
PY_EXAMPLES = ROOT / "python" / "examples"


def cpp_example(name):
    return BUILD / "examples" / name


def stream_peer():
    """tests/integration/stream_peer.cpp, built by tests/meson.build into tests/."""
    for p in (BUILD / "tests" / "stream_peer", BUILD / "tests" / "integration" / "stream_peer"):
        if p.is_file():
            return p
    return BUILD / "tests" / "stream_peer"


def require(path):
    """The built program at `path`; fails (not skips) when the build does not have it."""
    if not path.is_file():
        pytest.fail(f"{path} is not built (TERN_BUILD={BUILD})")
    return str(path)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def py_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _proc_ids():
    """(pid, ppid, pgid) of every live process."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] in ("Z", "X"):
            continue
        out.append((int(d), int(fields[1]), int(fields[2])))
    return out


def rss_kib(pid):
    """VmRSS of `pid` in KiB, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# Every Proc not yet reaped. If pytest itself is killed (scripts/test's `timeout` sends
# SIGTERM) fixture teardown never runs, and the children, each in a session of its own,
# would not get the signal: the handler below kills their groups first.
_live = set()


def _kill_live_groups():
    for p in list(_live):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _on_sigterm(signum, frame):
    _kill_live_groups()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
    signal.signal(signal.SIGTERM, _on_sigterm)
atexit.register(_kill_live_groups)


class Proc:
    """A child process in its own session; its output is collected line by line."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env,
                                      start_new_session=True)
        self.pid = self.popen.pid
        _live.add(self)
        self.lines = []   # stdout
        self.last_index = -1
        self.errors = []  # stderr
        self._cv = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(s, l), daemon=True)
                         for s, l in ((self.popen.stdout, self.lines),
                                      (self.popen.stderr, self.errors))]
        for t in self._readers:
            t.start()

    def _read(self, stream, into):
        for line in stream:
            with self._cv:
                into.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    @property
    def stdout(self):
        with self._cv:
            return "\n".join(self.lines)

    @property
    def stderr(self):
        with self._cv:
            return "\n".join(self.errors)

    def output(self):
        return f"[{self.name} stdout]\n{self.stdout}\n[{self.name} stderr]\n{self.stderr}"

    def alive(self):
        return self.popen.poll() is None

    def wait_line(self, pattern, timeout=20.0, start=0):
        """The first stdout line from index `start` matching regex `pattern` (re.Match);
        its index is left in self.last_index."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        self.last_index = i
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and all(
                        not t.is_alive() for t in self._readers)):
                    break
                self._cv.wait(min(left, 0.1))
        raise AssertionError(f"{self.name}: no line matching {pattern!r} within "
                             f"{timeout:g}s (exit {self.popen.poll()})\n{self.output()}")

    def wait(self, timeout):
        """Exit status; on timeout the process group is killed and the test fails."""
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} still running after {timeout:g}s\n{self.output()}")
        _live.discard(self)
        for t in self._readers:
            t.join(5)
        return rc

    def stop(self, timeout=15.0):
        """SIGTERM, then its exit status (a clean shutdown is the caller's to check)."""
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        """SIGKILL to the whole process group, then reap."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=10)
            _live.discard(self)
        except subprocess.TimeoutExpired:
            pass
        for t in self._readers:
            t.join(5)


class Procs:
    """What the `procs` fixture hands a test: start processes, all cleaned up after it."""

    def __init__(self):
        self.started = []

    def start(self, name, argv, env=None):
        p = Proc(name, argv, env=env)
        self.started.append(p)
        return p

    def start_listener(self, name, make_argv, env=None, ready=None, timeout=20.0):
        """Starts a server on a free loopback port (make_argv(port) -> argv), retrying with
        another port if it exits before listening (the port was taken meanwhile). Ready
        when the port accepts TCP connections and, if given, a stdout line matches `ready`.
        Returns (proc, port)."""
        last = None
        for _ in range(3):
            port = free_port()
            p = self.start(name, make_argv(port), env=env)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and p.alive() and not port_open(port):
                time.sleep(0.02)
            if p.alive() and port_open(port):
                if ready:
                    p.wait_line(ready, timeout=max(1.0, deadline - time.monotonic()))
                return p, port
            p.kill()
            last = p
        raise AssertionError(f"{name} did not start listening\n{last.output()}")

    def cleanup(self):
        for p in self.started:
            p.kill()
        pgids = {p.pid for p in self.started}
        me = os.getpid()
        deadline = time.monotonic() + 5
        while True:
            left = [(pid, ppid, pgid) for pid, ppid, pgid in _proc_ids()
                    if pid != me and (ppid == me or pgid in pgids)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not left, f"processes left behind (pid, ppid, pgid): {left}"


@pytest.fixture
def procs():
    p = Procs()
    try:
        yield p
    finally:
        p.cleanup()


def stats_line(proc, what="stats", start=0, timeout=20.0):
    """The next `stream: WHAT k=v ...` line of a stream_peer, as a dict of ints."""
    m = proc.wait_line(rf"^stream: {what} (.*)$", timeout=timeout, start=start)
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def last_stats(proc, what="stats"):
    for line in reversed(proc.lines):
        if line.startswith(f"stream: {what} "):
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[2:])}
    raise AssertionError(f"no 'stream: {what}' line\n{proc.output()}")


def envelope(sender, endpoint, receiver, type_, payload):
    """A JSON envelope in the Python peer's key order."""
    return json.dumps({"sender_actor": sender, "sender_endpoint": endpoint, "receiver": receiver,
                       "message_type": type_, "message": payload}).encode()
