// stream_peer: the C++ side of the cross-language integration tests (tests/integration).
// A Manager with a Gateway and one "market" actor that streams
// Quote{symbol, bid, ask, seq} to a remote actor (python/examples/research_actor.py, or a
// bare PULL socket) and checks every Signal{symbol, side, strength, seq} that comes back.
//
//   stream_peer --peer tcp://localhost:5003 --peer-name research --count 10000 --replies
//   stream_peer --peer tcp://localhost:5003 --rate 2000            (until SIGTERM)
//   stream_peer --peer tcp://localhost:5003 --case missing-field   (one bad Quote, wait for
//                                                                   the peer's Reject)
//
// The quotes are built so that research_actor.py's model answers them predictably: symbol
// S[seq % 4], a 1.0 spread and a mid that rises by 0.5 per quote of a symbol, so every
// Signal is side +1 / strength 0.5, except a symbol's first quote seen by that peer
// process (side 0 / strength 0: counted as `firsts`).
//
// Prints "stream: listening on ENDPOINT", then a stats line every --stats-ms and a final
// one ("stream: done ..."):
//   t_ms ticks sent out signals firsts gaps bad rejects backlog dropped
// Exit status: 0 done (or stopped by SIGTERM/SIGINT when streaming without --count);
// 1 set-up error; 2 bad arguments; 3 --timeout (with --count or --case); 4 a wrong Signal.
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <tern/gateway.hpp>
#include <tern/tern.hpp>

namespace {

constexpr const char* kSymbols[4] = {"AAPL", "MSFT", "ES", "EURUSD"};

struct Quote {
  static constexpr tern::MessageId message_id = 700;
  char symbol[16] = {};
  double bid = 0, ask = 0;
  std::int64_t seq = 0;
  TERN_WIRE(Quote, symbol, bid, ask, seq)
};
struct Signal {
  static constexpr tern::MessageId message_id = 701;
  char symbol[16] = {};
  std::int64_t side = 0;
  double strength = 0;
  std::int64_t seq = 0;
  TERN_WIRE(Signal, symbol, side, strength, seq)
};
// Probes (--case): the same wire name with a payload the peer must refuse.
struct QuoteNoAsk {
  static constexpr tern::MessageId message_id = 710;
  char symbol[16] = {};
  double bid = 0;
  std::int64_t seq = 0;
  TERN_WIRE_AS("Quote", QuoteNoAsk, symbol, bid, seq)
};
struct QuoteTextSeq {
  static constexpr tern::MessageId message_id = 711;
  char symbol[16] = {};
  double bid = 0, ask = 0;
  char seq[16] = {};
  TERN_WIRE_AS("Quote", QuoteTextSeq, symbol, bid, ask, seq)
};
struct Bogus {
  static constexpr tern::MessageId message_id = 712;
  std::int32_t x = 0;
  TERN_WIRE(Bogus, x)
};

Quote make_quote(std::int64_t seq) {
  Quote q;
  const char* sym = kSymbols[seq % 4];
  std::memcpy(q.symbol, sym, std::strlen(sym));
  // why these numbers: exact in binary, so the peer's arithmetic gives exactly 0.5.
  q.bid = 100.0 + 0.5 * static_cast<double>(seq / 4);
  q.ask = q.bid + 1.0;
  q.seq = seq;
  return q;
}

struct Options {
  std::string endpoint = "tcp://127.0.0.1:*";
  std::string peer;
  std::string peer_name = "research";
  std::string name = "market";
  std::string probe;  // --case
  std::uint64_t count = 0;
  std::uint64_t rate = 0;
  std::uint64_t window = 1000;
  std::uint64_t stats_ms = 500;
  double timeout_s = 60;
  int linger_ms = 5000;
  bool replies = false;
};

std::uint64_t outbound_drops(const tern::GatewayStats& s) {
  using D = tern::GatewayDrop;
  return s.drops(D::unregistered_type) + s.drops(D::encode_failed) + s.drops(D::bad_endpoint) +
         s.drops(D::peer_backlog_full) + s.drops(D::send_failed);
}

class Market : public tern::Actor {
 public:
  Market(const Options& o, tern::Gateway* gw, tern::ActorRef peer)
      : o_(o), gw_(gw), peer_(peer) {
    handle<&Market::on_start>();
    handle<&Market::on_tick>();
    handle<&Market::on_signal>();
    handle<&Market::on_reject>();
  }

  int exit_code = 3;  // read after Manager::end()

  void print_stats(const char* what) {
    const tern::GatewayStats s = gw_->stats();
    std::printf("stream: %s t_ms=%" PRIu64 " ticks=%" PRIu64 " sent=%" PRIu64 " out=%" PRIu64
                " signals=%" PRIu64 " firsts=%" PRIu64 " gaps=%" PRIu64 " bad=%" PRIu64
                " rejects=%" PRIu64 " backlog=%" PRIu64 " dropped=%" PRIu64 "\n",
                what, elapsed_ms(), ticks_, sent_, s.messages_out, signals_, firsts_, gaps_, bad_,
                rejects_, s.backlog, s.dropped_total());
    std::fflush(stdout);
  }

