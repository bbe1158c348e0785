// The strategy side of the shared-memory example (examples/shm_feed.cpp is the other side;
// `scripts/example shm` runs both). A process of its own with a tern::ShmNode named
// "strategy" that exports one actor, "strategy": the feed process writes Quotes straight into
// that actor's inbound ring in the shared segment, and the actor answers some of them with an
// Order through reply(), which lands in the feed's own segment. No gateway thread, no JSON.
//
// The rule: per symbol, an exponential moving average of the mid; a mid 2 cents below it
// buys at the ask, 2 cents above it sells at the bid.
//
//   build/examples/shm_strategy [--dir /dev/shm] [--wake futex|spin|yield]
//
// Runs until SIGINT or SIGTERM, then prints a summary:
//   strategy: quotes received N, orders sent K (refused R), feeds F
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <tern/shm.hpp>
#include <tern/tern.hpp>

#include "shm_messages.hpp"

namespace {

using shm_example::Order;
using shm_example::Quote;

class Strategy : public tern::Actor {
 public:
  Strategy() { handle<&Strategy::on_quote>(); }

  void on_quote(const Quote& q) {
    ++quotes;
    const int s = symbol_index(q.symbol);
    if (s < 0) return;
    const double mid = (q.bid + q.ask) / 2;
    double& ema = ema_[s];
    if (ema == 0) ema = mid;
    const double dev = mid - ema;
    ema += 0.05 * dev;
    if (std::fabs(dev) < 0.02) return;
    Order o;
    o.quote_seq = q.seq;
    o.quote_sent_ns = q.sent_ns;
    o.side = dev < 0 ? +1 : -1;
    o.px = o.side > 0 ? q.ask : q.bid;
    o.qty = 100;
    std::memcpy(o.symbol, q.symbol, sizeof o.symbol);
    // reply(): back to the actor that sent the quote, in the feed's process (it is exported
    // by the feed's ShmNode, so the reply has somewhere to go)
    if (reply(o) == tern::SendResult::ok)
      ++orders;
    else
      ++refused;
  }

  std::uint64_t quotes = 0, orders = 0, refused = 0;  // read after Manager::end()

 private:
  static int symbol_index(const char* sym) {
    for (int i = 0; i < 4; ++i)
      if (std::strncmp(sym, shm_example::kSymbols[i], sizeof Quote::symbol) == 0) return i;
    return -1;
  }
  double ema_[4] = {};
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "shm_strategy: %s\nusage: shm_strategy [--dir DIR] [--wake futex|spin|yield]\n",
               why.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/dev/shm";
  tern::Wake wake = tern::Wake::futex;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(a == "--dir" || a == "--wake" ? a + " needs a value" : "unknown option '" + a + "'");
    const std::string v = argv[++i];
    if (a == "--dir") dir = v;
    else if (a == "--wake" && v == "futex") wake = tern::Wake::futex;
    else if (a == "--wake" && v == "spin") wake = tern::Wake::spin;
    else if (a == "--wake" && v == "yield") wake = tern::Wake::yield;
    else if (a == "--wake") usage("--wake: '" + v + "' is not futex, spin or yield");
    else usage("unknown option '" + a + "'");
  }

  tern::Manager m;
  auto* strategy = new Strategy;
  m.manage("strategy", std::unique_ptr<tern::Actor>(strategy), tern::ThreadConfig{.wake = wake});
  try {
    tern::ShmNode node({.name = "strategy", .dir = dir});
    node.export_actor(m.find("strategy"));  // Quote crosses (trivially copyable, handled)
    node.start();                           // the segment DIR/tern.strategy, mode 0600
    m.init();
    std::printf("strategy: serving shm://strategy/strategy (%s)\n", node.path().c_str());
    std::fflush(stdout);
    m.run();  // until SIGINT / SIGTERM
    m.end();  // the node outlives the exported actor's Manager::end()
    const tern::ShmStats st = node.stats();
    std::printf("strategy: quotes received %llu, orders sent %llu (refused %llu), feeds %llu\n",
                static_cast<unsigned long long>(strategy->quotes),
                static_cast<unsigned long long>(strategy->orders),
                static_cast<unsigned long long>(strategy->refused),
                static_cast<unsigned long long>(st.connections));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strategy: %s\n", e.what());
    return 1;
  }
  return 0;
}
