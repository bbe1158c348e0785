"""Issue 9, finding 11: a Python stream to a slow C++ actor loses nothing silently.

This process streams Quotes (wire type SinkQuote) as fast as it can to tests/integration/slow_sink (a C++
Manager + Gateway whose "sink" actor handles at most --rate Quotes a second), through a
tern.Manager with a small per-peer backlog and a short linger, then ends it. Every
message must be accounted for exactly once: refused by send() (it returned False),
reported by end() (EndReport), or handled by the C++ actor, in order.

TERN_STREAM_MESSAGES overrides the 300,000 messages (e.g. on a slow machine).
"""
import os
import re
import time

import pytest

import tern
from xlang import BUILD, procs, require  # noqa: F401

N = int(os.environ.get("TERN_STREAM_MESSAGES", "300000"))
SINK_RATE = 5_000  # Quotes per second the C++ actor handles: well below what we send


# The sink's wire name is SinkQuote, so this does not replace another test's "Quote".
@tern.register_message(name="SinkQuote", fields={"symbol": "char[16]", "bid": "double",
                                                 "ask": "double", "seq": "int64"})
class Quote:
    def __init__(self, symbol: str, bid: float, ask: float, seq: int):
        self.symbol = symbol
        self.bid = bid
        self.ask = ask
        self.seq = seq


def sink_stats(line):
    return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[2:])}


def test_stream_of_300000_to_a_slow_cpp_actor_every_message_delivered_or_reported(procs):
    exe = require(BUILD / "tests" / "slow_sink")
    sink = procs.start("slow_sink", [exe, "--rate", SINK_RATE, "--stats-ms", 200])
    endpoint = sink.wait_line(r"^sink: listening on (\S+) as 'sink'").group(1)

    mgr = tern.Manager(None, max_backlog=20_000, linger_ms=1000)
    mgr.init()
    try:
        ref = mgr.remote("sink", endpoint)
        accepted = refused = 0
        for seq in range(N):
            if ref.send(Quote("AAPL", 100.0, 101.0, seq)):
                accepted += 1
            else:
                refused += 1
    finally:
        report = mgr.end()
    stats = mgr.stats()

    # The sink is slower than we send: the backlog filled and send() said so.
    assert refused > 0, "the sink kept up: the test did not exercise back-pressure"
    assert stats["dropped"].get("peer_backlog_full") == refused
    # What end() could not hand to ZeroMQ is reported, per peer and cause, exactly.
    assert report.zmq_flushed, report
    assert set(report.unsent) <= {endpoint}
    assert set(report.unsent.get(endpoint, {})) <= {"unsent_at_end"}
    assert stats["unsent_total"] == report.total
    assert stats["messages_out"] == accepted - report.total
    assert stats["held"] == 0

    # Everything handed to ZeroMQ reaches the C++ actor (it keeps handling after we end).
    expected = accepted - report.total
    deadline = time.monotonic() + 60
    received = -1
    while time.monotonic() < deadline:
        m = sink.wait_line(r"^sink: stats ", start=sink.last_index + 1, timeout=10)
        received = sink_stats(m.string)["received"]
        if received >= expected:
            break
    sink.stop()
    final = sink_stats(sink.wait_line(r"^sink: done ").string)
    print(f"sent {N}: refused {refused}, reported by end() {report.total}, "
          f"handled by the C++ actor {final['received']}")
    assert final["received"] == expected, sink.output()
    assert final["received"] + report.total + refused == N
    assert final["bad"] == 0 and final["dropped"] == 0  # in order, none refused by the gateway
    assert final["next_seq"] - final["received"] == final["gaps"]