 private:
  std::uint64_t elapsed_ms() const {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - t0_)
                                          .count());
  }

  void on_start(const tern::Start&) {
    t0_ = std::chrono::steady_clock::now();
    next_stats_ = o_.stats_ms;
    if (!o_.probe.empty()) send_probe();
    // why 1 ms: the rate and window are topped up per tick; 1 ms keeps a 1000-frame window
    // from capping throughput below ~1M msgs/s.
    start_timer(1000, 1000);
  }

  void send_probe() {
    const std::string& c = o_.probe;
    tern::SendResult r = tern::SendResult::no_target;
    if (c == "unknown-actor") {
      r = gw_->remote("nobody", o_.peer).send(make_quote(0), self());
    } else if (c == "unknown-type") {
      r = peer_.send(Bogus{7}, self());
    } else if (c == "missing-field") {
      QuoteNoAsk q;
      std::memcpy(q.symbol, "AAPL", 4);
      q.bid = 100;
      r = peer_.send(q, self());
    } else if (c == "mistyped-field") {
      QuoteTextSeq q;
      std::memcpy(q.symbol, "AAPL", 4);
      q.bid = 100;
      q.ask = 101;
      std::memcpy(q.seq, "seven", 5);
      r = peer_.send(q, self());
    }
    if (r != tern::SendResult::ok) {
      std::fprintf(stderr, "stream: could not send the %s probe\n", c.c_str());
      finish(1);
    }
  }

  void on_tick(const tern::Timeout&) {
    ++ticks_;
    const std::uint64_t now_ms = elapsed_ms();
    if (o_.stats_ms && now_ms >= next_stats_) {
      print_stats("stats");
      next_stats_ = now_ms + o_.stats_ms;
    }
    if (done_) return;
    if ((o_.count || !o_.probe.empty()) && static_cast<double>(now_ms) > o_.timeout_s * 1000.0) {
      std::fprintf(stderr, "stream: timeout after %gs\n", o_.timeout_s);
      finish(3);
      return;
    }
    if (!o_.probe.empty()) return;
    top_up(now_ms);
    check_done();
  }

  void top_up(std::uint64_t now_ms) {
    std::uint64_t budget = o_.count ? o_.count - sent_ : UINT64_MAX;
    if (o_.rate) {
      const std::uint64_t due = o_.rate * now_ms / 1000;
      budget = std::min(budget, due > sent_ ? due - sent_ : 0);
    }
    // Frames not yet handed to ZeroMQ (in the gateway's mailbox or backlog): the window
    // keeps memory bounded whatever the peer's speed.
    const tern::GatewayStats s = gw_->stats();
    const std::uint64_t gone = s.messages_out + outbound_drops(s);
    const std::uint64_t in_flight = sent_ > gone ? sent_ - gone : 0;
    budget = std::min(budget, in_flight < o_.window ? o_.window - in_flight : 0);
    for (std::uint64_t i = 0; i < budget; ++i) {
      if (peer_.try_send(make_quote(static_cast<std::int64_t>(sent_)), self()) !=
          tern::SendResult::ok)
        break;  // the gateway's mailbox is full: next tick
      ++sent_;
    }
  }

  void check_done() {
    if (!o_.count || sent_ < o_.count) return;
    if (o_.replies) {
      if (signals_ >= o_.count) finish(bad_ ? 4 : 0);
      return;
    }
    const tern::GatewayStats s = gw_->stats();
    if (s.messages_out + outbound_drops(s) >= o_.count) finish(bad_ ? 4 : 0);
  }

  void on_signal(const Signal& s) {
    ++signals_;
    if (s.seq != next_seq_) {
      if (s.seq < next_seq_) ++bad_;  // a repeat or reordering
      else ++gaps_;                   // lost while the peer was away
    }
    next_seq_ = s.seq + 1;
    const char* sym = kSymbols[((s.seq % 4) + 4) % 4];
    if (std::strncmp(s.symbol, sym, sizeof s.symbol) != 0) ++bad_;
    if (s.side == 0 && s.strength == 0.0)
      ++firsts_;
    else if (s.side != 1 || s.strength != 0.5)
      ++bad_;
    if (bad_ == 1 && !reported_bad_) {
      reported_bad_ = true;
      std::fprintf(stderr, "stream: wrong Signal{%.16s, %" PRId64 ", %g, %" PRId64 "}\n",
                   s.symbol, s.side, s.strength, s.seq);
    }
    if (!o_.probe.empty()) ++bad_;  // probes expect a Reject, not an answer
    check_done();
  }

  void on_reject(const tern::Reject& r) {
    ++rejects_;
    std::printf("stream: reject message_type=%.*s reason=%.*s rejected_by=%.*s\n",
                static_cast<int>(r.message_type().size()), r.message_type().data(),
                static_cast<int>(r.reason().size()), r.reason().data(),
                static_cast<int>(r.rejected_by().size()), r.rejected_by().data());
    std::fflush(stdout);
    if (!o_.probe.empty()) finish(0);
  }

  void finish(int code) {
    if (done_) return;
    done_ = true;
    exit_code = code;
    terminate();
  }

  const Options& o_;
  tern::Gateway* gw_;
  tern::ActorRef peer_;
  std::chrono::steady_clock::time_point t0_{};
  std::uint64_t next_stats_ = 0;
  std::uint64_t ticks_ = 0, sent_ = 0, signals_ = 0, firsts_ = 0, gaps_ = 0, bad_ = 0,
                rejects_ = 0;
  std::int64_t next_seq_ = 0;
  bool done_ = false, reported_bad_ = false;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: stream_peer --peer ENDPOINT [--peer-name NAME] [--endpoint BIND]\n"
               "                   [--name NAME] [--count N] [--rate MSGS_PER_S] [--window N]\n"
               "                   [--replies] [--stats-ms MS] [--timeout S] [--linger-ms MS]\n"
               "                   [--case unknown-actor|unknown-type|missing-field|mistyped-field]\n"
               "Streams Quotes to a remote research actor and checks its Signals.\n"
               "--count 0 (default) streams until SIGTERM/SIGINT; --rate 0: as fast as the\n"
               "--window of frames not yet handed to ZeroMQ allows (default 1000).\n");
  std::exit(code);
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage(0);
    if (a == "--replies") {
      o.replies = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "stream_peer: %s needs a value\n", argv[i]);
      return false;
    }
    const char* v = argv[++i];
    char* end = nullptr;
    auto number = [&](std::uint64_t& out) {
      out = std::strtoull(v, &end, 10);
      if (!*v || *end || *v == '-') {
        std::fprintf(stderr, "stream_peer: %s: not a number: '%s'\n", argv[i - 1], v);
        return false;
      }
      return true;
    };
    std::uint64_t n = 0;
    if (a == "--endpoint") o.endpoint = v;
    else if (a == "--peer") o.peer = v;
    else if (a == "--peer-name") o.peer_name = v;
    else if (a == "--name") o.name = v;
    else if (a == "--case") o.probe = v;
    else if (a == "--count") { if (!number(o.count)) return false; }
    else if (a == "--rate") { if (!number(o.rate)) return false; }
    else if (a == "--window") { if (!number(o.window) || !o.window) return false; }
    else if (a == "--stats-ms") { if (!number(o.stats_ms)) return false; }
    else if (a == "--linger-ms") { if (!number(n)) return false; o.linger_ms = static_cast<int>(n); }
    else if (a == "--timeout") {
      o.timeout_s = std::strtod(v, &end);
      if (!*v || *end || !(o.timeout_s > 0)) {
        std::fprintf(stderr, "stream_peer: --timeout: not a positive number: '%s'\n", v);
        return false;
      }
    } else {
      std::fprintf(stderr, "stream_peer: unknown option '%s' (try --help)\n", argv[i - 1]);
      return false;
    }
  }
  if (o.peer.empty()) {
    std::fprintf(stderr, "stream_peer: --peer is required\n");
    return false;
  }
  if (!o.probe.empty() && o.probe != "unknown-actor" && o.probe != "unknown-type" &&
      o.probe != "missing-field" && o.probe != "mistyped-field") {
    std::fprintf(stderr, "stream_peer: --case: unknown case '%s'\n", o.probe.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;

  tern::wire::Registry reg;
  reg.add<Signal>();
  if (o.probe == "missing-field") reg.add<QuoteNoAsk>();
  else if (o.probe == "mistyped-field") reg.add<QuoteTextSeq>();
  else reg.add<Quote>();
  if (o.probe == "unknown-type") reg.add<Bogus>();

  tern::GatewayConfig cfg;
  cfg.bind = o.endpoint;
  cfg.linger_ms = o.linger_ms;
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  tern::ActorRef peer;
  try {
    auto g = std::make_unique<tern::Gateway>(reg, cfg);
    gw = g.get();
    peer = gw->remote(o.peer_name, o.peer);
    mgr.manage("gateway", std::move(g));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stream_peer: %s\n", e.what());
    return 1;
  }
  auto market = std::make_unique<Market>(o, gw, peer);
  Market* m = market.get();
  mgr.manage(o.name, std::move(market));
  mgr.init();
  std::printf("stream: listening on %.*s as '%s'\n", static_cast<int>(gw->endpoint().size()),
              gw->endpoint().data(), o.name.c_str());
  std::fflush(stdout);
  mgr.run();  // until the actor finishes, or SIGTERM/SIGINT
  const bool stopped_by_signal = m->exit_code == 3 && !o.count && o.probe.empty();
  mgr.end();
  m->print_stats("done");
  return stopped_by_signal ? 0 : m->exit_code;
}
