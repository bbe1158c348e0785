// A C++ market-data actor streaming Quotes to a remote research actor
// (python/examples/research_actor.py) through the gateway, and counting the Signals it
// sends back. A bounded run: --quotes quotes with at most --window unanswered at a time.
//
//   market_data_gateway --peer tcp://localhost:5003 [--peer-name research] [--quotes 10000]
//                       [--window 500] [--endpoint tcp://127.0.0.1:*] [--name market]
//                       [--timeout 30]
//   market_data_gateway --serve [--endpoint tcp://127.0.0.1:*] [--name market] [--timeout 30]
//                       [--registry tcp://127.0.0.1:5555]
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
// --registry ENDPOINT (docs/registry.md): registers the market-data actor under --name with
// that registry (tern::RegistryClient: heartbeats every 2 s, unregisters at exit), prints
// "market: registered 'NAME' at ENDPOINT with registry REGISTRY", so a notebook finds it by
// name. A refused name or an unreachable registry is a set-up error (exit 1).
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>
#include <tern/registry.hpp>

#include "gateway_messages.hpp"

namespace {

const char* kUsage =
    "usage: market_data_gateway --peer tcp://localhost:5003 [--peer-name research]\n"
    "                           [--quotes 10000] [--window 500] [--endpoint tcp://127.0.0.1:*]\n"
    "                           [--name market] [--timeout SECONDS]\n"
    "       market_data_gateway --serve [--endpoint tcp://127.0.0.1:*] [--name market]\n"
    "                           [--timeout SECONDS] [--registry tcp://127.0.0.1:5555]\n"
    "  Streams Quotes to a remote research actor and counts the Signals it answers with.\n"
    "  --serve: waits for Subscribe{quotes, window} and SnapshotRequest{symbol} instead.\n"
    "  --registry: registers the market actor by --name there (a notebook looks it up).\n";

using Clock = std::chrono::steady_clock;
constexpr const char* kSymbols[4] = {"AAPL", "MSFT", "ES", "EURUSD"};

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
    example::Snapshot snap;
    std::memcpy(snap.symbol, r.symbol, sizeof snap.symbol);
    for (int i = 0; i < 4; ++i) {
      if (std::strncmp(r.symbol, kSymbols[i], sizeof r.symbol) != 0 || last_seq_[i] < 0) continue;
      snap.bid = mids_[i] - 0.005;
      snap.ask = mids_[i] + 0.005;
      snap.seq = last_seq_[i];
    }
    snap.sent = static_cast<std::int64_t>(sent);
    ++snapshots;
    (void)reply(snap);
  }
  void next() {
    if (signals + rejects == quotes_) return finish(rejects ? 4 : 0);
    if (sent < quotes_) send_quote();
  }
  void send_quote() {
    // A random walk per symbol, a one-tick spread.
    const std::uint64_t i = sent;
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    double& mid = mids_[i % 4];
    mid += (static_cast<double>(state_ % 5) - 2.0) * 0.01;
    example::Quote q;
    std::memcpy(q.symbol, kSymbols[i % 4], std::strlen(kSymbols[i % 4]));
    q.bid = mid - 0.005;
    q.ask = mid + 0.005;
    q.seq = static_cast<std::int64_t>(i);
    last_seq_[i % 4] = q.seq;
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
  std::int64_t last_seq_[4] = {-1, -1, -1, -1};
  std::uint64_t state_ = 0x9E3779B97F4A7C15ull;
  double mids_[4] = {187.25, 411.10, 5230.50, 1.0850};
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  bool released_ = false;
};

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
  args.done();

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
