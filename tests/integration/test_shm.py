"""Shared memory between real processes (tern/shm.hpp, issue 11 "Acceptance").

tests/integration/shm_peer.cpp is the program on both sides (roles sink, source, echo,
client; shm_peer_v2 has a Tick of another layout). Every Tick carries its sender's stream id,
a sequence number and a checksum of its payload; a receiver counts gaps, duplicates and torn
messages per stream and prints `ROLE: stats k=v ...` lines, which these tests read.

Each test uses a directory of its own under /dev/shm, so runs of several builds never share
a segment. Every wait is bounded; the `procs` fixture (xlang.py) kills and reaps every
process, also when a test fails. No timing is asserted except generous bounds (5 s) on how
soon a fault is noticed.

Sanitizer builds: scripts/test runs this file again with TERN_SHM_PEER_BUILD pointing at
build-asan / build-tsan (and TERN_TEST_SCALE dividing the counts): the round trip and the
kill/restart cases then run those builds' shm_peer; the other cases are skipped there.
"""
import itertools
import mmap
import os
import pathlib
import re
import shutil
import signal
import struct
import time

import pytest

from xlang import BUILD, procs, require  # noqa: F401

PEER_BUILD = pathlib.Path(os.environ.get("TERN_SHM_PEER_BUILD", BUILD))
SANITIZER_RUN = "TERN_SHM_PEER_BUILD" in os.environ
SCALE = max(1, int(os.environ.get("TERN_TEST_SCALE", "1")))
NOTICE_S = 5.0  # a fault must be noticed within this (the monitor checks every 1 ms)


def peer(v2=False):
    return require(PEER_BUILD / "tests" / ("shm_peer_v2" if v2 else "shm_peer"))


def release_only():
    if SANITIZER_RUN:
        pytest.skip("runs against the release build only")


_dirs = itertools.count()


