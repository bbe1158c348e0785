// Fan-out: one feed to 4 subscribers through a Topic (one write, 4 cursors) beside the same
// feed sent 4 times (4 sends, 4 slot writes), same run, same actors and threads. Then
// conflation: one subscriber 100x slower than the feed, what it received, what it skipped
// and how stale its values were when handled.
//
//   fanout [--messages 1000000] [--subscribers 4] [--rounds 3] [--wake futex|spin|yield]
//          [--conflate-values 200000] [--keys 64] [--json FILE]
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <tern/histogram.hpp>
#include <tern/manager.hpp>
#include <tern/topic.hpp>

#include "bench_util.hpp"

namespace {

struct Tick {  // 16 bytes
  static constexpr tern::MessageId message_id = 7001;
  std::uint32_t sym = 0;
  std::uint32_t pad = 0;
  std::uint64_t ns = 0;  ///< publish time (conflation) or sequence
};
std::uint32_t tick_key(const Tick& t) { return t.sym; }

const char* kUsage =
    "usage: fanout [--messages N] [--subscribers K] [--rounds R] [--wake futex|spin|yield]\n"
    "              [--conflate-values N] [--keys K] [--json FILE]\n"
    "  Topic fan-out (one write, K cursors) beside K sends of the same 16-byte message, and a\n"
    "  conflating subscriber 100x slower than the feed.\n";

class Counter : public tern::Actor {
 public:
  Counter() { handle<&Counter::on_tick>(); }
  void on_tick(const Tick&) { n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
  std::atomic<std::uint64_t> n{0};
};

struct Row {
  double seconds = 0;
  double publish_ns = 0;  ///< feed thread's time per value (publish, or K sends)
};

/// K subscribers; `topic` true: one Topic (backpressure), false: K sends per value.
Row run_fanout(bool topic, std::uint64_t n, std::uint32_t k, tern::Wake wake) {
  tern::Topic<Tick> t("fanout", tern::TopicConfig{.capacity = 4096});
  tern::Manager mgr;
  tern::ThreadConfig tc;
  tc.wake = wake;
  std::vector<Counter*> subs;
  std::vector<tern::ActorRef> refs;
  for (std::uint32_t i = 0; i < k; ++i) {
    auto c = std::make_unique<Counter>();
    if (topic) t.subscribe<&Counter::on_tick>(*c, tern::SlowPolicy::backpressure);
    subs.push_back(c.get());
    refs.push_back(mgr.manage("sub" + std::to_string(i), std::move(c), tc,
                              tern::MailboxConfig{4096}));
  }
  mgr.init();
  const std::uint64_t t0 = bench::now_ns();
  for (std::uint64_t i = 0; i < n; ++i) {
    const Tick v{0, 0, i};
    if (topic) {
      t.publish(v);
    } else {
      for (const tern::ActorRef& r : refs) (void)r.send(v);
    }
  }
  const std::uint64_t t1 = bench::now_ns();
  for (Counter* c : subs)
    while (c->n.load(std::memory_order_acquire) < n) std::this_thread::yield();
  const std::uint64_t t2 = bench::now_ns();
  mgr.end();
  return Row{static_cast<double>(t2 - t0) / 1e9, static_cast<double>(t1 - t0) / static_cast<double>(n)};
}

class Slow : public tern::Actor {
 public:
  Slow(tern::Topic<Tick>& t, std::uint64_t work_ns) : work_ns_(work_ns) {
    t.subscribe<&Slow::on_tick>(*this, tern::SlowPolicy::conflate);
  }
  void on_tick(const Tick& v) {
    const std::uint64_t now = bench::now_ns();
    // only while the feed runs: after it stops every value ages, conflated or not
    if (feeding.load(std::memory_order_relaxed)) stale.record(now > v.ns ? now - v.ns : 0);
    while (bench::now_ns() - now < work_ns_) bench::relax();  // the slow work
  }
  tern::Histogram stale;
  std::atomic<bool> feeding{true};

