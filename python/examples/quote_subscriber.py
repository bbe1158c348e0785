#!/usr/bin/env python3
"""A research actor subscribed to the C++ market-data topic, conflating: it gets the latest
Quote per symbol it can keep up with, never a stale backlog.

    build/examples/market_data_gateway --topic --endpoint tcp://127.0.0.1:5010 &
    PYTHONPATH=python /usr/bin/python3 python/examples/quote_subscriber.py \\
        --endpoint tcp://127.0.0.1:5010 --handler-ms 2 --quotes 10000

The C++ process (examples/market_data_gateway.cpp, run with ``--topic``) publishes Quotes
keyed by symbol on a tern::Topic that a tern::TopicExport named ``--topic`` (default
``quotes``) serves. This script subscribes to it with ``tern.TopicFeed`` (``--window``
values in flight, credit back as they are handled); ``--handler-ms`` makes the handler
deliberately slow (a sleep standing in for research work), so the C++ side conflates: while
we have no credit it keeps only the newest Quote of each symbol for us. Without a registry
``--endpoint`` is where the C++ process listens; with ``--registry`` the topic and the feed
actor (``--name``, default ``market``) are looked up there by name.

Every ``--sample-ms`` the main thread asks the feed actor for a Snapshot (SnapshotRequest,
answered with ``sent`` = Quotes published so far) and notes our staleness: the latest seq
published minus the latest seq we have seen (Quote seq counts every Quote, all symbols).

With ``--quotes N`` (what the feed publishes, market_data_gateway ``--quotes``) it stops
once the feed published N and the last Quote of every ``--symbols`` symbol arrived; else it
runs ``--seconds``. Prints what it received per symbol, what it never saw (published -
received: conflated or skipped by the C++ side), its staleness, and whether every symbol's
seq only went up. ``--csv FILE`` writes every Quote received (symbol,seq,bid,ask). At exit
it unsubscribes (TopicUnsubscribe), unless ``--stay-subscribed``; the C++ side's summary
counts this subscriber either way (its ``sent`` is what we received, summed over every
subscriber), and its ``subscribers=`` only while we stay.
Exit status: 0 ok; 1 the topic or feed not found (by the registry, or a Reject from the C++
side naming it) or set-up error; 2 --quotes not all caught up within --seconds; 3 a
symbol's seq went back.
"""

import argparse
import os
import socket
import sys
import threading
import time

try:
    import tern  # noqa: F401
except ImportError:  # run straight from the source tree without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tern
from tern import Actor, Manager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from research_actor import Quote  # noqa: E402,F401  (the same wire types as the C++ side)
from research_notebook import Snapshot, SnapshotRequest  # noqa: E402,F401


class Subscriber(Actor):
    """Subscribes to the topic at start; a slow handler; credit back per Quote handled."""

    def __init__(self, topic_ref, window: int, handler_ms: float):
        self.topic_ref = topic_ref
        self.window = window
        self.handler_s = handler_ms / 1000.0
        self.lock = threading.Lock()
        self.received = 0
        self.per_symbol = {}  # symbol -> [received, last seq, last Quote]
        self.max_seq = -1
        self.out_of_order = []  # (symbol, seq, previous seq)
        self.rows = []  # (symbol, seq, bid, ask), for --csv
        self.feed = None
        self.rejected = None  # the C++ side's Reject of our TopicSubscribe (a wrong --topic)

    def on_start(self, _):
        self.feed = tern.TopicFeed(self, self.topic_ref, window=self.window)

    def on_quote(self, q: Quote):
        if self.handler_s:
            time.sleep(self.handler_s)  # the slow research work
        with self.lock:
            self.received += 1
            s = self.per_symbol.setdefault(q.symbol, [0, -1, None])
            if q.seq <= s[1]:
                self.out_of_order.append((q.symbol, q.seq, s[1]))
            s[0] += 1
            s[1] = max(s[1], q.seq)
            s[2] = q
            self.max_seq = max(self.max_seq, q.seq)
            self.rows.append((q.symbol, q.seq, q.bid, q.ask))
        self.feed.done()

    def on_reject(self, r):
        with self.lock:
            self.rejected = f"{r.message_type} rejected by {r.rejected_by!r}: {r.reason}"


def free_listen(listen: str) -> str:
    if not listen.endswith(":0"):
        return listen
    with socket.socket() as s:  # the Python transport binds a named port: pick a free one
        s.bind(("127.0.0.1", 0))
        return f"{listen[:-2]}:{s.getsockname()[1]}"


