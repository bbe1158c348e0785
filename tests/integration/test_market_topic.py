"""The market-data example on a topic (issue 10): examples/market_data_gateway --topic
publishes Quotes keyed by symbol on a tern::Topic served by a tern::TopicExport, and
python/examples/quote_subscriber.py subscribes with tern.TopicFeed, conflating, with a
handler ~100x slower than the feed (2 ms per Quote against one Quote every 20 us). Real
processes on loopback, bounded in time: the latest Quote of every symbol arrives, each
symbol's seq only goes up, and what the subscriber received plus what the C++ side counted
as conflated is everything published.
"""
import csv
import re

from xlang import PY, PY_EXAMPLES, ROOT, cpp_example, procs, py_env, require  # noqa: F401

QUOTES = 20_000
SYMBOLS = ("AAPL", "MSFT", "ES", "EURUSD")  # quote i is for SYMBOLS[i % 4], seq i


def kv(line):
    return {k: int(v) for k, v in (p.split("=") for p in line.split()) if v.lstrip("-").isdigit()}


def start_market(procs, *extra, quotes=QUOTES):
    return procs.start("market_data_gateway", [
        require(cpp_example("market_data_gateway")), "--topic", "--quotes", quotes,
        "--interval-us", 20, "--wait-subscribers", 1, "--timeout", 120, *extra])


def start_subscriber(procs, where, csv_path):
    return procs.start("quote_subscriber.py", [
        PY, PY_EXAMPLES / "quote_subscriber.py", *where, "--window", 4, "--handler-ms", 2,
        "--quotes", QUOTES, "--seconds", 60, "--csv", csv_path, "--stay-subscribed"],
        env=py_env())


def read_rows(path):
    with open(path) as f:
        return [(r["symbol"], int(r["seq"])) for r in csv.DictReader(f)]


def test_a_slow_python_subscriber_gets_the_latest_quote_per_symbol_and_everything_is_counted(
        procs, tmp_path):
    market = start_market(procs, "--strategies", 2)
    endpoint = market.wait_line(r"^market: topic 'quotes' listening on (\S+) as 'market'$").group(1)
    rows_csv = tmp_path / "quotes.csv"
    sub = start_subscriber(procs, ["--endpoint", endpoint], rows_csv)
    assert sub.wait(90) == 0, sub.output() + market.output()

    fed = market.wait_line(r"^market: fed published=(\d+) last=(\S+)$")
    assert int(fed.group(1)) == QUOTES
    last = dict(p.split(":") for p in fed.group(2).split(","))
    last = {sym: int(seq) for sym, seq in last.items()}
    assert last == {sym: QUOTES - 4 + i for i, sym in enumerate(SYMBOLS)}

    # the latest Quote of every symbol arrived, and each symbol's seq only went up
    rows = read_rows(rows_csv)
    seen = {}
    for sym, seq in rows:
        assert sym in SYMBOLS and seq % 4 == SYMBOLS.index(sym), (sym, seq)
        assert seq > seen.get(sym, -1), f"{sym}: seq {seq} after {seen.get(sym)}"
        seen[sym] = seq
    assert seen == last
    # ~100x slower than the feed: it handled a small fraction, the newest values
    assert 0 < len(rows) < QUOTES // 10

    out = sub.stdout
    assert f"subscriber: received {len(rows)} of {QUOTES} published" in out, sub.output()
    assert "subscriber: every symbol's seq only went up" in out
    for sym in SYMBOLS:
        assert re.search(rf"^subscriber: {sym} received=\d+ last_seq={last[sym]} ", out, re.M), out
    stale = re.search(r"^subscriber: staleness samples=(\d+) max=(\d+) mean=[\d.]+ final=(\d+) ",
                      out, re.M)
    assert stale and int(stale.group(1)) > 0 and int(stale.group(3)) == 0, out

    assert market.stop() == 0, market.output()
    done = market.wait_line(r"^market: topic 'quotes' (published=.*)$").group(1)
    stats = kv(done)
    assert stats["published"] == QUOTES and stats["subscribers"] == 1, done
    # everything the C++ side sent arrived; what it did not send it counted as replaced by a
    # newer Quote of the symbol (by the exporter, or by the topic before the exporter read it)
    assert stats["sent"] == len(rows), done
    assert stats["sent"] + stats["conflated"] + stats["topic_conflated"] == QUOTES, done
    assert stats["refused_subscriptions"] == 0 and stats["snapshots"] > 0, done
    # the local strategies on the same topic: latest per symbol, in order, all accounted
    for i in (1, 2):
        s = kv(market.wait_line(rf"^market: strategy-{i} (received=.*)$").group(1))
        assert s["out_of_order"] == 0 and s["received"] > 0, s
        assert s["received"] + s["conflated"] == QUOTES, s
    gw = kv(market.wait_line(r"^market: gateway \S+ (.*)$").group(1))
    assert gw["dropped"] == 0, gw


