// A C++ market-data actor streaming Quotes to a remote research actor
// (python/examples/research_actor.py) through the gateway, and counting the Signals it
// sends back. A bounded run: --quotes quotes with at most --window unanswered at a time.
//
//   market_data_gateway --peer tcp://localhost:5003 [--peer-name research] [--quotes 10000]
//                       [--window 500] [--endpoint tcp://127.0.0.1:*] [--name market]
//                       [--timeout 30]
//   market_data_gateway --serve [--endpoint tcp://127.0.0.1:*] [--name market] [--timeout 30]
//                       [--registry tcp://127.0.0.1:5555]
//   market_data_gateway --topic [--topic-name quotes] [--quotes 10000] [--interval-us 100]
//                       [--wait-subscribers 0] [--strategies 1] [--capacity 4096]
//                       [--max-subscribers 64] [--max-window 4096] [--endpoint ...]
//                       [--name market] [--timeout 30] [--registry tcp://127.0.0.1:5555]
//
// Prints a summary: quotes sent, signals back (buy / sell / flat), rejects, elapsed time,
// quotes per second, and the gateway's counters. Exit status: 0 every quote answered in
// order; 1 set-up error; 2 --timeout or bad arguments; 3 a Signal out of order or for the
// wrong symbol; 4 the peer rejected quotes.
//
// --serve (python/examples/research_notebook.py): stream nothing at start; print
// "market: listening on ENDPOINT" and answer requests until SIGINT/SIGTERM or --timeout
// (then exit 0). Subscribe{quotes, window} streams that many Quotes to its sender (Signals
// pace the window, as above; a new Subscribe restarts the stream for its sender);
// SnapshotRequest{symbol} is answered with Snapshot{symbol, bid, ask, seq, sent}: the
// latest Quote of that symbol (seq -1 and zero prices if none was sent, or the symbol is
// not one of AAPL, MSFT, ES, EURUSD).
//
// --topic (python/examples/quote_subscriber.py, docs/python.md "Topics"): the feed actor
// (--name) publishes --quotes Quotes, keyed by symbol, into a tern::Topic<Quote> named
// --topic-name, one every --interval-us on average (a timer every max(1 ms, interval)
// publishes what is due: bursts, at the rate); with --wait-subscribers N it starts once N
// remote subscribers subscribed. A tern::TopicExport<Quote> actor named --topic-name serves
// the topic through the gateway: a remote actor sends it TopicSubscribe{window} (Python:
// tern.TopicFeed) and gets the latest Quote per symbol it can keep up with, paced by credit.
// --strategies local actors subscribe too (SlowPolicy::conflate) and check each symbol's
// order. The topic's bounds: --capacity values in its ring, 4 keys (the symbols); the
// exporter's: --max-subscribers remote subscribers (more are refused, counted), at most
// --max-window values in flight to each. Prints "market: topic 'TOPIC' listening on ENDPOINT
// as 'NAME'" at start, "market: fed published=N last=AAPL:SEQ,MSFT:SEQ,ES:SEQ,EURUSD:SEQ"
// once the feed is done, then serves (late subscribers get the latest of every symbol) until
// SIGINT/SIGTERM or --timeout, and prints "market: topic 'TOPIC' published=P subscribers=S
// sent=N conflated=C topic_conflated=T refused=R refused_subscriptions=F snapshots=Q"
// (subscribers: subscribed now; the counters cover every subscriber since the start, those
// that unsubscribed included (TopicExport::totals); sent:
// Quotes handed to the gateway for remote subscribers; conflated: replaced by a newer Quote
// of their symbol before they had credit; topic_conflated: replaced before the exporter read
// them; for one subscriber there from the first Quote, sent + conflated + topic_conflated =
// published) and "market: strategy-I received=R conflated=C out_of_order=O" per local
// strategy. SnapshotRequest{symbol} to --name is answered as in --serve, `sent` being the
// Quotes published so far. Exit status 0, or 3 when a local strategy saw a symbol go back.
//
// --registry ENDPOINT (docs/registry.md): registers the market-data actor under --name with
// that registry (tern::RegistryClient: heartbeats every 2 s, unregisters at exit), prints
// "market: registered 'NAME' at ENDPOINT with registry REGISTRY", so a notebook finds it by
// name (with --topic the exporter too, under --topic-name). A refused name or an unreachable
// registry is a set-up error (exit 1).
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>
#include <tern/registry.hpp>
#include <tern/topic.hpp>
#include <tern/topic_export.hpp>

