#!/usr/bin/env python3
"""Python pong: answers every Ping{count} with Pong{count} to the sender.

    PYTHONPATH=python python3 python/examples/pong.py --endpoint tcp://127.0.0.1:5001 --name pong

Prints "pong: listening on ENDPOINT" once bound. Exits 0 on SIGTERM/SIGINT or after
--max pings, printing how many pings it answered. With CURVE (docs/python.md):
--curve-key pong.key_secret --curve-allow DIR (the clients' public certificates); the
summary then adds auth_denied=A handshakes_failed=H.
"""

import argparse
import logging
import os
import sys

try:
    import tern
except ImportError:  # run straight from the source tree without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import tern

from tern import Actor, Manager, register_message


@register_message
class Ping:
    def __init__(self, count: int):
        self.count = count


@register_message
class Pong:
    def __init__(self, count: int):
        self.count = count


class PongActor(Actor):
    def __init__(self, max_pings: int = 0):
        self.max_pings = max_pings
        self.pings = 0

    def on_ping(self, msg: Ping, sender):
        self.pings += 1
        self.reply(Pong(msg.count))
        if self.max_pings and self.pings >= self.max_pings:
            self.manager.terminate()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5001",
                    help="PULL endpoint to bind (loopback; tcp://*:PORT listens on every interface: trusted networks only, or with CURVE)")
    ap.add_argument("--name", default="pong", help="actor name")
    ap.add_argument("--max", type=int, default=0, help="exit after N pings (0: run until signal)")
    ap.add_argument("--curve-key", help="our key pair (NAME.key_secret): CURVE on")
    ap.add_argument("--curve-allow", help="directory of the *.key certificates we let in")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")

    actor = PongActor(args.max)
    try:
        curve = tern.CurveConfig(args.curve_key, allow_dir=args.curve_allow) \
            if args.curve_key else None
        mgr = Manager(args.endpoint, curve=curve)
    except (OSError, ValueError) as exc:
        print(f"pong: {exc}", file=sys.stderr)
        return 1
    mgr.manage(args.name, actor)
    try:
        mgr.init()
    except OSError as exc:
        print(f"pong: {exc}", file=sys.stderr)
        mgr.end()
        return 1
    print(f"pong: listening on {args.endpoint} as {args.name!r} (tern {tern.__version__})",
          flush=True)
    try:
        mgr.run()
    finally:
        mgr.end()
    stats = mgr.stats()
    extra = (f" auth_denied={stats['auth_denied']} handshakes_failed={stats['handshakes_failed']}"
             if args.curve_key else "")
    print(f"pong: answered {actor.pings} pings; rejects_sent={stats['rejects_sent']} "
          f"dropped={stats['dropped_total']}{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
