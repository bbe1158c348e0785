// topic_peer: a C++ feed on a tern::Topic exported to remote subscribers (tests/integration/
// test_remote_topic.py). A Manager with a Gateway and a TopicExport named "ticks"; a feed
// thread publishes FeedTick{sym, seq, px} over --keys keys, one every --interval-us, for
// --values values once --start-after-ms passed, then one last value per key, then waits.
//
//   topic_peer [--endpoint tcp://127.0.0.1:*] [--values 20000] [--keys 8] [--interval-us 20]
//              [--start-after-ms 0]
//
// Prints "topic: listening on ENDPOINT", "topic: fed published=N" once the feed ends with the
// last seq of every key ("last=K:SEQ,K:SEQ,..."), and after SIGTERM/SIGINT
// "topic: done subscribers=S sent=N conflated=C topic_conflated=T refused=R backlog_max=B
// dropped=D" (sent + conflated + topic_conflated = published for one subscriber that was
// there from the first value).
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
#include <tern/topic_export.hpp>

namespace {

struct FeedTick {
  static constexpr tern::MessageId message_id = 720;
  std::int32_t sym = 0;
  std::int64_t seq = 0;
  double px = 0;
  TERN_WIRE(FeedTick, sym, seq, px)
};
std::uint32_t sym_of(const FeedTick& t) { return static_cast<std::uint32_t>(t.sym); }

struct Options {
  std::string endpoint = "tcp://127.0.0.1:*";
  std::uint64_t values = 20000, keys = 8, interval_us = 20, start_after_ms = 0;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "topic_peer: %s needs a value\n", argv[i]);
      return false;
    }
    const char* v = argv[++i];
    std::uint64_t* num = a == "--values" ? &o.values
                       : a == "--keys" ? &o.keys
                       : a == "--interval-us" ? &o.interval_us
                       : a == "--start-after-ms" ? &o.start_after_ms
                       : nullptr;
    if (a == "--endpoint") {
      o.endpoint = v;
    } else if (num) {
      char* end = nullptr;
      *num = std::strtoull(v, &end, 10);
      if (!*v || *end || *v == '-') {
        std::fprintf(stderr, "topic_peer: %s: not a number: '%s'\n", argv[i - 1], v);
        return false;
      }
    } else {
      std::fprintf(stderr, "topic_peer: unknown option '%s'\n", argv[i - 1]);
      return false;
    }
  }
  if (o.keys == 0 || o.keys > 4096) {
    std::fprintf(stderr, "topic_peer: --keys %" PRIu64 " is outside 1..4096\n", o.keys);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  tern::wire::Registry reg;
  reg.add<FeedTick>();
  tern::add_topic_messages(reg);
  tern::GatewayConfig cfg;
  cfg.bind = o.endpoint;
  tern::Topic<FeedTick> topic(
      "ticks", tern::TopicConfig{.capacity = 1024, .max_keys = static_cast<std::uint32_t>(o.keys)},
      &sym_of);
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  try {
    auto g = std::make_unique<tern::Gateway>(reg, cfg);
    gw = g.get();
    mgr.manage("gateway", std::move(g));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "topic_peer: %s\n", e.what());
    return 1;
  }
  auto ex = std::make_unique<tern::TopicExport<FeedTick>>(topic);
  tern::TopicExport<FeedTick>* exporter = ex.get();
  mgr.manage("ticks", std::move(ex));
  mgr.init();
  std::printf("topic: listening on %.*s\n", static_cast<int>(gw->endpoint().size()),
              gw->endpoint().data());
  std::fflush(stdout);

  std::uint64_t backlog_max = 0;
  std::thread feed([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.start_after_ms));
    std::vector<std::int64_t> last(o.keys, -1);
    auto next = std::chrono::steady_clock::now();
    std::int64_t seq = 0;
    for (std::uint64_t i = 0; i < o.values + o.keys; ++i) {
      const auto k = static_cast<std::int32_t>(i % o.keys);
      topic.publish(FeedTick{k, ++seq, 100.0 + static_cast<double>(seq % 1000) / 100});
      last[static_cast<std::size_t>(k)] = seq;
      backlog_max = std::max(backlog_max, gw->stats().backlog);
      next += std::chrono::microseconds(o.interval_us);
      std::this_thread::sleep_until(next);
    }
    std::string text;
    for (std::uint64_t k = 0; k < o.keys; ++k)
      text += (k ? "," : "") + std::to_string(k) + ":" + std::to_string(last[k]);
    std::printf("topic: fed published=%" PRIu64 " last=%s\n", topic.stats().published,
                text.c_str());
    std::fflush(stdout);
  });
  mgr.run();  // until SIGTERM/SIGINT
  feed.join();
  mgr.end();
  // every subscriber since the start, those that unsubscribed included
  const tern::RemoteSubscriberTotals tot = exporter->totals();
  const std::uint64_t sent = tot.sent, conflated = tot.conflated, refused = tot.refused;
  const std::size_t subscribers = exporter->subscribers();
  // values the exporter itself never saw: conflated by the topic while it was busy
  const std::uint64_t topic_conflated = topic.subscription_stats()[0].conflated;
  std::printf("topic: done subscribers=%zu sent=%" PRIu64 " conflated=%" PRIu64
              " topic_conflated=%" PRIu64 " refused=%" PRIu64 " backlog_max=%" PRIu64
              " dropped=%" PRIu64 "\n",
              subscribers, sent, conflated, topic_conflated, refused, backlog_max,
              gw->stats().dropped_total());
  return 0;
}
