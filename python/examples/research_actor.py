#!/usr/bin/env python3
"""A research actor: turns Quote{symbol, bid, ask, seq} into Signal{symbol, side, strength, seq}.

    PYTHONPATH=python python3 python/examples/research_actor.py --endpoint tcp://127.0.0.1:5003 \\
        --name research

Every Quote is answered with one Signal to its sender, carrying the same symbol and seq.
The toy model: side = +1 if the mid price rose since the symbol's previous quote, -1 if it
fell, 0 on the first quote or no change (or a crossed/invalid quote); strength = the move
in units of the current spread, capped at 1.0. Replace on_quote with real research.
Prints "research: listening on ENDPOINT" once bound; exits on SIGTERM/SIGINT or --max.
"""

import argparse
import logging
import math
import os
import sys
from dataclasses import dataclass

try:
    import tern  # noqa: F401
except ImportError:  # run straight from the source tree without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tern import Actor, Manager, register_message


@register_message
@dataclass
class Quote:
    symbol: str
    bid: float
    ask: float
    seq: int


@register_message
@dataclass
class Signal:
    symbol: str
    side: int
    strength: float
    seq: int


def signal_for(quote: Quote, last_mid: "float | None") -> Signal:
    """The model, as a pure function (easy to test without any actor)."""
    spread = quote.ask - quote.bid
    mid = (quote.bid + quote.ask) / 2.0
    if last_mid is None or not math.isfinite(mid) or spread < 0:
        return Signal(quote.symbol, 0, 0.0, quote.seq)
    move = mid - last_mid
    side = (move > 0) - (move < 0)
    strength = 1.0 if spread == 0 and move != 0 else min(1.0, abs(move) / spread) if spread else 0.0
    return Signal(quote.symbol, side, float(strength), quote.seq)


class ResearchActor(Actor):
    def __init__(self, max_quotes: int = 0):
        self.max_quotes = max_quotes
        self.quotes = 0
        self.last_mid: dict[str, float] = {}

    def on_quote(self, quote: Quote, sender):
        self.quotes += 1
        self.reply(signal_for(quote, self.last_mid.get(quote.symbol)))
        if quote.ask >= quote.bid:
            self.last_mid[quote.symbol] = (quote.bid + quote.ask) / 2.0
        if self.max_quotes and self.quotes >= self.max_quotes:
            self.manager.terminate()

    def on_reject(self, msg, sender):
        logging.getLogger("research").warning("signal rejected: %s", msg.reason)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5003",
                    help="PULL endpoint to bind (loopback; tcp://*:PORT listens on every interface: trusted networks only, or with CURVE)")
    ap.add_argument("--name", default="research", help="actor name")
    ap.add_argument("--max", type=int, default=0, help="exit after N quotes (0: until signal)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")

    actor = ResearchActor(args.max)
    mgr = Manager(args.endpoint)
    mgr.manage(args.name, actor)
    try:
        mgr.init()
    except OSError as exc:
        print(f"research: {exc}", file=sys.stderr)
        mgr.end()
        return 1
    print(f"research: listening on {args.endpoint} as {args.name!r}", flush=True)
    try:
        mgr.run()
    finally:
        mgr.end()
    print(f"research: answered {actor.quotes} quotes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
