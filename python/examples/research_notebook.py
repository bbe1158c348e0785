#!/usr/bin/env python3
"""A research session as a notebook would run it, written as one script: connect to the
C++ market-data actor, subscribe to its quotes, ask it for a snapshot, turn what came back
into a pandas DataFrame and plot it (matplotlib, saved as a PNG).

    scripts/registry --endpoint tcp://127.0.0.1:5555 &
    build/examples/market_data_gateway --serve --registry tcp://127.0.0.1:5555 &
    PYTHONPATH=python /usr/bin/python3 python/examples/research_notebook.py \\
        --registry tcp://127.0.0.1:5555 --quotes 2000 --png /tmp/quotes.png

``--registry`` is the name service (scripts/registry, docs/registry.md) where the C++
process (examples/market_data_gateway.cpp, run with ``--serve --registry``) registered its
actor as ``--name`` (default ``market``): the notebook finds it by that name alone and
prints ``notebook: found 'market' at ENDPOINT via registry REGISTRY``. Without a registry,
``--endpoint`` names where the C++ process listens (``--serve --endpoint ...``).

Each "cell" below is a block a researcher would run on its own; re-running the first one
just works (a new Manager on the same endpoint ends the old one). Needs pandas (Debian
python3-pandas) and matplotlib (python3-matplotlib). Prints what it did; exit status 0 on
success, 1 if the registry refused or does not know the name (or did not answer), 2 if the
quotes or the snapshot did not arrive within --timeout, 3 if the snapshot disagrees with
the quotes received.
"""

import argparse
import os
import sys
import threading
import time

try:
    import tern  # noqa: F401
except ImportError:  # run straight from the source tree without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tern
from tern import Actor, Manager, register_message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from research_actor import Quote, Signal, signal_for  # noqa: E402  (the same wire types)


@register_message
class Subscribe:
    """Ask the market actor for ``quotes`` Quotes, at most ``window`` unanswered."""

    def __init__(self, quotes: int, window: int):
        self.quotes = quotes
        self.window = window


@register_message
class SnapshotRequest:
    def __init__(self, symbol: str):
        self.symbol = symbol


@register_message
class Snapshot:
    """The latest Quote of ``symbol`` (``seq`` -1: none yet) and ``sent`` in this stream."""

    def __init__(self, symbol: str, bid: float, ask: float, seq: int, sent: int):
        self.symbol = symbol
        self.bid = bid
        self.ask = ask
        self.seq = seq
        self.sent = sent


