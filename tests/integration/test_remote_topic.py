"""Issue 10: a Python research actor subscribes to a C++ topic through the gateway and gets
the conflated stream it can keep up with.

tests/integration/topic_peer (C++) publishes FeedTick{sym, seq, px} over 8 keys, one every
20 us, on a tern::Topic exported as "ticks" (tern::TopicExport). This process subscribes with
tern.TopicFeed (window 4) from an actor whose handler takes 2 ms: about 100x slower than
the feed. It must get the newest value of every key in the end, each key's values in order,
far fewer values than were published, and nothing piling up in between (the gateway's
backlog stays within the window; nothing dropped).
"""
import re
import threading
import time

import tern
from xlang import BUILD, free_port, procs, require  # noqa: F401

KEYS = 8
VALUES = 20_000
WINDOW = 4


@tern.register_message(name="FeedTick", fields={"sym": "int32", "seq": "int64", "px": "double"})
class FeedTick:
    def __init__(self, sym: int, seq: int, px: float):
        self.sym = sym
        self.seq = seq
        self.px = px


class Research(tern.Actor):
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.got = []  # (sym, seq)
        self.last = {}
        self.lock = threading.Lock()

    def on_start(self, _):
        self.feed = tern.TopicFeed(self, self.manager.remote("ticks", self.endpoint),
                                   window=WINDOW)

    def on_feed_tick(self, t):
        time.sleep(0.002)  # the slow research work
        with self.lock:
            self.got.append((t.sym, t.seq))
            self.last[t.sym] = t.seq
        self.feed.done()


def test_a_slow_python_subscriber_gets_the_latest_value_per_key_and_no_backlog(procs):
    exe = require(BUILD / "tests" / "topic_peer")
    peer = procs.start("topic_peer", [exe, "--values", VALUES, "--keys", KEYS,
                                      "--interval-us", 20, "--start-after-ms", 300])
    endpoint = peer.wait_line(r"^topic: listening on (\S+)").group(1)
    mgr = tern.Manager(f"tcp://127.0.0.1:{free_port()}")
    research = Research(endpoint)
    mgr.manage("research", research)
    mgr.init()
    try:
        fed = peer.wait_line(r"^topic: fed published=(\d+) last=(\S+)", timeout=60)
        published = int(fed.group(1))
        last = {int(k): int(v) for k, v in (kv.split(":") for kv in fed.group(2).split(","))}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with research.lock:
                if all(research.last.get(k) == s for k, s in last.items()):
                    break
            time.sleep(0.05)
        with research.lock:
            got = list(research.got)
            final = dict(research.last)
        assert final == last, "the newest value of every key must arrive"
    finally:
        mgr.end()
        peer.stop()
    done = peer.wait_line(r"^topic: done (.*)$", timeout=20).group(1)
    stats = {k: int(v) for k, v in (kv.split("=") for kv in done.split())}

    assert published == VALUES + KEYS
    # ~100x slower than the feed: it handled a small fraction, and it never saw a key go back
    assert len(got) < published // 10
    seen = {}
    for sym, seq in got:
        assert seq > seen.get(sym, 0), f"key {sym}: {seq} after {seen.get(sym)}"
        seen[sym] = seq
    # Everything the C++ side sent arrived; what it did not send it counted as conflated.
    assert stats["subscribers"] == 1
    assert stats["sent"] == len(got)
    assert stats["conflated"] + stats["topic_conflated"] > 0
    # nothing vanished: every value was sent, or counted as replaced by a newer one
    assert stats["sent"] + stats["conflated"] + stats["topic_conflated"] == published
    assert stats["dropped"] == 0
    # No stale backlog: at most the window (and the credit batch) was ever queued behind
    # the gateway for this subscriber.
    assert stats["backlog_max"] <= WINDOW
