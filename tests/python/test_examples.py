"""The example programs, run as separate processes the way a cross-language test would."""

import os
import re
import signal
import subprocess
import sys
import threading

import pytest

import tern
from conftest import PYDIR, WAIT, free_port

EXAMPLES = os.path.join(PYDIR, "examples")
sys.path.insert(0, EXAMPLES)

from research_actor import Quote, Signal, signal_for  # noqa: E402


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PYDIR + os.pathsep + e.get("PYTHONPATH", "")
    return e


def spawn_server(script, *args):
    """Start a listening example on a free port; returns (process, port)."""
    for _ in range(10):
        port = free_port()
        proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, script),
                                 "--endpoint", f"tcp://*:{port}", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env())
        line = _readline(proc, WAIT)
        if "listening on" in line:
            return proc, port
        proc.kill()
        proc.communicate(timeout=WAIT)
    raise RuntimeError(f"{script} did not start: {line!r}")


def _readline(proc, timeout):
    out = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ""


def run_ping(port, *args, timeout=30):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, "ping.py"),
                           "--peer", f"tcp://localhost:{port}", *args],
                          capture_output=True, text=True, env=env(), timeout=timeout)


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"process ignored SIGTERM: {err}")
    return proc.returncode, out, err


def test_python_ping_against_python_pong_processes():
    pong, port = spawn_server("pong.py", "--name", "pong")
    try:
        res = run_ping(port, "--count", "500", "--timeout", "20")
        assert res.returncode == 0, res.stderr
        m = re.search(r"count=(\d+) p50_us=([\d.]+) .* msgs_per_s=(\d+)", res.stdout)
        assert m and int(m.group(1)) == 500 and float(m.group(2)) > 0
    finally:
        rc, out, err = stop(pong)
    assert rc == 0, err
    assert "answered 500 pings" in out


def test_pong_exits_after_max_pings():
    pong, port = spawn_server("pong.py", "--max", "20")
    res = run_ping(port, "--count", "20", "--timeout", "20")
    assert res.returncode == 0, res.stderr
    out, _ = pong.communicate(timeout=WAIT)
    assert pong.returncode == 0
    assert "answered 20 pings" in out


def test_ping_times_out_with_nonzero_status_and_a_message():
    port = free_port()  # nobody listens there
    res = run_ping(port, "--count", "3", "--timeout", "0.5")
    assert res.returncode == 2
    assert "timeout after 0.5s: 0/3 pongs" in res.stderr


def test_ping_reports_a_reject_from_a_wrong_peer_name():
    pong, port = spawn_server("pong.py")
    try:
        res = run_ping(port, "--peer-name", "nobody", "--count", "3", "--timeout", "20")
        assert res.returncode == 4
        assert "Actor 'nobody' not found" in res.stderr
    finally:
        stop(pong)


def test_research_actor_answers_quotes_with_signals(start_manager):
    research, port = spawn_server("research_actor.py", "--name", "research")
    try:
        got = []
        cond = threading.Condition()

        class Trader(tern.Actor):
            def on_start(self, msg, sender):
                ref = self.manager.remote("research", f"tcp://localhost:{port}")
                for seq, (bid, ask) in enumerate([(100, 101), (101, 102), (100.5, 101.5),
                                                  (100.5, 101.5)]):
                    ref.send(Quote("ES", bid, ask, seq), self.self_ref)

            def on_signal(self, msg, sender):
                with cond:
                    got.append((msg, sender))
                    cond.notify_all()

        start_manager(lambda m: m.manage("trader", Trader()))
        with cond:
            assert cond.wait_for(lambda: len(got) == 4, WAIT)
        assert [m for m, _ in got] == [Signal("ES", 0, 0.0, 0), Signal("ES", 1, 1.0, 1),
                                       Signal("ES", -1, 0.5, 2), Signal("ES", 0, 0.0, 3)]
        sender = got[0][1]
        assert (sender.name, sender.endpoint) == ("research", f"tcp://localhost:{port}")
    finally:
        rc, out, _ = stop(research, signal.SIGINT)
    assert rc == 0 and "answered 4 quotes" in out


def test_signal_model_edge_cases():
    assert signal_for(Quote("X", 2.0, 1.0, 1), 1.0) == Signal("X", 0, 0.0, 1)  # crossed
    assert signal_for(Quote("X", 1.0, 1.0, 1), 0.5) == Signal("X", 1, 1.0, 1)  # locked
    assert signal_for(Quote("X", 1.0, 3.0, 1), 2.0) == Signal("X", 0, 0.0, 1)  # unchanged