class Recorder(Actor):
    """Keeps every Quote and answers it with a Signal (which paces the C++ stream)."""

    def __init__(self, expect: int):
        self.quotes = []
        self.expect = expect
        self.done = threading.Event()
        self._last_mid = {}

    def on_quote(self, q: Quote, sender):
        self.quotes.append(q)
        self.reply(signal_for(q, self._last_mid.get(q.symbol)))
        self._last_mid[q.symbol] = (q.bid + q.ask) / 2.0
        if len(self.quotes) >= self.expect:
            self.done.set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--registry",
                       help="the registry to find the market actor in by --name, e.g. "
                            "tcp://127.0.0.1:5555")
    where.add_argument("--endpoint",
                       help="without a registry: where the C++ market actor listens, e.g. "
                            "tcp://127.0.0.1:5010")
    ap.add_argument("--name", default="market", help="its actor name (default: market)")
    ap.add_argument("--lookup-wait", type=float, default=10.0,
                    help="with --registry: how long to keep asking for a name not registered "
                         "yet (default 10 s)")
    ap.add_argument("--listen", default="tcp://127.0.0.1:0",
                    help="our endpoint for quotes and replies (default: a free loopback port)")
    ap.add_argument("--quotes", type=int, default=2000)
    ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--symbol", default="ES", help="the symbol to ask a snapshot of")
    ap.add_argument("--png", default="research_notebook.png")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    listen = args.listen
    if listen.endswith(":0"):  # the Python transport binds a named port: pick a free one
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            listen = f"{listen[:-2]}:{s.getsockname()[1]}"

    # -- cell 1: a Manager with an endpoint of our own, and an actor that records ----------
    mgr = Manager(listen, registry=args.registry)  # registry None: no name service
    recorder = Recorder(args.quotes)
    rec_ref = mgr.manage("notebook", recorder)
    try:
        mgr.init()  # with a registry: registers "notebook" there too
    except tern.RegistryError as exc:
        print(f"notebook: {exc}", file=sys.stderr)
        return 1
    with mgr:
        if args.registry:  # the market actor by name, wherever it runs
            # It may still be starting: a name not (yet) registered is asked again for up to
            # --lookup-wait seconds.
            deadline = time.monotonic() + args.lookup_wait
            while True:
                try:
                    market = mgr.lookup_remote(args.name)
                    break
                except (tern.NotFound, tern.Offline) as exc:
                    if time.monotonic() >= deadline:
                        print(f"notebook: {exc}", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
                except tern.RegistryError as exc:
                    print(f"notebook: {exc}", file=sys.stderr)
                    return 1
            print(f"notebook: found {args.name!r} at {market.endpoint} via registry "
                  f"{args.registry}", flush=True)
        else:
            market = mgr.remote(args.name, args.endpoint)

        # -- cell 2: subscribe; the quotes go to the recorder (the Subscribe's sender) -----
        t0 = time.monotonic()
        market.send(Subscribe(args.quotes, args.window), sender=rec_ref)
        if not recorder.done.wait(args.timeout):
            print(f"notebook: timeout: {len(recorder.quotes)} of {args.quotes} quotes "
                  f"within {args.timeout:g}s", file=sys.stderr)
            return 2
        elapsed = time.monotonic() - t0
        print(f"notebook: {len(recorder.quotes)} quotes from {args.name!r} at "
              f"{market.endpoint} in {elapsed:.2f}s")

        # -- cell 3: ask for a snapshot (request/reply without writing an actor) -----------
        try:
            snap = market.ask(SnapshotRequest(args.symbol), timeout=args.timeout)
        except TimeoutError as exc:
            print(f"notebook: {exc}", file=sys.stderr)
            return 2
        print(f"notebook: snapshot {snap.symbol} bid={snap.bid:.3f} ask={snap.ask:.3f} "
              f"seq={snap.seq} sent={snap.sent}")

        # -- cell 4: a DataFrame of the quotes, checked against the snapshot ---------------
        df = tern.frames.messages_frame(recorder.quotes)
        df["mid"] = (df["bid"] + df["ask"]) / 2.0
        last = df[df["symbol"] == args.symbol].tail(1)
        if last.empty or int(last["seq"].item()) != snap.seq \
                or abs(float(last["bid"].item()) - snap.bid) > 1e-9 or snap.sent != len(df):
            print(f"notebook: the snapshot {vars(snap)} disagrees with the last "
                  f"{args.symbol} quote received: {last.to_dict('records')}", file=sys.stderr)
            return 3
        summary = df.groupby("symbol")["mid"].agg(["count", "first", "last", "min", "max"])
        print(summary.to_string())
        stats = tern.frames.stats_frame(mgr.stats())
        print(f"notebook: stats messages_in={stats['messages_in'].item()} "
              f"messages_out={stats['messages_out'].item()} "
              f"handled={stats['handled'].item()} "
              f"handler_errors={stats['handler_errors'].item()}")

    # -- cell 5: plot the mid price of each symbol (own scale each) to a PNG -----------------
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    symbols = sorted(df["symbol"].unique())
    fig, axes = plt.subplots(len(symbols), 1, figsize=(8, 2.2 * len(symbols)), sharex=True,
                             squeeze=False)
    axes_list = list(axes[:, 0])
    for ax, sym in zip(axes_list, symbols):
        part = df[df["symbol"] == sym]
        ax.plot(part["seq"], part["mid"], lw=0.8)
        ax.set_ylabel(sym)
        ax.ticklabel_format(axis="y", useOffset=False)
    axes_list[0].set_title(f"mid price per symbol, {len(df)} quotes from {args.name!r}")
    axes_list[-1].set_xlabel("seq")
    fig.tight_layout()
    fig.savefig(args.png, dpi=80)
    plt.close(fig)
    print(f"notebook: plot saved to {args.png} ({os.path.getsize(args.png)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