#include "gateway_messages.hpp"

namespace {

const char* kUsage =
    "usage: market_data_gateway --peer tcp://localhost:5003 [--peer-name research]\n"
    "                           [--quotes 10000] [--window 500] [--endpoint tcp://127.0.0.1:*]\n"
    "                           [--name market] [--timeout SECONDS]\n"
    "       market_data_gateway --serve [--endpoint tcp://127.0.0.1:*] [--name market]\n"
    "                           [--timeout SECONDS] [--registry tcp://127.0.0.1:5555]\n"
    "       market_data_gateway --topic [--topic-name quotes] [--quotes 10000] [--interval-us 100]\n"
    "                           [--wait-subscribers 0] [--strategies 1] [--capacity 4096]\n"
    "                           [--max-subscribers 64] [--max-window 4096] [--endpoint ...]\n"
    "                           [--name market] [--timeout SECONDS] [--registry ENDPOINT]\n"
    "  Streams Quotes to a remote research actor and counts the Signals it answers with.\n"
    "  --serve: waits for Subscribe{quotes, window} and SnapshotRequest{symbol} instead.\n"
    "  --topic: publishes Quotes on a topic that remote (TopicSubscribe) and local\n"
    "           subscribers get conflated per symbol; SnapshotRequest as in --serve.\n"
    "  --registry: registers the market actor by --name there (a notebook looks it up).\n";

using Clock = std::chrono::steady_clock;
constexpr const char* kSymbols[4] = {"AAPL", "MSFT", "ES", "EURUSD"};
constexpr std::uint32_t kKeys = 4;

/// The quotes every mode sends: quote i is for kSymbols[i % 4], seq i, a random walk per
/// symbol with a one-tick spread.
struct QuoteWalk {
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  double mids[kKeys] = {187.25, 411.10, 5230.50, 1.0850};

  example::Quote make(std::uint64_t i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    double& mid = mids[i % kKeys];
    mid += (static_cast<double>(state % 5) - 2.0) * 0.01;
    example::Quote q;
    std::memcpy(q.symbol, kSymbols[i % kKeys], std::strlen(kSymbols[i % kKeys]));
    q.bid = mid - 0.005;
    q.ask = mid + 0.005;
    q.seq = static_cast<std::int64_t>(i);
    return q;
  }
};

/// The topic's conflation key: the symbol's index, kKeys (not a key: counted as bad_keys by
/// the topic) for any other symbol.
std::uint32_t symbol_key(const example::Quote& q) {
  for (std::uint32_t k = 0; k < kKeys; ++k)
    if (std::strncmp(q.symbol, kSymbols[k], sizeof q.symbol) == 0) return k;
  return kKeys;
}

/// SnapshotRequest's answer from the latest quote per symbol (seq -1: none).
example::Snapshot snapshot_of(const example::SnapshotRequest& r, const std::int64_t (&last_seq)[kKeys],
                              const double (&mids)[kKeys], std::uint64_t sent) {
  example::Snapshot snap;
  std::memcpy(snap.symbol, r.symbol, sizeof snap.symbol);
  for (std::uint32_t i = 0; i < kKeys; ++i) {
    if (std::strncmp(r.symbol, kSymbols[i], sizeof r.symbol) != 0 || last_seq[i] < 0) continue;
    snap.bid = mids[i] - 0.005;
    snap.ask = mids[i] + 0.005;
    snap.seq = last_seq[i];
  }
  snap.sent = static_cast<std::int64_t>(sent);
  return snap;
}

class MarketData : public tern::Actor {
 public:
  MarketData(tern::ActorRef research, std::uint64_t quotes, std::uint64_t window, bool serve)
      : research_(research), quotes_(quotes), window_(window ? window : 1), serve_(serve) {
    handle<&MarketData::on_start>();
    handle<&MarketData::on_signal>();
    handle<&MarketData::on_reject>();
    handle<&MarketData::on_subscribe>();
    handle<&MarketData::on_snapshot_request>();
  }