@pytest.fixture
def shmdir():
    d = pathlib.Path(f"/dev/shm/tern-pytest-{os.getpid()}-{next(_dirs)}")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    try:
        yield str(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def kv(line):
    """`ROLE: what k=v k=v` -> {k: int}."""
    return {k: int(v) for k, v in (p.split("=", 1) for p in line.split()[2:]) if v.isdigit()}


def start(procs, role, name, *args, d, v2=False, label=None):
    p = procs.start(label or f"{role}-{name}", [peer(v2), role, name, *args, "--dir", d])
    return p


def ready(p, role):
    """The exporting role's segment line, as a dict (path as a string)."""
    m = p.wait_line(rf"^{role}: segment (.*)$", timeout=30)
    out = {}
    for part in m.group(1).split():
        k, v = part.split("=", 1)
        out[k] = int(v) if v.isdigit() else v
    return out


def wait_stats(p, role, pred, timeout, start=0):
    """The first `ROLE: stats` line from index `start` on for which pred(dict) holds."""
    deadline = time.monotonic() + timeout
    i = start
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{p.name}: condition not reached within {timeout:g}s\n{p.output()}"
        m = p.wait_line(rf"^{role}: stats ", timeout=left, start=i)
        i = p.last_index + 1
        s = kv(m.string)
        if pred(s):
            return s


def done(p, role, timeout=30):
    """Stops `p` with SIGTERM (unless it ended), checks a clean exit, returns its done line."""
    rc = p.stop(timeout)
    assert rc == 0, f"{p.name} exited {rc}\n{p.output()}"
    return kv(p.wait_line(rf"^{role}: done ", timeout=5).string)


def no_sanitizer_report(*ps):
    for p in ps:
        assert "Sanitizer" not in p.stderr and "runtime error:" not in p.stderr, p.output()


def clean(s):
    assert s["gaps"] == 0 and s["dups"] == 0 and s["torn"] == 0, s


# ---- volume --------------------------------------------------------------------------------

def test_a_million_messages_each_way_arrive_exact_and_in_order(procs, shmdir):
    n = 1_000_000 // SCALE
    echo = start(procs, "echo", "e", "--stats-ms", 0, d=shmdir)
    ready(echo, "echo")
    # the client sends n Ticks to the echo, which answers each one with reply(): both
    # directions stream at once, at most --window unanswered
    client = start(procs, "client", "c", "e", "--count", n, "--stats-ms", 0, "--timeout", 300,
                   d=shmdir)
    assert client.wait(330) == 0, client.output()
    c = kv(client.wait_line(r"^client: done ").string)
    assert c["got"] == n and c["last_seq"] == n - 1 and c["streams"] == 1, c
    assert c["sent"] == n and c["closed"] == 0 and c["full"] == 0 and c["other"] == 0, c
    clean(c)
    e = done(echo, "echo")
    assert e["got"] == n and e["last_seq"] == n - 1 and e["streams"] == 1, e
    assert e["reply_failed"] == 0 and e["failed"] == 0, e
    clean(e)
    no_sanitizer_report(echo, client)


# ---- kill -9 of either side ----------------------------------------------------------------

def test_receiver_killed_mid_stream_sender_gets_closed_then_reconnects_by_itself(procs, shmdir):
    some = max(200, 2000 // SCALE)
    sink = start(procs, "sink", "k", d=shmdir, label="sink-1")
    ready(sink, "sink")
    source = start(procs, "source", "s", "k", "--rate", 20000, d=shmdir)
    source.wait_line(r"^source: connected ", timeout=30)
    wait_stats(sink, "sink", lambda s: s["got"] >= some, timeout=60)

    mark = len(source.lines)
    t_kill = time.monotonic()
    sink.kill()
    assert sink.popen.returncode == -9
    m = source.wait_line(r"^source: result seq=(\d+) result=closed ", timeout=NOTICE_S, start=mark)
    assert time.monotonic() - t_kill < NOTICE_S
    closed_at = int(m.group(1))
    # the sender stays alive while the receiver is away, its sends keep reporting closed
    away = wait_stats(source, "source", lambda s: s["closed"] >= 20, timeout=30,
                      start=source.last_index)
    assert source.alive(), source.output()
    assert away["seq"] == closed_at and away["links_lost"] >= 1, away

    # back under the same name: it reclaims the segment the kill left behind, and the
    # sender's node reconnects by itself
    sink2 = start(procs, "sink", "k", d=shmdir, label="sink-2")
    ready(sink2, "sink")
    m = source.wait_line(r"^source: result seq=(\d+) result=ok ", timeout=30, start=source.last_index)
    resumed_at = int(m.group(1))
    assert resumed_at == closed_at  # the refused Tick is sent again, nothing skipped
    wait_stats(sink2, "sink", lambda s: s["got"] >= some, timeout=60)
    src = done(source, "source")
    s2 = done(sink2, "sink")
    assert s2["reclaimed"] == 1, s2
    # strictly increasing from where the sender resumed, none torn, none twice, none lost
    # after the reconnect (the sender stopped cleanly before the sink did)
    assert s2["streams"] == 1 and s2["first_seq"] == resumed_at, s2
    assert s2["last_seq"] == src["seq"] - 1 and s2["got"] == src["seq"] - resumed_at, (s2, src)
    clean(s2)
    assert src["links_up"] >= 2 and src["ok_after_fail"] == 1, src
    no_sanitizer_report(source, sink2)


def test_a_send_waiting_on_a_stalled_receivers_full_ring_returns_closed_when_it_is_killed(procs, shmdir):
    sink = start(procs, "sink", "k", "--ring", 4096, d=shmdir)
    ready(sink, "sink")
    source = start(procs, "source", "s", "k", "--stats-ms", 50, d=shmdir)  # as fast as it can
    source.wait_line(r"^source: connected ", timeout=30)
    wait_stats(sink, "sink", lambda s: s["got"] >= 1000, timeout=60)
    os.kill(sink.pid, signal.SIGSTOP)
    # the receiver is alive but reads nothing: the ring (4 KiB) fills within moments and
    # send() waits in it (its loop prints nothing meanwhile); no result other than ok
    mark = len(source.lines)
    time.sleep(0.5)
    assert source.alive() and not any("result=" in l for l in source.lines[mark:]), source.output()
    t_kill = time.monotonic()
    sink.kill()
    m = source.wait_line(r"^source: result seq=(\d+) result=closed ", timeout=NOTICE_S, start=mark)
    assert time.monotonic() - t_kill < NOTICE_S
    src = done(source, "source")
    assert src["links_lost"] == 1 and src["seq"] == int(m.group(1)) and src["ok_after_fail"] == 0, src
    no_sanitizer_report(source)


def test_sender_killed_mid_stream_receiver_keeps_what_was_committed_and_frees_the_slot(procs, shmdir):
    some = max(200, 2000 // SCALE)
    # one connection slot: the restarted sender gets in only if the dead one's was freed
    sink = start(procs, "sink", "k", "--slots", 1, d=shmdir)
    ready(sink, "sink")
    source = start(procs, "source", "s", "k", "--rate", 20000, d=shmdir, label="source-1")
    source.wait_line(r"^source: connected ", timeout=30)
    wait_stats(sink, "sink", lambda s: s["got"] >= some, timeout=60)

    mark = len(sink.lines)
    t_kill = time.monotonic()
    source.kill()
    lost = wait_stats(sink, "sink", lambda s: s["peers_lost"] >= 1, timeout=NOTICE_S, start=mark)
    assert time.monotonic() - t_kill < NOTICE_S
    # what the dead sender committed was handled: no torn Tick, no gap before the last one
    # (settled: two stats lines in a row with the same count, the dead slot drained)
    settled = lost
    while True:
        prev = settled
        settled = wait_stats(sink, "sink", lambda s: True, timeout=10, start=sink.last_index + 1)
        if settled["got"] == prev["got"]:
            break
        assert time.monotonic() - t_kill < 30, (prev, settled)
    assert sink.alive(), sink.output()
    assert settled["got"] >= lost["got"], (lost, settled)
    assert settled["streams"] == 1 and settled["first_seq"] == 0, settled
    assert settled["last_seq"] == settled["got"] - 1, settled
    clean(settled)
    got_first = settled["got"]

    source2 = start(procs, "source", "s", "k", "--rate", 20000, d=shmdir, label="source-2")
    source2.wait_line(r"^source: connected ", timeout=30)
    wait_stats(sink, "sink", lambda s: s["streams"] == 2 and s["got"] >= got_first + some,
               timeout=60, start=sink.last_index)
    src2 = done(source2, "source")
    assert src2["reclaimed"] == 1 and src2["closed"] == 0, src2  # its old segment, left by the kill
    s = done(sink, "sink")
    assert s["streams"] == 2 and s["got"] == got_first + src2["seq"], (s, src2, got_first)
    # the killed sender, then the one that stopped (a peer's end is seen as its lock going)
    assert settled["peers_lost"] == 1 and s["peers_lost"] == 2 and s["failed"] == 0, (settled, s)
    clean(s)
    no_sanitizer_report(sink, source2)


# ---- refused connections -------------------------------------------------------------------

def test_a_fingerprint_mismatch_is_refused_naming_the_type_and_the_difference(procs, shmdir):
    release_only()
    sink = start(procs, "sink", "k", d=shmdir)
    ready(sink, "sink")
    v2 = start(procs, "source", "s2", "k", "--count", 10, "--connect-ms", 2000, d=shmdir, v2=True)
    assert v2.wait(30) == 1, v2.output()
    assert re.search(r"connect failed: .*actor 'sink' takes message id 9200 \(.*Tick\): "
                     r"size 72 here, 64 in the peer", v2.stderr), v2.output()

    sink_v2 = start(procs, "sink", "k2", d=shmdir, v2=True)
    ready(sink_v2, "sink")
    v1 = start(procs, "source", "s1", "k2", "--count", 10, "--connect-ms", 2000, d=shmdir)
    assert v1.wait(30) == 1, v1.output()
    assert re.search(r"Tick\): size 64 here, 72 in the peer", v1.stderr), v1.output()

    # the sink is unharmed and takes a matching peer
    ok = start(procs, "source", "s3", "k", "--count", 1000, d=shmdir)
    assert ok.wait(60) == 0, ok.output()
    s = done(sink, "sink")
    assert s["got"] == 1000 and s["streams"] == 1, s
    clean(s)
    assert done(sink_v2, "sink")["got"] == 0


def corrupt(path, offset, data):
    """Overwrites bytes of a live segment (as any process of the same user could); returns
    what was there."""
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        old = m[offset:offset + len(data)]
        m[offset:offset + len(data)] = data
    return old


def test_a_corrupted_segment_header_is_refused_naming_what_is_wrong(procs, shmdir):
    release_only()
    sink = start(procs, "sink", "k", d=shmdir)
    seg = ready(sink, "sink")
    for offset, data, says in [
            (0, struct.pack("<Q", 0x1234567812345678), "not a tern segment (magic)"),
            (8, struct.pack("<I", 2), "segment version 2, this build reads 1")]:
        old = corrupt(seg["path"], offset, data)
        bad = start(procs, "source", "s", "k", "--count", 10, "--connect-ms", 2000, d=shmdir,
                    label=f"source-{offset}")
        assert bad.wait(30) == 1, bad.output()
        assert f"tern.k refused: {says}" in bad.stderr, bad.output()
        corrupt(seg["path"], offset, old)
    ok = start(procs, "source", "s", "k", "--count", 1000, d=shmdir, label="source-ok")
    assert ok.wait(60) == 0, ok.output()
    s = done(sink, "sink")
    assert s["got"] == 1000, s
    clean(s)


def test_garbage_in_a_live_rings_fails_that_connection_only_and_the_reader_serves_another(procs, shmdir):
    release_only()
    sink = start(procs, "sink", "k", d=shmdir)
    seg = ready(sink, "sink")
    a = start(procs, "source", "a", "k", "--rate", 5000, d=shmdir, label="source-a")
    a.wait_line(r"^source: connected ", timeout=30)
    wait_stats(sink, "sink", lambda s: s["got"] >= 500, timeout=60)

    # find a's connection slot (export 0) and fill its normal-lane ring with garbage
    with open(seg["path"], "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        for slot in range(seg["slots"]):
            at = seg["slots_off"] + slot * seg["slot_bytes"] + seg["peer_node_off"]
            if m[at:at + 64].split(b"\0", 1)[0] == b"a":
                break
        else:
            raise AssertionError(f"no slot of peer 'a' in {seg}")
        ring = seg["data_off"] + slot * seg["slot_data"]
        m[ring:ring + seg["ring"]] = b"\xab" * seg["ring"]

    failed = wait_stats(sink, "sink", lambda s: s["failed"] == 1, timeout=NOTICE_S,
                        start=len(sink.lines))
    a.wait_line(r"^source: result seq=\d+ result=closed ", timeout=NOTICE_S)
    assert "failed: a commit word this format never writes" in sink.stderr, sink.output()
    assert sink.alive() and a.alive()
    clean(failed)
    # a's Ticks stop there; another peer is served as before
    before = wait_stats(sink, "sink", lambda s: True, timeout=10, start=sink.last_index + 1)
    b = start(procs, "source", "b", "k", "--count", 2000, d=shmdir, label="source-b")
    assert b.wait(60) == 0, b.output()
    src_a = done(a, "source")
    assert src_a["closed"] >= 1, src_a
    s = done(sink, "sink")
    assert s["got"] == before["got"] + 2000 and s["streams"] == 2 and s["failed"] == 1, (before, s)
    clean(s)


# ---- the example ---------------------------------------------------------------------------

def test_the_feed_and_strategy_examples_account_for_every_quote_and_order(procs, shmdir):
    release_only()
    from xlang import cpp_example
    strategy = procs.start("shm_strategy", [require(cpp_example("shm_strategy")), "--dir", shmdir])
    strategy.wait_line(r"^strategy: serving shm://strategy/strategy ", timeout=30)
    feed = procs.start("shm_feed", [require(cpp_example("shm_feed")), "--dir", shmdir,
                                    "--seconds", 1, "--interval-us", 200, "--grace-ms", 1000])
    assert feed.wait(60) == 0, feed.output()
    m = feed.wait_line(r"^feed: quotes sent (\d+) \(refused (\d+)\), orders received (\d+) ")
    sent, refused, orders = map(int, m.groups())
    assert sent + refused == 5000 and orders > 0, feed.output()
    m = feed.wait_line(r"^feed: quote -> order round trip \(us\): p50 [\d.]+ .* \((\d+) samples\)")
    assert int(m.group(1)) == orders, feed.output()
    assert strategy.stop() == 0, strategy.output()
    m = strategy.wait_line(r"^strategy: quotes received (\d+), orders sent (\d+) \(refused (\d+)\)")
    assert tuple(map(int, m.groups())) == (sent, orders, 0), strategy.output() + feed.output()
