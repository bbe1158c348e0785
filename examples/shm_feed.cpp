// The feed side of the shared-memory example (examples/shm_strategy.cpp is the other side;
// `scripts/example shm` runs both). A process with a tern::ShmNode named "feed" that exports
// its "feed" actor (so the strategy's replies can reach it) and connects to
// shm://strategy/strategy: a remote actor in another process, used as an ordinary ActorRef.
//
// Every --interval-us the feed actor sends a Quote (4 symbols, random-walk prices) stamped
// with its steady clock; the strategy answers some with an Order that carries that stamp
// back, and the feed records quote -> order round trips in a tern::Histogram.
//
//   build/examples/shm_feed [--seconds S] [--interval-us N] [--dir /dev/shm]
//                           [--wake futex|spin|yield] [--connect-ms N] [--grace-ms N]
//
// After --seconds (or SIGINT/SIGTERM) it stops quoting, waits --grace-ms (200) for the last
// orders and prints a summary:
//   feed: quotes sent N (refused R), orders received K (buy B, sell S)
//   feed: quote -> order round trip (us): p50 .. p90 .. p99 .. p99.9 .. max .. (K samples)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include <tern/histogram.hpp>
#include <tern/shm.hpp>
#include <tern/tern.hpp>

#include "shm_messages.hpp"

namespace {

using shm_example::Order;
using shm_example::Quote;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Feed : public tern::Actor {
 public:
  Feed(std::uint64_t interval_us, std::uint64_t quotes_to_send, std::uint64_t grace_ms)
      : interval_us_(interval_us), quotes_to_send_(quotes_to_send), grace_ms_(grace_ms) {
    handle<&Feed::on_start>();
    handle<&Feed::on_timeout>();
    handle<&Feed::on_order>();
    for (double& p : mid_) p = 100.0;
  }

  void on_start(const tern::Start&) { tick_ = start_timer(interval_us_, interval_us_); }

  void on_timeout(const tern::Timeout& t) {
    if (t.id != tick_) {  // the grace period after the last quote is over
      terminate();
      return;
    }
    if (sent >= quotes_to_send_) {
      cancel_timer(tick_);
      start_timer(grace_ms_ * 1000);  // the last orders are on their way
      return;
    }
    const std::uint32_t s = static_cast<std::uint32_t>(sent % 4);
    mid_[s] += (rng_() & 1) ? 0.01 : -0.01;
    Quote q;
    q.seq = sent;
    q.bid = mid_[s] - 0.005;
    q.ask = mid_[s] + 0.005;
    std::memcpy(q.symbol, shm_example::kSymbols[s], std::strlen(shm_example::kSymbols[s]));  // <= 6 chars, NUL-padded
    q.sent_ns = steady_ns();
    // try_send: a quote the strategy has no room for is stale by the next one; count it.
    // The sender is this actor (exported), so the strategy's reply() comes back here.
    if (strategy_.try_send(q) == tern::SendResult::ok)
      ++sent;
    else
      ++refused, ++sent;
  }

  void on_order(const Order& o) {
    rtt_ns.record(static_cast<std::uint64_t>(steady_ns() - o.quote_sent_ns));
    ++(o.side > 0 ? buys : sells);
  }

  tern::ActorRef strategy_;  // set before Manager::init()
  tern::Histogram rtt_ns;    // read after Manager::end()
  std::uint64_t sent = 0, refused = 0, buys = 0, sells = 0;

 private:
  std::uint64_t interval_us_, quotes_to_send_, grace_ms_;
  std::uint64_t tick_ = 0;
  std::minstd_rand rng_{42};
  double mid_[4];
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "shm_feed: %s\nusage: shm_feed [--seconds S] [--interval-us N] [--dir DIR] "
               "[--wake futex|spin|yield] [--connect-ms N] [--grace-ms N]\n",
               why.c_str());
  std::exit(2);
}

std::uint64_t number(const std::string& opt, const std::string& v, std::uint64_t lo, std::uint64_t hi) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end || v[0] == '-' || n < lo || n > hi)
    usage(opt + ": '" + v + "' is not a number in " + std::to_string(lo) + ".." + std::to_string(hi));
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/dev/shm";
  tern::Wake wake = tern::Wake::futex;
  std::uint64_t seconds = 3, interval_us = 100, connect_ms = 10'000, grace_ms = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage("unknown option or missing value: '" + a + "'");
    const std::string v = argv[++i];
    if (a == "--dir") dir = v;
    else if (a == "--seconds") seconds = number(a, v, 1, 3600);
    else if (a == "--interval-us") interval_us = number(a, v, 10, 1'000'000);
    else if (a == "--connect-ms") connect_ms = number(a, v, 0, 600'000);
    else if (a == "--grace-ms") grace_ms = number(a, v, 1, 60'000);
    else if (a == "--wake" && v == "futex") wake = tern::Wake::futex;
    else if (a == "--wake" && v == "spin") wake = tern::Wake::spin;
    else if (a == "--wake" && v == "yield") wake = tern::Wake::yield;
    else if (a == "--wake") usage("--wake: '" + v + "' is not futex, spin or yield");
    else usage("unknown option '" + a + "'");
  }

  tern::Manager m;
  auto* feed = new Feed(interval_us, seconds * 1'000'000 / interval_us, grace_ms);
  m.manage("feed", std::unique_ptr<tern::Actor>(feed), tern::ThreadConfig{.wake = wake});
  try {
    tern::ShmNode node({.name = "feed", .dir = dir});
    node.export_actor(m.find("feed"));  // Orders come back to it: it must be reachable
    node.start();
    // waits up to --connect-ms for the strategy's node to appear; a type whose fingerprint
    // differs there (another Quote layout) throws naming it
    feed->strategy_ = node.remote("shm://strategy/strategy", std::chrono::milliseconds(connect_ms));
    std::printf("feed: connected to shm://strategy/strategy\n");
    std::fflush(stdout);
    m.init();
    m.run();  // until the feed is done, or SIGINT / SIGTERM
    m.end();
    const tern::Histogram& h = feed->rtt_ns;
    std::printf("feed: quotes sent %llu (refused %llu), orders received %llu (buy %llu, sell %llu)\n",
                static_cast<unsigned long long>(feed->sent - feed->refused),
                static_cast<unsigned long long>(feed->refused),
                static_cast<unsigned long long>(feed->buys + feed->sells),
                static_cast<unsigned long long>(feed->buys), static_cast<unsigned long long>(feed->sells));
    auto us = [&](double p) { return static_cast<double>(h.value_at_percentile(p)) / 1000.0; };
    std::printf("feed: quote -> order round trip (us): p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f "
                "(%llu samples)\n",
                us(50), us(90), us(99), us(99.9), static_cast<double>(h.max()) / 1000.0,
                static_cast<unsigned long long>(h.count()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "feed: %s\n", e.what());
    return 1;
  }
  return 0;
}