  // Read by main() after Manager::end().
  std::uint64_t sent = 0, signals = 0, buys = 0, sells = 0, flats = 0, rejects = 0;
  std::uint64_t subscriptions = 0, snapshots = 0;
  double strength_sum = 0;
  int exit_code = -1;
  std::string error;
  Clock::time_point t_start, t_end;

  void wait_done(std::chrono::duration<double> timeout) {
    std::unique_lock lock(mu_);
    // --serve: a finished stream does not end the run; only a signal, --timeout or release.
    cv_.wait_for(lock, timeout, [&] { return (finished_ && !serve_) || released_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }

 private:
  void on_start(const tern::Start&) {
    t_start = Clock::now();
    if (serve_) return;  // wait for a Subscribe
    if (quotes_ == 0) return finish(0);
    while (sent < quotes_ && sent < window_) send_quote();
  }
  void on_signal(const example::Signal& s) {
    if (exit_code >= 0) return;
    const auto expected = static_cast<std::int64_t>(signals + rejects);
    if (s.seq != expected || std::strncmp(s.symbol, kSymbols[expected % 4], sizeof s.symbol)) {
      error = "expected the Signal for quote " + std::to_string(expected) + ", got seq " +
              std::to_string(s.seq) + " for '" + std::string(s.symbol, strnlen(s.symbol, 16)) + "'";
      return finish(3);
    }
    ++signals;
    (s.side > 0 ? buys : s.side < 0 ? sells : flats) += 1;
    strength_sum += s.strength;
    next();
  }
  void on_reject(const tern::Reject& r) {
    if (rejects++ == 0)
      error = "rejected by '" + std::string(r.rejected_by()) + "': " + std::string(r.reason());
    next();  // a rejected quote is answered too: keep the stream going
  }
  void on_subscribe(const example::Subscribe& s) {
    if (s.quotes < 0 || s.window < 0) return;  // nothing sensible to stream
    research_ = sender();
    quotes_ = static_cast<std::uint64_t>(s.quotes);
    window_ = s.window > 0 ? static_cast<std::uint64_t>(s.window) : 1;
    sent = signals = buys = sells = flats = rejects = 0;
    strength_sum = 0;
    exit_code = -1;
    error.clear();
    ++subscriptions;
    t_start = Clock::now();
    if (quotes_ == 0) return finish(0);
    while (sent < quotes_ && sent < window_) send_quote();
  }
  void on_snapshot_request(const example::SnapshotRequest& r) {
    ++snapshots;
    (void)reply(snapshot_of(r, last_seq_, walk_.mids, sent));
  }
  void next() {
    if (signals + rejects == quotes_) return finish(rejects ? 4 : 0);
    if (sent < quotes_) send_quote();
  }
  void send_quote() {
    const example::Quote q = walk_.make(sent);
    last_seq_[sent % kKeys] = q.seq;
    (void)research_.send(q);
    ++sent;
  }
  void finish(int code) {
    if (exit_code >= 0) return;
    t_end = Clock::now();
    exit_code = code;
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }

  tern::ActorRef research_;
  std::uint64_t quotes_, window_;
  bool serve_;
  std::int64_t last_seq_[kKeys] = {-1, -1, -1, -1};
  QuoteWalk walk_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  bool released_ = false;
};

using QuoteTopic = tern::Topic<example::Quote>;
using QuoteExport = tern::TopicExport<example::Quote>;

/// --topic: publishes --quotes Quotes into the topic at --interval-us on average, from a
/// periodic timer (what is due each tick, so the rate holds whatever the timer's period);
/// answers SnapshotRequest with the latest Quote published per symbol.
class QuoteFeed : public tern::Actor {
 public:
  QuoteFeed(QuoteTopic& topic, const QuoteExport& exporter, std::uint64_t quotes,
            std::uint64_t interval_us, std::uint64_t wait_subscribers)
      : topic_(topic), exporter_(exporter), quotes_(quotes), interval_us_(interval_us),
        wait_subscribers_(wait_subscribers) {
    handle<&QuoteFeed::on_start>();
    handle<&QuoteFeed::on_timeout>();
    handle<&QuoteFeed::on_snapshot_request>();
  }

  // Read by main() after Manager::end().
  std::uint64_t published = 0, snapshots = 0;

 private:
  void on_start(const tern::Start&) {
    if (quotes_ == 0) return fed();
    // why at least 1 ms: a faster timer costs a wake-up per period on a shared machine;
    // each tick catches up with the rate instead.
    const std::uint64_t period = interval_us_ > 1000 ? interval_us_ : 1000;
    timer_ = start_timer(wait_subscribers_ ? period : 0, period);
  }
  void on_timeout(const tern::Timeout& t) {
    if (t.id != timer_ || published == quotes_) return;
    if (!started_) {
      if (exporter_.subscribers() < wait_subscribers_) return;
      started_ = true;
      t0_ = Clock::now();
    }
    std::uint64_t due = quotes_;
    if (interval_us_) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0_);
      due = std::min<std::uint64_t>(quotes_, static_cast<std::uint64_t>(us.count()) / interval_us_ + 1);
    }
    while (published < due) {
      const example::Quote q = walk_.make(published);
      topic_.publish(q);  // every subscriber conflates: never waits
      last_seq_[published % kKeys] = q.seq;
      ++published;
    }
    if (published < quotes_) return;
    (void)cancel_timer(timer_);
    fed();
  }
  void fed() {
    std::string last;
    for (std::uint32_t k = 0; k < kKeys; ++k)
      last += (k ? "," : "") + std::string(kSymbols[k]) + ":" + std::to_string(last_seq_[k]);
    std::printf("market: fed published=%llu last=%s\n",
                static_cast<unsigned long long>(published), last.c_str());
    std::fflush(stdout);
  }
  void on_snapshot_request(const example::SnapshotRequest& r) {
    ++snapshots;
    (void)reply(snapshot_of(r, last_seq_, walk_.mids, published));
  }