 private:
  std::uint64_t work_ns_;
};

struct Conflation {
  std::uint64_t published = 0, received = 0, conflated = 0;
  double feed_interval_ns = 0, work_ns = 0;
  tern::Histogram stale;
};

/// A feed that publishes `n` values over `keys` keys, one every `interval_ns`, to a
/// conflating subscriber whose handler takes 100x that.
void run_conflation(std::uint64_t n, std::uint32_t keys, std::uint64_t interval_ns,
                    tern::Wake wake, Conflation& out) {
  tern::Topic<Tick> t("quotes", tern::TopicConfig{.capacity = 1024, .max_keys = keys}, &tick_key);
  tern::Manager mgr;
  tern::ThreadConfig tc;
  tc.wake = wake;
  auto s = std::make_unique<Slow>(t, 100 * interval_ns);
  Slow& slow = *s;
  mgr.manage("slow", std::move(s), tc);
  mgr.init();
  std::uint64_t next = bench::now_ns();
  for (std::uint64_t i = 0; i < n; ++i) {
    while (bench::now_ns() < next) bench::relax();
    next += interval_ns;
    t.publish(Tick{static_cast<std::uint32_t>(i % keys), 0, bench::now_ns()});
  }
  slow.feeding.store(false, std::memory_order_relaxed);
  // let it catch up with the last values (at most one per key)
  const std::uint64_t deadline = bench::now_ns() + 5'000'000'000ull;
  while (t.subscription_stats()[0].lag != 0 && bench::now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  mgr.end();
  const tern::SubscriptionStats ss = t.subscription_stats()[0];
  out.published = t.stats().published;
  out.received = ss.received;
  out.conflated = ss.conflated;
  out.feed_interval_ns = static_cast<double>(interval_ns);
  out.work_ns = static_cast<double>(100 * interval_ns);
  out.stale = slow.stale;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"messages", "1000000"}, {"subscribers", "4"}, {"rounds", "3"},
                    {"wake", "futex"}, {"conflate-values", "200000"}, {"keys", "64"},
                    {"json", ""}},
                   kUsage);
  tern::Wake wake;
  if (!bench::parse_wake(args.str("wake"), wake)) bench::Args::fail("bad --wake", kUsage);
  const std::uint64_t n = args.u64("messages");
  const auto k = static_cast<std::uint32_t>(args.u64("subscribers"));
  const std::uint64_t rounds = args.u64("rounds");
  if (n == 0 || k == 0 || rounds == 0) bench::Args::fail("--messages, --subscribers and --rounds must be > 0", kUsage);
  std::printf("fan-out 1 -> %u, %llu values of 16 bytes, %llu rounds (alternating), wake=%s\n", k,
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(rounds),
              args.str("wake").c_str());
  std::printf("%-22s %14s %18s %22s\n", "", "feed ns/value", "values/s (feed)", "per subscriber /s");
  double topic_s = 0, sends_s = 0, topic_pub = 0, sends_pub = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    const Row a = run_fanout(false, n, k, wake);
    const Row b = run_fanout(true, n, k, wake);
    sends_s += a.seconds;
    sends_pub += a.publish_ns;
    topic_s += b.seconds;
    topic_pub += b.publish_ns;
    std::printf("round %llu: %u sends     %14.1f %18.0f %22.0f\n", static_cast<unsigned long long>(r + 1), k,
                a.publish_ns, static_cast<double>(n) / a.seconds, static_cast<double>(n) / a.seconds);
    std::printf("round %llu: topic       %14.1f %18.0f %22.0f\n", static_cast<unsigned long long>(r + 1),
                b.publish_ns, static_cast<double>(n) / b.seconds, static_cast<double>(n) / b.seconds);
  }
  const double rs = static_cast<double>(rounds);
  std::printf("ratio topic/sends: feed cost per value %.2fx, throughput %.2fx\n",
              topic_pub / sends_pub, sends_s / topic_s);

  const std::uint64_t cn = args.u64("conflate-values");
  const auto keys = static_cast<std::uint32_t>(args.u64("keys"));
  Conflation c;
  if (cn) {
    run_conflation(cn, keys, 1000, wake, c);
    std::printf(
        "conflation: feed every %.0f ns over %u keys, subscriber handler %.0f ns (100x):\n"
        "  published %llu, received %llu, skipped (conflated) %llu; staleness at handling "
        "p50 %.1f us, p99 %.1f us, max %.1f us (while the feed ran)\n",
        c.feed_interval_ns, keys, c.work_ns, static_cast<unsigned long long>(c.published),
        static_cast<unsigned long long>(c.received), static_cast<unsigned long long>(c.conflated),
        static_cast<double>(c.stale.value_at_percentile(50)) / 1e3,
        static_cast<double>(c.stale.value_at_percentile(99)) / 1e3,
        static_cast<double>(c.stale.max()) / 1e3);
  }
  if (const std::string& path = args.str("json"); !path.empty()) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) bench::Args::fail("cannot write " + path, nullptr);
    std::fprintf(f,
                 "{\"subscribers\": %u, \"messages\": %llu, \"rounds\": %llu, \"msg_bytes\": 16,\n"
                 " \"topic_feed_ns_per_value\": %.2f, \"sends_feed_ns_per_value\": %.2f,\n"
                 " \"topic_values_per_s\": %.0f, \"sends_values_per_s\": %.0f,\n"
                 " \"conflation\": {\"published\": %llu, \"received\": %llu, \"conflated\": %llu,"
                 " \"stale_p50_ns\": %llu, \"stale_p99_ns\": %llu}}\n",
                 k, static_cast<unsigned long long>(n), static_cast<unsigned long long>(rounds),
                 topic_pub / rs, sends_pub / rs, static_cast<double>(n) * rs / topic_s,
                 static_cast<double>(n) * rs / sends_s, static_cast<unsigned long long>(c.published),
                 static_cast<unsigned long long>(c.received),
                 static_cast<unsigned long long>(c.conflated),
                 static_cast<unsigned long long>(c.stale.value_at_percentile(50)),
                 static_cast<unsigned long long>(c.stale.value_at_percentile(99)));
    std::fclose(f);
  }
  return 0;
}
