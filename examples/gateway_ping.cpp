// C++ ping for the cross-language ping-pong: N sequential Ping/Pong round trips with a
// remote pong (gateway_pong, or python/examples/pong.py), timed.
//
//   gateway_ping --peer tcp://localhost:5001 [--peer-name pong] [--count 1000]
//                [--endpoint tcp://127.0.0.1:*] [--name ping] [--timeout 30] [--queued]
//                [--curve-key ping.key_secret --curve-allow DIR --curve-peer pong.key]
//
// Prints a summary line and then, like ping.py,
//   ping: count=N p50_us=.. p90_us=.. p99_us=.. max_us=.. round_trips_per_s=.. msgs_per_s=..
// (msgs/s counts the Ping and the Pong). Exit status: 0 every Pong came back with the right
// count; 1 set-up error; 2 --timeout or bad arguments; 3 a wrong Pong; 4 the peer sent a
// Reject (its reason is printed).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>

#include "gateway_messages.hpp"

namespace {

const char* kUsage =
    "usage: gateway_ping --peer tcp://localhost:5001 [--peer-name pong] [--count 1000]\n"
    "                    [--endpoint tcp://127.0.0.1:*] [--name ping] [--timeout SECONDS]\n"
    "                    [--queued] [--advertise tcp://HOST:PORT]\n"
    "                    [--curve-key FILE --curve-allow DIR --curve-peer FILE]\n"
    "  N sequential Ping/Pong round trips; prints p50/p90/p99/max round trip and msgs/s.\n"
    "  --endpoint: our PULL endpoint, where the Pongs come back (default: a free port)\n"
    "  --advertise: the endpoint peers reply to, when --endpoint binds * on another host\n"
    "  --curve-key: our key pair (NAME.key_secret): CURVE on (docs/gateway.md, Security)\n"
    "  --curve-allow: directory of the *.key public certificates we let in (pong's, for\n"
    "                 the Pongs)\n"
    "  --curve-peer: pong's public certificate (NAME.key), the key its endpoint must prove\n";

using Clock = std::chrono::steady_clock;

class PingActor : public tern::Actor {
 public:
  PingActor(tern::ActorRef peer, std::int64_t count) : peer_(peer), count_(count) {
    handle<&PingActor::on_start>();
    handle<&PingActor::on_pong>();
    handle<&PingActor::on_reject>();
    rtts_ns.reserve(static_cast<std::size_t>(count));
  }

  // Read by main() after Manager::end().
  std::vector<std::int64_t> rtts_ns;
  int exit_code = -1;
  std::string error;
  Clock::time_point t_start, t_end;

  /// Blocks until the run finished, the timeout passed, or release() was called.
  void wait_done(std::chrono::duration<double> timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return finished_ || released_; });
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
    if (count_ <= 0) return finish(0);
    send(1);
  }
  void on_pong(const example::Pong& p) {
    const auto now = Clock::now();
    const auto expected = static_cast<std::int64_t>(rtts_ns.size()) + 1;
    if (exit_code >= 0) return;
    if (p.count != expected) {
      error = "expected Pong " + std::to_string(expected) + ", got Pong " + std::to_string(p.count);
      return finish(3);
    }
    rtts_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at_).count());
    if (expected == count_) return finish(0);
    send(expected + 1);
  }
  void on_reject(const tern::Reject& r) {
    error = "rejected by '" + std::string(r.rejected_by()) + "': " + std::string(r.reason());
    finish(4);
  }
  void send(std::int64_t n) {
    sent_at_ = Clock::now();
    (void)peer_.send(example::Ping{n});
  }
  void finish(int code) {
    if (exit_code >= 0) return;
    t_end = Clock::now();
    exit_code = code;
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }

  tern::ActorRef peer_;
  std::int64_t count_;
  Clock::time_point sent_at_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  bool released_ = false;
};

double pct_us(const std::vector<std::int64_t>& sorted, double q) {
  const auto i = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(i, sorted.size() - 1)]) / 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  example::Args args(argc, argv, kUsage);
  const std::string peer = args.str("--peer", "tcp://localhost:5001");
  const std::string peer_name = args.str("--peer-name", "pong");
  const auto count = static_cast<std::int64_t>(args.num("--count", 1000));
  const std::string name = args.str("--name", "ping");
  tern::GatewayConfig cfg;
  cfg.bind = args.str("--endpoint", "tcp://127.0.0.1:*");
  cfg.inline_dispatch = !args.flag("--queued");
  cfg.advertise = args.str("--advertise", "");
  cfg.curve.key_file = args.str("--curve-key", "");
  cfg.curve.allow_dir = args.str("--curve-allow", "");
  const std::string peer_cert = args.str("--curve-peer", "");
  const double timeout_s = std::stod(args.str("--timeout", "30"));
  args.done();

  tern::wire::Registry reg;
  reg.add<example::Ping>().add<example::Pong>();
  tern::Manager mgr;
  PingActor* ping = nullptr;
  try {
    auto gw = std::make_unique<tern::Gateway>(reg, cfg);
    const tern::ActorRef pong =
        peer_cert.empty() ? gw->remote(peer_name, peer)
                          : gw->remote(peer_name, peer, tern::load_curve_public_key(peer_cert));
    mgr.manage("gateway", std::move(gw));
    auto p = std::make_unique<PingActor>(pong, count);
    ping = p.get();
    mgr.manage(name, std::move(p));
    mgr.init();  // Start: the first Ping leaves now
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ping: %s\n", e.what());
    return 1;
  }
  // The watchdog ends run() when the actor is done or the time is up (run() also returns
  // on SIGINT/SIGTERM).
  std::thread watchdog([&] {
    ping->wait_done(std::chrono::duration<double>(timeout_s));
    mgr.terminate();
  });
  mgr.run();
  const bool done = ping->finished();
  ping->release();  // run() may have returned on a signal: let the watchdog go
  watchdog.join();
  mgr.end();

  if (!done || ping->exit_code < 0) {
    std::fprintf(stderr, "ping: timeout after %gs: %zu/%lld pongs from '%s' at %s\n", timeout_s,
                 ping->rtts_ns.size(), static_cast<long long>(count), peer_name.c_str(),
                 peer.c_str());
    return 2;
  }
  if (ping->exit_code != 0) {
    std::fprintf(stderr, "ping: %s\n", ping->error.c_str());
    return ping->exit_code;
  }
  std::vector<std::int64_t> rtts = ping->rtts_ns;
  if (rtts.empty()) {
    std::printf("ping: count=0\n");
    return 0;
  }
  std::sort(rtts.begin(), rtts.end());
  const double secs =
      std::max(std::chrono::duration<double>(ping->t_end - ping->t_start).count(), 1e-9);
  const double rts = static_cast<double>(rtts.size()) / secs;
  std::printf("ping: %zu round trips with '%s' at %s: p50 %.1f us, p99 %.1f us, %.0f msgs/s\n",
              rtts.size(), peer_name.c_str(), peer.c_str(), pct_us(rtts, 0.5),
              pct_us(rtts, 0.99), 2 * rts);
  std::printf("ping: count=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
              "round_trips_per_s=%.0f msgs_per_s=%.0f\n",
              rtts.size(), pct_us(rtts, 0.5), pct_us(rtts, 0.9), pct_us(rtts, 0.99),
              static_cast<double>(rtts.back()) / 1e3, rts, 2 * rts);
  return 0;
}