  QuoteTopic& topic_;
  const QuoteExport& exporter_;
  std::uint64_t quotes_, interval_us_, wait_subscribers_;
  std::uint64_t timer_ = 0;
  bool started_ = false;
  Clock::time_point t0_;
  std::int64_t last_seq_[kKeys] = {-1, -1, -1, -1};
  QuoteWalk walk_;
};

/// --topic: a local strategy on the same topic, conflating: the latest Quote per symbol on
/// its own thread. Counts what it got and checks that no symbol goes back.
class Strategy : public tern::Actor {
 public:
  explicit Strategy(QuoteTopic& topic) {
    topic.subscribe<&Strategy::on_quote>(*this, tern::SlowPolicy::conflate);
  }
  // Read by main() after Manager::end().
  std::uint64_t received = 0, out_of_order = 0;

 private:
  void on_quote(const example::Quote& q) {
    const std::uint32_t k = symbol_key(q);
    if (k >= kKeys) return;
    if (q.seq <= last_seq_[k]) ++out_of_order;
    last_seq_[k] = q.seq;
    ++received;
  }
  std::int64_t last_seq_[kKeys] = {-1, -1, -1, -1};
};


struct TopicOptions {
  std::string name, topic_name, registry;
  tern::GatewayConfig gateway;
  std::uint64_t quotes = 0, interval_us = 0, wait_subscribers = 0, strategies = 0;
  std::uint64_t capacity = 0, max_subscribers = 0, max_window = 0;
  double timeout_s = 0;
};

/// --topic: the feed, the exporter and the local strategies; returns the exit status.
int run_topic(const TopicOptions& o) {
  tern::wire::Registry reg;
  reg.add<example::Quote>().add<example::SnapshotRequest>().add<example::Snapshot>();
  tern::add_topic_messages(reg);
  std::unique_ptr<QuoteTopic> topic;  // outlives the Manager (declared first)
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  QuoteExport* exporter = nullptr;
  QuoteFeed* feed = nullptr;
  std::vector<Strategy*> strategies;
  std::unique_ptr<tern::RegistryClient> names;  // closed before mgr.end() destroys the gateway
  try {
    topic = std::make_unique<QuoteTopic>(
        o.topic_name,
        tern::TopicConfig{.capacity = static_cast<std::uint32_t>(o.capacity),
                          .max_subscribers = static_cast<std::uint32_t>(o.strategies + 1),
                          .max_keys = kKeys},
        &symbol_key);
    auto g = std::make_unique<tern::Gateway>(reg, o.gateway);
    gw = g.get();
    mgr.manage("gateway", std::move(g));
    auto ex = std::make_unique<QuoteExport>(
        *topic, tern::TopicExportConfig{.max_subscribers = static_cast<std::uint32_t>(o.max_subscribers),
                                        .max_window = static_cast<std::int32_t>(o.max_window)});
    exporter = ex.get();
    mgr.manage(o.topic_name, std::move(ex));
    for (std::uint64_t i = 1; i <= o.strategies; ++i) {
      auto s = std::make_unique<Strategy>(*topic);
      strategies.push_back(s.get());
      mgr.manage("strategy-" + std::to_string(i), std::move(s));
    }
    auto f = std::make_unique<QuoteFeed>(*topic, *exporter, o.quotes, o.interval_us,
                                         o.wait_subscribers);
    feed = f.get();
    mgr.manage(o.name, std::move(f));
    mgr.init();
    if (!o.registry.empty()) {
      tern::RegistryConfig rc;
      rc.endpoint = o.registry;
      rc.actors = {o.name, o.topic_name};
      names = std::make_unique<tern::RegistryClient>(*gw, rc);
      std::printf("market: registered '%s' and '%s' at %s with registry %s\n", o.name.c_str(),
                  o.topic_name.c_str(), names->actor_endpoint().c_str(), o.registry.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "market: %s\n", e.what());
    return 1;
  }
  std::printf("market: topic '%s' listening on %s as '%s'\n", o.topic_name.c_str(),
              std::string(gw->endpoint()).c_str(), o.name.c_str());
  std::fflush(stdout);
  std::mutex mu;
  std::condition_variable cv;
  bool stopped = false;
  std::thread watchdog([&] {  // --timeout: ends the run like a signal
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::duration<double>(o.timeout_s), [&] { return stopped; });
    mgr.terminate();
  });
  mgr.run();  // until SIGINT/SIGTERM or --timeout
  {
    std::lock_guard lock(mu);
    stopped = true;
    cv.notify_all();
  }
  watchdog.join();
  if (names) names->close();  // unregister while the gateway still exists
  mgr.end();

  // every subscriber since the start, those that unsubscribed included
  const tern::RemoteSubscriberTotals tot = exporter->totals();
  const std::uint64_t sent = tot.sent, conflated = tot.conflated, refused = tot.refused;
  const std::size_t subscribers = exporter->subscribers();
  // by actor name: the exporter's and each strategy's subscription to the topic
  const auto topic_subs = topic->subscription_stats();
  auto topic_sub = [&](const std::string& actor) {
    for (const auto& s : topic_subs)
      if (s.actor == actor) return s;
    return tern::SubscriptionStats{};
  };
  std::printf("market: topic '%s' published=%llu subscribers=%zu sent=%llu conflated=%llu "
              "topic_conflated=%llu refused=%llu refused_subscriptions=%llu snapshots=%llu\n",
              o.topic_name.c_str(), static_cast<unsigned long long>(topic->stats().published),
              subscribers, static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(conflated),
              static_cast<unsigned long long>(topic_sub(o.topic_name).conflated),
              static_cast<unsigned long long>(refused),
              static_cast<unsigned long long>(exporter->refused_subscriptions()),
              static_cast<unsigned long long>(feed->snapshots));
  int rc = 0;
  for (std::size_t i = 0; i < strategies.size(); ++i) {
    const std::string who = "strategy-" + std::to_string(i + 1);
    std::printf("market: %s received=%llu conflated=%llu out_of_order=%llu\n", who.c_str(),
                static_cast<unsigned long long>(strategies[i]->received),
                static_cast<unsigned long long>(topic_sub(who).conflated),
                static_cast<unsigned long long>(strategies[i]->out_of_order));
    if (strategies[i]->out_of_order) rc = 3;
  }
  const tern::GatewayStats s = gw->stats();
  std::printf("market: gateway %s frames_in=%llu messages_in=%llu messages_out=%llu "
              "dropped=%llu backlog=%llu\n",
              std::string(gw->endpoint()).c_str(), static_cast<unsigned long long>(s.frames_in),
              static_cast<unsigned long long>(s.messages_in),
              static_cast<unsigned long long>(s.messages_out),
              static_cast<unsigned long long>(s.dropped_total()),
              static_cast<unsigned long long>(s.backlog));
  if (rc) std::fprintf(stderr, "market: a local strategy saw a symbol's seq go back\n");
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  example::Args args(argc, argv, kUsage);
  const std::string peer = args.str("--peer", "tcp://localhost:5003");
  const std::string peer_name = args.str("--peer-name", "research");
  const std::uint64_t quotes = args.num("--quotes", 10000);
  const std::uint64_t window = args.num("--window", 500);
  const std::string name = args.str("--name", "market");
  tern::GatewayConfig cfg;
  cfg.bind = args.str("--endpoint", "tcp://127.0.0.1:*");
  const double timeout_s = std::stod(args.str("--timeout", "30"));
  const bool serve = args.flag("--serve");
  const std::string registry = args.str("--registry", "");
  const bool topic = args.flag("--topic");
  TopicOptions t;
  t.topic_name = args.str("--topic-name", "quotes");
  t.interval_us = args.num("--interval-us", 100);
  t.wait_subscribers = args.num("--wait-subscribers", 0);
  t.strategies = args.num("--strategies", 1);
  t.capacity = args.num("--capacity", 4096);
  t.max_subscribers = args.num("--max-subscribers", 64);
  t.max_window = args.num("--max-window", 4096);
  args.done();
  if (topic) {
    if (serve) args.fail("--topic and --serve are two modes: pick one");
    if (t.strategies > 16)
      args.fail("--strategies " + std::to_string(t.strategies) + " is outside 0..16");
    if (t.capacity > (1u << 30))  // the topic refuses 0..1 itself, naming the value
      args.fail("--capacity " + std::to_string(t.capacity) + " is outside 2..2^30");
    if (t.max_subscribers == 0 || t.max_subscribers > 65536)
      args.fail("--max-subscribers " + std::to_string(t.max_subscribers) + " is outside 1..65536");
    if (t.max_window == 0 || t.max_window > 65536)
      args.fail("--max-window " + std::to_string(t.max_window) + " is outside 1..65536");
    if (t.topic_name.empty() || t.topic_name == name || t.topic_name == "gateway")
      args.fail("--topic-name '" + t.topic_name + "' must be a name of its own (not --name, "
                "not 'gateway')");
    t.name = name;
    t.registry = registry;
    t.gateway = cfg;
    t.quotes = quotes;
    t.timeout_s = timeout_s;
    return run_topic(t);
  }

  tern::wire::Registry reg;
  reg.add<example::Quote>().add<example::Signal>();
  reg.add<example::Subscribe>().add<example::SnapshotRequest>().add<example::Snapshot>();
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  MarketData* md = nullptr;
  std::unique_ptr<tern::RegistryClient> names;  // closed before mgr.end() destroys the gateway
  try {
    auto g = std::make_unique<tern::Gateway>(reg, cfg);
    gw = g.get();
    const tern::ActorRef research = g->remote(peer_name, peer);
    mgr.manage("gateway", std::move(g));
    auto m = std::make_unique<MarketData>(research, quotes, window, serve);
    md = m.get();
    mgr.manage(name, std::move(m));
    mgr.init();
    if (!registry.empty()) {
      tern::RegistryConfig rc;
      rc.endpoint = registry;
      rc.actors = {name};
      names = std::make_unique<tern::RegistryClient>(*gw, rc);
      std::printf("market: registered '%s' at %s with registry %s\n", name.c_str(),
                  names->actor_endpoint().c_str(), registry.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "market: %s\n", e.what());
    return 1;
  }
  if (serve) {
    std::printf("market: listening on %s as '%s'\n", std::string(gw->endpoint()).c_str(),
                name.c_str());
    std::fflush(stdout);
  }
  std::thread watchdog([&] {
    md->wait_done(std::chrono::duration<double>(timeout_s));
    mgr.terminate();
  });
  mgr.run();
  const bool done = md->finished();
  md->release();
  watchdog.join();
  if (names) names->close();  // unregister while the gateway still exists
  mgr.end();

  const tern::GatewayStats s = gw->stats();
  if (serve) {
    std::printf("market: served %llu subscriptions and %llu snapshots; the last stream: %llu "
                "quotes, %llu signals back, %llu rejects\n",
                static_cast<unsigned long long>(md->subscriptions),
                static_cast<unsigned long long>(md->snapshots),
                static_cast<unsigned long long>(md->sent),
                static_cast<unsigned long long>(md->signals),
                static_cast<unsigned long long>(md->rejects));
    return 0;
  }
  const double ms =
      std::chrono::duration<double, std::milli>((done ? md->t_end : Clock::now()) - md->t_start)
          .count();
  std::printf("market: %llu quotes to '%s' at %s, %llu signals back (buy %llu, sell %llu, "
              "flat %llu, mean strength %.3f), %llu rejects, %.0f ms, %.0f quotes/s\n",
              static_cast<unsigned long long>(md->sent), peer_name.c_str(), peer.c_str(),
              static_cast<unsigned long long>(md->signals),
              static_cast<unsigned long long>(md->buys),
              static_cast<unsigned long long>(md->sells),
              static_cast<unsigned long long>(md->flats),
              md->signals ? md->strength_sum / static_cast<double>(md->signals) : 0.0,
              static_cast<unsigned long long>(md->rejects), ms,
              ms > 0 ? 1e3 * static_cast<double>(md->signals) / ms : 0.0);
  std::printf("market: gateway %s frames_in=%llu messages_in=%llu messages_out=%llu "
              "rejects_received=%llu dropped=%llu backlog=%llu\n",
              std::string(gw->endpoint()).c_str(), static_cast<unsigned long long>(s.frames_in),
              static_cast<unsigned long long>(s.messages_in),
              static_cast<unsigned long long>(s.messages_out),
              static_cast<unsigned long long>(s.rejects_received),
              static_cast<unsigned long long>(s.dropped_total()),
              static_cast<unsigned long long>(s.backlog));
  if (!done) {
    std::fprintf(stderr, "market: timeout after %gs: %llu of %llu quotes answered\n", timeout_s,
                 static_cast<unsigned long long>(md->signals + md->rejects),
                 static_cast<unsigned long long>(quotes));
    return 2;
  }
  if (md->exit_code != 0) std::fprintf(stderr, "market: %s\n", md->error.c_str());
  return md->exit_code;
}
