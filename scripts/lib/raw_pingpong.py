#!/usr/bin/env python3
"""Bare pyzmq ping / pong: the baseline for scripts/example bench (no framework).

Speaks the same protocol as the examples (shared/wire-protocol.md): one PULL socket bound
per process, a PUSH socket to the peer, JSON envelopes encoded with json.dumps and decoded
with json.loads, and replies that carry the replier's name and endpoint. So a bare ping can
talk to gateway_pong or pong.py, and gateway_ping or ping.py to a bare pong.

    raw_pingpong.py pong --endpoint tcp://127.0.0.1:5001 [--name pong]
    raw_pingpong.py ping --peer tcp://localhost:5001 [--peer-name pong] [--count 10000]
    raw_pingpong.py sink --endpoint tcp://127.0.0.1:5001 --count N
    raw_pingpong.py push --peer tcp://localhost:5001 --count N

ping prints the line ping.py prints:
    ping: count=N p50_us=.. p90_us=.. p99_us=.. max_us=.. round_trips_per_s=.. msgs_per_s=..
pong prints "pong: listening on ENDPOINT" and, on SIGTERM/SIGINT, "pong: answered N pings".
sink counts frames without decoding them (the fastest a Python process takes them off a
PULL socket) and prints "sink: N frames in S s (R msgs/s)" after N, or on SIGTERM/SIGINT;
push sends it one pre-encoded Quote envelope N times (the sink's ceiling).
"""
import argparse
import json
import signal
import sys
import time

import zmq


def advertised(endpoint):
    for host in ("*", "0.0.0.0"):
        endpoint = endpoint.replace(f"tcp://{host}:", "tcp://localhost:")
    return endpoint


def pong(args):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(args.endpoint)
    me = advertised(args.endpoint)
    pushes = {}
    answered = 0
    stop = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.append(1))
    print(f"pong: listening on {args.endpoint} as {args.name!r}", flush=True)
    while not stop:
        if not pull.poll(100):
            continue
        env = json.loads(pull.recv())
        if env.get("message_type") != "Ping" or not env.get("sender_endpoint"):
            continue
        ep = advertised(env["sender_endpoint"])
        push = pushes.get(ep)
        if push is None:
            push = pushes[ep] = ctx.socket(zmq.PUSH)
            push.connect(ep)
        push.send(json.dumps({"sender_actor": args.name, "sender_endpoint": me,
                              "receiver": env["sender_actor"], "message_type": "Pong",
                              "message": {"count": env["message"]["count"]}}).encode())
        answered += 1
    print(f"pong: answered {answered} pings", flush=True)
    for s in [pull, *pushes.values()]:
        s.close(linger=1000)
    ctx.term()
    return 0


def sink(args):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(args.endpoint)
    stop = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.append(1))
    print(f"sink: listening on {args.endpoint}", flush=True)
    n = 0
    t0 = t1 = 0.0
    while n < args.count and not stop:
        if not pull.poll(100):
            continue
        while n < args.count:  # drain without polling while frames are there
            try:
                pull.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            n += 1
            if n == 1:
                t0 = time.perf_counter()
        t1 = time.perf_counter()
    rate = (n - 1) / (t1 - t0) if n > 1 and t1 > t0 else 0.0
    print(f"sink: {n} frames in {t1 - t0:.2f} s ({rate:.0f} msgs/s)", flush=True)
    pull.close(linger=0)
    ctx.term()
    return 0 if n == args.count else 1


def push(args):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.connect(advertised(args.peer))
    # One Quote envelope encoded once: the sender costs next to nothing, so the rate is the
    # sink's (and ZeroMQ's), the ceiling for any producer feeding a Python process.
    frame = json.dumps({"sender_actor": "market", "sender_endpoint": None,
                        "receiver": args.peer_name, "message_type": "Quote",
                        "message": {"symbol": "AAPL", "bid": 100.0, "ask": 101.0,
                                    "seq": 0}}).encode()
    for _ in range(args.count):
        sock.send(frame)
    sock.close(linger=30_000)
    ctx.term()
    return 0


def pct(sorted_ns, q):
    i = min(len(sorted_ns) - 1, max(0, int(round(q * (len(sorted_ns) - 1)))))
    return sorted_ns[i] / 1000.0


def ping(args):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    me = f"tcp://127.0.0.1:{port}"
    push = ctx.socket(zmq.PUSH)
    push.connect(advertised(args.peer))
    rtts = []
    deadline = time.monotonic() + args.timeout
    t0 = time.perf_counter()
    for n in range(1, args.count + 1):
        sent = time.perf_counter_ns()
        push.send(json.dumps({"sender_actor": "ping", "sender_endpoint": me,
                              "receiver": args.peer_name, "message_type": "Ping",
                              "message": {"count": n}}).encode())
        while not pull.poll(100):
            if time.monotonic() > deadline:
                print(f"ping: timeout after {args.timeout:g}s: {n - 1}/{args.count} pongs",
                      file=sys.stderr)
                return 2
        env = json.loads(pull.recv())
        if env.get("message_type") != "Pong" or env["message"].get("count") != n:
            print(f"ping: expected Pong {n}, got {env}", file=sys.stderr)
            return 3
        rtts.append(time.perf_counter_ns() - sent)
    elapsed = time.perf_counter() - t0
    rtts.sort()
    n = len(rtts)
    print(f"ping: count={n} p50_us={pct(rtts, 0.5):.1f} p90_us={pct(rtts, 0.9):.1f} "
          f"p99_us={pct(rtts, 0.99):.1f} max_us={rtts[-1] / 1000.0:.1f} "
          f"round_trips_per_s={n / elapsed:.0f} msgs_per_s={2 * n / elapsed:.0f}", flush=True)
    push.close(linger=0)
    pull.close(linger=0)
    ctx.term()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pong")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5001")
    p.add_argument("--name", default="pong")
    p = sub.add_parser("ping")
    p.add_argument("--peer", default="tcp://localhost:5001")
    p.add_argument("--peer-name", default="pong")
    p.add_argument("--count", "-n", type=int, default=10000)
    p.add_argument("--timeout", type=float, default=60.0)
    p = sub.add_parser("sink")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5001")
    p.add_argument("--count", "-n", type=int, default=1_000_000)
    p = sub.add_parser("push")
    p.add_argument("--peer", default="tcp://localhost:5001")
    p.add_argument("--peer-name", default="sink")
    p.add_argument("--count", "-n", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    return {"pong": pong, "ping": ping, "sink": sink, "push": push}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