def lookup(mgr, name: str, wait: float):
    """The actor ``name`` from the registry, asking again while it is not registered yet."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return mgr.lookup_remote(name)
        except (tern.NotFound, tern.Offline):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint", help="where market_data_gateway --topic listens")
    where.add_argument("--registry", help="find the topic and the feed by name there")
    ap.add_argument("--topic", default="quotes", help="the topic's (exporter's) name")
    ap.add_argument("--name", default="market", help="the feed actor's name (snapshots)")
    ap.add_argument("--listen", default="tcp://127.0.0.1:0",
                    help="our endpoint, where the Quotes come (default: a free loopback port)")
    ap.add_argument("--window", type=int, default=8,
                    help="Quotes in flight before credit comes back (1..4096, default 8)")
    ap.add_argument("--handler-ms", type=float, default=0.0,
                    help="how long the handler takes per Quote (a sleep; default 0)")
    ap.add_argument("--quotes", type=int, default=0,
                    help="the feed publishes this many: stop once all caught up (0: run "
                         "--seconds)")
    ap.add_argument("--symbols", default="AAPL,MSFT,ES,EURUSD",
                    help="the symbols whose last Quote must arrive (with --quotes)")
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="with --quotes: the deadline; without: how long to run")
    ap.add_argument("--sample-ms", type=float, default=100.0,
                    help="how often to sample staleness with a SnapshotRequest (default 100)")
    ap.add_argument("--lookup-wait", type=float, default=10.0,
                    help="with --registry: how long to keep asking for a name not registered "
                         "yet (default 10 s)")
    ap.add_argument("--csv", help="write every Quote received to this file")
    ap.add_argument("--stay-subscribed", action="store_true",
                    help="do not unsubscribe at exit (the C++ side's summary then still lists us "
                         "among its subscribers=; its counters include us either way)")
    args = ap.parse_args(argv)
    if not 1 <= args.window <= 4096:
        ap.error(f"--window {args.window} is outside 1..4096")
    if args.handler_ms < 0 or args.sample_ms <= 0 or args.quotes < 0 or args.seconds <= 0:
        ap.error("--handler-ms and --quotes must be >= 0, --sample-ms and --seconds > 0")
    symbols = [s for s in args.symbols.split(",") if s]

    mgr = Manager(free_listen(args.listen), registry=args.registry)
    try:
        mgr.init()
    except (OSError, tern.RegistryError) as exc:
        print(f"subscriber: {exc}", file=sys.stderr)
        mgr.end()
        return 1
    with mgr:
        try:
            if args.registry:
                topic = lookup(mgr, args.topic, args.lookup_wait)
                feed = lookup(mgr, args.name, args.lookup_wait)
                print(f"subscriber: found {args.topic!r} at {topic.endpoint} via registry "
                      f"{args.registry}", flush=True)
            else:
                topic = mgr.remote(args.topic, args.endpoint)
                feed = mgr.remote(args.name, args.endpoint)
        except (tern.NotFound, tern.Offline, tern.RegistryError) as exc:
            print(f"subscriber: {exc}", file=sys.stderr)
            return 1
        sub = Subscriber(topic, args.window, args.handler_ms)
        mgr.manage("subscriber", sub)
        print(f"subscriber: subscribed to {args.topic!r} at {topic.endpoint} (window "
              f"{args.window}, handler {args.handler_ms:g} ms)", flush=True)

        t0 = time.monotonic()
        deadline = t0 + args.seconds
        behind = []  # staleness samples, in Quotes
        published = 0
        finals = {}  # symbol -> its last seq, once the feed published --quotes
        caught_up = False
        failed = None  # why the run cannot go on (a Reject from the C++ side)
        while time.monotonic() < deadline:
            time.sleep(args.sample_ms / 1000.0)
            with sub.lock:
                failed = sub.rejected
            if failed:
                break
            try:
                snap = feed.ask(SnapshotRequest(""), timeout=max(1.0, args.sample_ms / 1000.0))
                with sub.lock:
                    seen = sub.max_seq
                published = snap.sent
                if published > 0:
                    behind.append(max(0, (published - 1) - seen))
                if not args.quotes or published < args.quotes:
                    continue
                for sym in symbols:
                    if sym not in finals:
                        last = feed.ask(SnapshotRequest(sym), timeout=5.0)
                        if last.seq >= 0:
                            finals[sym] = last.seq
            except TimeoutError:
                continue  # the sample is skipped, not guessed; --seconds bounds the run
            except tern.AskRejected as exc:  # e.g. a wrong --name
                failed = str(exc)
                break
            with sub.lock:
                caught_up = len(finals) == len(symbols) and all(
                    sym in sub.per_symbol and sub.per_symbol[sym][1] == seq
                    for sym, seq in finals.items())
            if caught_up:
                break
        elapsed = time.monotonic() - t0
        if sub.feed is not None and not args.stay_subscribed:
            sub.feed.close(timeout=1.0)  # TopicUnsubscribe: the C++ side forgets us

        with sub.lock:
            received, per_symbol = sub.received, dict(sub.per_symbol)
            out_of_order, rows = list(sub.out_of_order), list(sub.rows)
            final = max(0, (published - 1) - sub.max_seq) if published else 0
    if failed:
        print(f"subscriber: {failed}", file=sys.stderr)
        return 1
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("symbol,seq,bid,ask\n")
            for r in rows:
                f.write(f"{r[0]},{r[1]},{r[2]!r},{r[3]!r}\n")

    print(f"subscriber: received {received} of {published} published in {elapsed:.2f}s; "
          f"never saw {max(0, published - received)} (conflated or skipped by the feed)")
    for sym in sorted(per_symbol):
        n, last, q = per_symbol[sym]
        print(f"subscriber: {sym} received={n} last_seq={last} bid={q.bid:.3f} ask={q.ask:.3f}")
    if behind:
        print(f"subscriber: staleness samples={len(behind)} max={max(behind)} "
              f"mean={sum(behind) / len(behind):.1f} final={final} (Quotes: latest seq "
              f"published - latest seq seen)")
    if out_of_order:
        print(f"subscriber: out of order: {len(out_of_order)}, first {out_of_order[0]} "
              f"(symbol, seq, after seq)", file=sys.stderr)
        return 3
    print("subscriber: every symbol's seq only went up")
    if args.quotes and not caught_up:
        missing = {sym: (per_symbol.get(sym, [0, -1])[1], finals.get(sym)) for sym in symbols}
        print(f"subscriber: timeout after {args.seconds:g}s: published {published} of "
              f"{args.quotes}; (last seen, last published) per symbol: {missing}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
