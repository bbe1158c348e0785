#!/usr/bin/env python3
"""Python ping: N sequential Ping/Pong round trips with a remote pong, timed.

    PYTHONPATH=python python3 python/examples/ping.py --peer tcp://localhost:5001 \\
        --peer-name pong --count 10000

Prints one line:
    ping: count=N p50_us=.. p90_us=.. p99_us=.. max_us=.. round_trips_per_s=.. msgs_per_s=..
(msgs_per_s counts both the Ping and the Pong). Exit status: 0 when every Pong came back
with the right count; 2 on --timeout; 3 on a wrong Pong; 4 when the peer rejected the Ping.
With CURVE (docs/python.md): --curve-key ping.key_secret --curve-allow DIR (holding pong's
public certificate, for the Pongs) --curve-peer pong.key.
"""

import argparse
import logging
import os
import socket
import sys
import time

try:
    import tern  # noqa: F401
except ImportError:  # run straight from the source tree without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tern import Actor, CurveConfig, Manager, register_message, security


@register_message
class Ping:
    def __init__(self, count: int):
        self.count = count


@register_message
class Pong:
    def __init__(self, count: int):
        self.count = count


class PingActor(Actor):
    def __init__(self, peer, count: int):
        self.peer = peer
        self.count = count
        self.rtts_ns: list[int] = []
        self.error = None
        self.exit_code = None
        self.t_start = self.t_end = 0.0
        self._sent_at = 0

    def _send(self, n: int) -> None:
        self._sent_at = time.perf_counter_ns()
        self.peer.send(Ping(n), self.self_ref)

    def on_start(self, msg, sender):
        self.t_start = time.perf_counter()
        if self.count <= 0:
            self._finish(0)
            return
        self._send(1)

    def on_pong(self, msg: Pong, sender):
        now = time.perf_counter_ns()
        expected = len(self.rtts_ns) + 1
        if msg.count != expected:
            self.error = f"expected Pong {expected}, got Pong {msg.count}"
            self._finish(3)
            return
        self.rtts_ns.append(now - self._sent_at)
        if expected == self.count:
            self._finish(0)
        else:
            self._send(expected + 1)

    def on_reject(self, msg, sender):
        self.error = f"rejected by {msg.rejected_by!r}: {msg.reason}"
        self._finish(4)

    def _finish(self, code: int) -> None:
        if self.exit_code is None:
            self.t_end = time.perf_counter()
            self.exit_code = code
            self.manager.terminate()


def _free_endpoint() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _pct(sorted_ns: list[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, max(0, int(round(q * (len(sorted_ns) - 1)))))
    return sorted_ns[i] / 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", default="tcp://localhost:5001", help="pong's endpoint")
    ap.add_argument("--peer-name", default="pong", help="pong's actor name")
    ap.add_argument("--endpoint", default=None,
                    help="our PULL endpoint for the replies (default: a free port)")
    ap.add_argument("--name", default="ping", help="our actor name")
    ap.add_argument("--count", "-n", type=int, default=1000, help="round trips")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before giving up")
    ap.add_argument("--curve-key", help="our key pair (NAME.key_secret): CURVE on")
    ap.add_argument("--curve-allow", help="directory of the *.key certificates we let in")
    ap.add_argument("--curve-peer", help="pong's public certificate (NAME.key)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    curve, peer_key = None, None
    if args.curve_key:
        try:
            curve = CurveConfig(args.curve_key, allow_dir=args.curve_allow)
            peer_key = security.load_public_key(args.curve_peer or "")
        except (OSError, ValueError) as exc:
            print(f"ping: {exc}", file=sys.stderr)
            return 1
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")

    for attempt in range(5):
        endpoint = args.endpoint or _free_endpoint()
        try:
            mgr = Manager(endpoint, curve=curve)
        except (OSError, ValueError) as exc:
            print(f"ping: {exc}", file=sys.stderr)
            return 1
        actor = PingActor(mgr.remote(args.peer_name, args.peer, peer_key), args.count)
        mgr.manage(args.name, actor)
        try:
            mgr.init()
            break
        except OSError as exc:
            mgr.end()
            if args.endpoint or attempt == 4:
                print(f"ping: {exc}", file=sys.stderr)
                return 1
    try:
        finished = mgr.run(timeout=args.timeout)
    finally:
        mgr.end()

    if not finished or actor.exit_code is None:
        print(f"ping: timeout after {args.timeout:g}s: {len(actor.rtts_ns)}/{args.count} "
              f"pongs from {args.peer_name!r} at {args.peer}", file=sys.stderr)
        return 2
    if actor.exit_code != 0:
        print(f"ping: {actor.error}", file=sys.stderr)
        return actor.exit_code
    n = len(actor.rtts_ns)
    elapsed = max(actor.t_end - actor.t_start, 1e-9)
    if n == 0:
        print("ping: count=0")
        return 0
    rtts = sorted(actor.rtts_ns)
    print(f"ping: count={n} p50_us={_pct(rtts, 0.5):.1f} p90_us={_pct(rtts, 0.9):.1f} "
          f"p99_us={_pct(rtts, 0.99):.1f} max_us={rtts[-1] / 1000.0:.1f} "
          f"round_trips_per_s={n / elapsed:.0f} msgs_per_s={2 * n / elapsed:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