def test_the_subscriber_finds_the_topic_and_the_feed_by_name_in_a_registry(procs, tmp_path):
    registry, port = procs.start_listener(
        "registry", lambda port: [ROOT / "scripts" / "registry", "--endpoint",
                                  f"tcp://127.0.0.1:{port}"],
        env=py_env(), ready=r"^registry: listening on ")
    reg = f"tcp://127.0.0.1:{port}"
    market = start_market(procs, "--registry", reg, "--strategies", 0)
    endpoint = market.wait_line(rf"^market: registered 'market' and 'quotes' at (\S+) with "
                                rf"registry {re.escape(reg)}$").group(1)
    rows_csv = tmp_path / "quotes.csv"
    sub = start_subscriber(procs, ["--registry", reg], rows_csv)
    assert sub.wait(90) == 0, sub.output() + market.output()
    assert f"subscriber: found 'quotes' at {endpoint} via registry {reg}" in sub.stdout, \
        sub.output()
    rows = read_rows(rows_csv)
    final = {}
    for sym, seq in rows:
        assert seq > final.get(sym, -1), (sym, seq)
        final[sym] = seq
    assert final == {sym: QUOTES - 4 + i for i, sym in enumerate(SYMBOLS)}
    assert market.stop() == 0, market.output()
    stats = kv(market.wait_line(r"^market: topic 'quotes' (published=.*)$").group(1))
    assert stats["sent"] == len(rows)
    assert stats["sent"] + stats["conflated"] + stats["topic_conflated"] == QUOTES, stats
    assert registry.stop() == 0, registry.output()


def test_bad_topic_options_are_refused_naming_the_value(procs):
    exe = require(cpp_example("market_data_gateway"))
    for args, text in ((["--topic", "--serve"], "--topic and --serve"),
                       (["--topic", "--strategies", "17"], "--strategies 17 is outside 0..16"),
                       (["--topic", "--max-window", "0"], "--max-window 0 is outside"),
                       (["--topic", "--topic-name", "market"], "--topic-name 'market'")):
        p = procs.start("market_data_gateway", [exe, *args])
        assert p.wait(20) == 2, p.output()
        assert text in p.stderr, p.output()
    p = procs.start("market_data_gateway", [exe, "--topic", "--capacity", "1", "--timeout", 5])
    assert p.wait(20) == 1, p.output()
    assert "capacity 1 is outside 2..2^30" in p.stderr, p.output()
    p = procs.start("quote_subscriber.py", [PY, PY_EXAMPLES / "quote_subscriber.py",
                                            "--endpoint", "tcp://127.0.0.1:1", "--window", 0],
                    env=py_env())
    assert p.wait(20) == 2, p.output()
    assert "--window 0 is outside 1..4096" in p.stderr, p.output()


def test_a_wrong_topic_or_feed_name_ends_the_subscriber_naming_it(procs):
    market = start_market(procs, "--strategies", 0, quotes=0)
    endpoint = market.wait_line(r"^market: topic 'quotes' listening on (\S+) as 'market'$").group(1)
    market.wait_line(r"^market: fed published=0 last=AAPL:-1,MSFT:-1,ES:-1,EURUSD:-1$")
    for flag, name in (("--topic", "ticks"), ("--name", "nobody")):
        sub = procs.start("quote_subscriber.py", [
            PY, PY_EXAMPLES / "quote_subscriber.py", "--endpoint", endpoint, flag, name,
            "--quotes", 10, "--seconds", 20], env=py_env())
        assert sub.wait(40) == 1, sub.output()
        assert f"rejected by {name!r}: Actor {name!r} not found" in sub.stderr, sub.output()
    assert market.stop() == 0, market.output()
    stats = kv(market.wait_line(r"^market: topic 'quotes' (published=.*)$").group(1))
    # the --name run had subscribed to 'quotes' and unsubscribed on its way out
    assert stats["published"] == 0 and stats["subscribers"] == 0, stats
