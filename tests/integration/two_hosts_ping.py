#!/usr/bin/env python3
"""Python ping for test_two_hosts.py: python/examples/ping.py's actor, bound to --bind and
advertising --advertise as its sender_endpoint (tern.Manager(advertise=...)), so a pong on
another host can answer it even when it binds all interfaces (tcp://*:PORT).

    two_hosts_ping.py --peer tcp://10.1.2.1:5001 --bind tcp://*:5002 \\
        --advertise tcp://10.1.2.2:5002 [--peer-name pong] [--count 100] [--timeout 20]

Prints "ping: count=N advertised=ENDPOINT". Exit status as ping.py: 0 every Pong came back,
2 timeout, 3 a wrong Pong, 4 the peer sent a Reject (its reason is printed).
"""
import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "examples"))

import ping as example  # noqa: E402  (python/examples/ping.py: PingActor, Ping, Pong)
from tern import Manager  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", required=True)
    ap.add_argument("--peer-name", default="pong")
    ap.add_argument("--bind", required=True, help="our PULL endpoint")
    ap.add_argument("--advertise", default=None, help="the sender_endpoint peers reply to")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args(argv)

    mgr = Manager(args.bind, advertise=args.advertise)
    actor = example.PingActor(mgr.remote(args.peer_name, args.peer), args.count)
    mgr.manage("ping", actor)
    try:
        mgr.init()
        finished = mgr.run(timeout=args.timeout)
    finally:
        mgr.end()
    if not finished or actor.exit_code is None:
        print(f"ping: timeout after {args.timeout:g}s: {len(actor.rtts_ns)}/{args.count} pongs "
              f"(advertised {mgr.advertised_endpoint})", file=sys.stderr)
        return 2
    if actor.exit_code != 0:
        print(f"ping: {actor.error}", file=sys.stderr)
        return actor.exit_code
    print(f"ping: count={len(actor.rtts_ns)} advertised={mgr.advertised_endpoint}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
