// slow_sink: a deliberately slow C++ consumer for the cross-language tests
// (tests/integration/test_slow_consumer.py). A Manager with a Gateway and one "sink" actor
// that handles SinkQuote{symbol, bid, ask, seq} (its own wire name, so a test process can
// register it beside other Quote types) at most --rate messages per second (its handler
// sleeps to keep that pace), so a fast sender meets back-pressure: the sink's mailbox fills,
// the gateway stops reading, ZeroMQ's queues and the sender's backlog fill behind it.
//
//   slow_sink [--endpoint tcp://127.0.0.1:*] [--name sink] [--rate 20000] [--stats-ms 200]
//
// Prints "sink: listening on ENDPOINT as 'NAME'", a stats line every --stats-ms and, after
// SIGTERM/SIGINT, a final one ("sink: done ..."):
//   received=N (Quotes handled) next_seq=S (one past the highest seq) gaps=G (seqs skipped)
//   bad=B (a seq repeated or out of order) rejects=R dropped=D (the gateway's drop total)
// Exit status: 0 after SIGTERM/SIGINT, 1 set-up error, 2 bad arguments.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <tern/gateway.hpp>
#include <tern/tern.hpp>

namespace {

struct Quote {
  static constexpr tern::MessageId message_id = 700;
  char symbol[16] = {};
  double bid = 0, ask = 0;
  std::int64_t seq = 0;
  TERN_WIRE_AS("SinkQuote", Quote, symbol, bid, ask, seq)
};

struct Options {
  std::string endpoint = "tcp://127.0.0.1:*";
  std::string name = "sink";
  std::uint64_t rate = 20000;
  std::uint64_t stats_ms = 200;
};

class Sink : public tern::Actor {
 public:
  Sink(const Options& o, tern::Gateway* gw) : o_(o), gw_(gw) {
    handle<&Sink::on_start>();
    handle<&Sink::on_tick>();
    handle<&Sink::on_quote>();
  }

  void print_stats(const char* what) {
    const tern::GatewayStats s = gw_->stats();
    std::printf("sink: %s received=%" PRIu64 " next_seq=%" PRId64 " gaps=%" PRIu64
                " bad=%" PRIu64 " rejects=%" PRIu64 " dropped=%" PRIu64 "\n",
                what, received_, next_seq_, gaps_, bad_, s.rejects_sent, s.dropped_total());
    std::fflush(stdout);
  }

 private:
  void on_start(const tern::Start&) {
    t0_ = std::chrono::steady_clock::now();
    if (o_.stats_ms) start_timer(o_.stats_ms * 1000, o_.stats_ms * 1000);
  }

  void on_tick(const tern::Timeout&) { print_stats("stats"); }

  void on_quote(const Quote& q) {
    if (received_ == 0) t0_ = std::chrono::steady_clock::now();  // pace from the first
    ++received_;
    if (q.seq < next_seq_) ++bad_;
    else if (q.seq > next_seq_) gaps_ += static_cast<std::uint64_t>(q.seq - next_seq_);
    if (q.seq >= next_seq_) next_seq_ = q.seq + 1;
    // Keep the pace: received_ messages may take received_ / rate seconds. Sleeping only
    // when ahead by a millisecond or more keeps the sleeps few and the rate close.
    if (o_.rate) {
      const auto due = t0_ + std::chrono::microseconds(received_ * 1000000 / o_.rate);
      if (due - std::chrono::steady_clock::now() >= std::chrono::milliseconds(1))
        std::this_thread::sleep_until(due);
    }
  }

  const Options& o_;
  tern::Gateway* gw_;
  std::chrono::steady_clock::time_point t0_{};
  std::uint64_t received_ = 0, gaps_ = 0, bad_ = 0;
  std::int64_t next_seq_ = 0;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("usage: slow_sink [--endpoint BIND] [--name NAME] [--rate MSGS_PER_S]"
                  " [--stats-ms MS]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "slow_sink: %s needs a value\n", argv[i]);
      return false;
    }
    const char* v = argv[++i];
    auto number = [&](std::uint64_t& out) {
      char* end = nullptr;
      out = std::strtoull(v, &end, 10);
      if (!*v || *end || *v == '-') {
        std::fprintf(stderr, "slow_sink: %s: not a number: '%s'\n", argv[i - 1], v);
        return false;
      }
      return true;
    };
    if (a == "--endpoint") o.endpoint = v;
    else if (a == "--name") o.name = v;
    else if (a == "--rate") { if (!number(o.rate)) return false; }
    else if (a == "--stats-ms") { if (!number(o.stats_ms)) return false; }
    else {
      std::fprintf(stderr, "slow_sink: unknown option '%s'\n", argv[i - 1]);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  tern::wire::Registry reg;
  reg.add<Quote>();
  tern::GatewayConfig cfg;
  cfg.bind = o.endpoint;
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  try {
    auto g = std::make_unique<tern::Gateway>(reg, cfg);
    gw = g.get();
    mgr.manage("gateway", std::move(g));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "slow_sink: %s\n", e.what());
    return 1;
  }
  auto sink = std::make_unique<Sink>(o, gw);
  Sink* s = sink.get();
  mgr.manage(o.name, std::move(sink));
  mgr.init();
  std::printf("sink: listening on %.*s as '%s'\n", static_cast<int>(gw->endpoint().size()),
              gw->endpoint().data(), o.name.c_str());
  std::fflush(stdout);
  mgr.run();  // until SIGTERM/SIGINT
  mgr.end();
  s->print_stats("done");
  return 0;
}
