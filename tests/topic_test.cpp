// tern/topic.hpp: one publisher, N subscribers on one ring, per-subscriber slow policies.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <tern/manager.hpp>
#include <tern/topic.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::scaled;
using tern::test::wait_until;

namespace {

struct Tick {
  static constexpr MessageId message_id = 4100;
  std::uint32_t sym = 0;
  std::uint64_t seq = 0;  ///< publish order, from 1
  double px = 0;
};
std::uint32_t tick_key(const Tick& t) { return t.sym; }

/// Records what it receives; `delay_us` makes it slow; `stall` holds its handler until released.
class Sub : public Actor {
 public:
  explicit Sub(Topic<Tick>& t, SlowPolicy p, std::uint32_t delay_us = 0)
      : delay_us_(delay_us) {
    t.subscribe<&Sub::on_tick>(*this, p);
  }
  void on_tick(const Tick& t) {
    if (t.seq <= last_seq) disorder.fetch_add(1);
    last_seq = t.seq;
    if (t.sym < latest.size()) latest[t.sym].store(t.seq, std::memory_order_relaxed);
    got.push_back(t.seq);
    count.fetch_add(1, std::memory_order_release);
    while (stall.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(50));
    if (delay_us_) std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
  }
  std::vector<std::uint64_t> got;  // read after Manager::end()
  std::uint64_t last_seq = 0;
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> disorder{0};
  std::atomic<bool> stall{false};
  std::vector<std::atomic<std::uint64_t>> latest = std::vector<std::atomic<std::uint64_t>>(16);

 private:
  std::uint32_t delay_us_;
};

}  // namespace

TEST_CASE("every subscriber receives every value, in order (backpressure)") {
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 64});
  Manager mgr;
  std::vector<Sub*> subs;
  for (int i = 0; i < 4; ++i) {
    auto s = std::make_unique<Sub>(topic, SlowPolicy::backpressure);
    subs.push_back(s.get());
    mgr.manage("sub" + std::to_string(i), std::move(s));
  }
  mgr.init();
  const std::uint64_t n = scaled(200000);
  for (std::uint64_t i = 1; i <= n; ++i) topic.publish(Tick{0, i, 1.0});
  for (Sub* s : subs) CHECK(wait_until([&] { return s->count.load() == n; }));
  mgr.end();
  for (Sub* s : subs) {
    REQUIRE(s->got.size() == n);
    CHECK(s->disorder.load() == 0);
    CHECK(s->got.front() == 1);
    CHECK(s->got.back() == n);
  }
  const TopicStats ts = topic.stats();
  CHECK(ts.published == n);
  for (const SubscriptionStats& ss : topic.subscription_stats()) {
    CHECK(ss.received == n);
    CHECK(ss.dropped == 0);
    CHECK(ss.lag == 0);
  }
}

TEST_CASE("a stalled backpressure subscriber makes try_publish return full, then catches up") {
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 16});
  Manager mgr;
  auto s = std::make_unique<Sub>(topic, SlowPolicy::backpressure);
  Sub& sub = *s;
  sub.stall = true;
  mgr.manage("slow", std::move(s));
  mgr.init();
  std::uint64_t sent = 0;
  while (sent < 1000 && topic.try_publish(Tick{0, sent + 1, 0}) == SendResult::ok) ++sent;
  // the first value is held in the handler; the ring holds 16 more at most
  CHECK(sent >= 16);
  CHECK(sent <= 17);
  CHECK(topic.stats().refused_full >= 1);
  sub.stall = false;
  for (std::uint64_t i = sent + 1; i <= 500; ++i) topic.publish(Tick{0, i, 0});
  CHECK(wait_until([&] { return sub.count.load() == 500; }));
  mgr.end();
  CHECK(sub.disorder.load() == 0);
  REQUIRE(sub.got.size() == 500);
  for (std::uint64_t i = 0; i < 500; ++i) CHECK(sub.got[i] == i + 1);
}

TEST_CASE("drop_oldest: a stalled subscriber does not stall the publisher or the others") {
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 32});
  Manager mgr;
  auto fast = std::make_unique<Sub>(topic, SlowPolicy::backpressure);
  auto slow = std::make_unique<Sub>(topic, SlowPolicy::drop_oldest);
  Sub& f = *fast;
  Sub& sl = *slow;
  sl.stall = true;
  mgr.manage("fast", std::move(fast));
  mgr.manage("slow", std::move(slow));
  mgr.init();
  const std::uint64_t n = 5000;
  for (std::uint64_t i = 1; i <= n; ++i) topic.publish(Tick{0, i, 0});  // never blocked by slow
  CHECK(wait_until([&] { return f.count.load() == n; }));
  CHECK(wait_until([&] { return sl.count.load() >= 1; }));
  sl.stall = false;
  CHECK(wait_until([&] {
    for (const SubscriptionStats& ss : topic.subscription_stats())
      if (ss.lag != 0) return false;
    return true;
  }));
  mgr.end();
  CHECK(f.got.size() == n);
  CHECK(sl.disorder.load() == 0);  // what it got is in order
  CHECK(sl.got.back() == n);       // and ends with the newest value
  const auto ss = topic.subscription_stats();
  CHECK(ss[1].policy == SlowPolicy::drop_oldest);
  CHECK(ss[1].dropped > 0);
  CHECK(ss[1].received + ss[1].dropped == n);  // nothing vanishes without being counted
  CHECK(sl.got.size() == ss[1].received);
}

TEST_CASE("conflate: a subscriber 100x slower than the feed gets the latest value per key") {
  constexpr std::uint32_t kKeys = 8;
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 64, .max_keys = kKeys}, &tick_key);
  Manager mgr;
  auto fast = std::make_unique<Sub>(topic, SlowPolicy::backpressure);
  auto slow = std::make_unique<Sub>(topic, SlowPolicy::conflate, /*delay_us=*/200);
  Sub& f = *fast;
  Sub& sl = *slow;
  mgr.manage("fast", std::move(fast));
  mgr.manage("slow", std::move(slow));
  mgr.init();
  const std::uint64_t n = scaled(20000);
  std::vector<std::uint64_t> last(kKeys, 0);
  for (std::uint64_t i = 1; i <= n; ++i) {
    const auto sym = static_cast<std::uint32_t>(i % kKeys);
    topic.publish(Tick{sym, i, static_cast<double>(i)});
    last[sym] = i;
    if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(2));  // ~2 us a value
  }
  CHECK(wait_until([&] { return f.count.load() == n; }));
  // in the end the slow one holds the newest value of every key
  CHECK(wait_until([&] {
    for (std::uint32_t k = 0; k < kKeys; ++k)
      if (sl.latest[k].load() != last[k]) return false;
    return true;
  }));
  mgr.end();
  const auto ss = topic.subscription_stats();
  CHECK(ss[1].received < n / 4);  // it could not have handled every value at 200 us each
  CHECK(ss[1].conflated > 0);
  CHECK(ss[1].received + ss[1].conflated >= n);
  // per key, what it got is increasing: never an older value after a newer one
  std::vector<std::uint64_t> seen(kKeys, 0);
  std::uint64_t stale = 0;
  for (std::uint64_t s : sl.got) {
    const std::uint32_t k = static_cast<std::uint32_t>(s % kKeys);
    if (s <= seen[k]) ++stale;
    seen[k] = s;
  }
  CHECK(stale == 0);
}

// Found by the Relacy model (tests/relacy/topic_model_test.cpp, Conflate): a drain that
// touched some keys and then found a cell lapped mid-scan emptied its list of touched keys
// but left those keys marked, so touch() skipped them from then on: such a key was never
// handed again. Here the key function (which a drain's scan calls on the subscriber's
// thread) holds the scan after its first value while the feed laps the next cell.
namespace {
std::atomic<int> g_scan_phase{0};  // 1 armed, 2 the scan is held, 3 the feed lapped it
std::thread::id g_feed_thread;
std::uint32_t holding_key(const Tick& t) {
  if (std::this_thread::get_id() != g_feed_thread) {
    int armed = 1;
    if (g_scan_phase.compare_exchange_strong(armed, 2))
      for (int i = 0; i < 20000 && g_scan_phase.load() != 3; ++i)  // at most ~2 s
        std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return t.sym;
}
}  // namespace

TEST_CASE("conflate: a lap in the middle of a drain's scan loses no key") {
  g_feed_thread = std::this_thread::get_id();
  g_scan_phase = 0;
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 2, .max_keys = 4}, &holding_key);
  Manager mgr;
  auto sub = std::make_unique<Sub>(topic, SlowPolicy::conflate);
  Sub& s = *sub;
  mgr.manage("conflating", std::move(sub));
  mgr.init();
  // 1. the subscriber is held in its handler of value 1 (drain 1, which read head = 1)
  s.stall = true;
  REQUIRE(topic.try_publish(Tick{0, 1, 0.0}) == SendResult::ok);
  REQUIRE(wait_until([&] { return s.count.load() == 1; }));
  // 2. values 2 (key 1) and 3 (key 2) fill the ring; drain 2 will scan them
  REQUIRE(topic.try_publish(Tick{1, 2, 0.0}) == SendResult::ok);
  REQUIRE(topic.try_publish(Tick{2, 3, 0.0}) == SendResult::ok);
  g_scan_phase = 1;
  s.stall = false;
  // 3. drain 2's scan is held after touching key 1; values 4 and 5 lap its next cell
  REQUIRE(wait_until([&] { return g_scan_phase.load() == 2; }));
  REQUIRE(topic.try_publish(Tick{3, 4, 0.0}) == SendResult::ok);
  REQUIRE(topic.try_publish(Tick{0, 5, 0.0}) == SendResult::ok);
  g_scan_phase = 3;
  // 4. key 1 must still be handed: its value 2 now, and a later value 6
  CHECK(wait_until([&] { return s.latest[1].load() == 2; }, std::chrono::seconds(5)));
  REQUIRE(topic.try_publish(Tick{1, 6, 0.0}) == SendResult::ok);
  CHECK(wait_until([&] { return s.latest[1].load() == 6; }, std::chrono::seconds(5)));
  CHECK(wait_until([&] {
    return s.latest[0].load() == 5 && s.latest[2].load() == 3 && s.latest[3].load() == 4;
  }, std::chrono::seconds(5)));
  mgr.end();
}

namespace {
struct Nudge {
  static constexpr MessageId message_id = 4101;
  int n = 0;
};
/// A Sub that also takes direct messages (to fill its mailbox); `hold` holds that handler.
class NudgedSub : public Sub {
 public:
  NudgedSub(Topic<Tick>& t, SlowPolicy p) : Sub(t, p) { handle<&NudgedSub::on_nudge>(); }
  void on_nudge(const Nudge&) {
    nudges.fetch_add(1);
    for (int i = 0; i < 100000 && hold.load(); ++i)  // at most ~5 s
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::atomic<int> nudges{0};
  std::atomic<bool> hold{false};
};
}  // namespace

// Found with the Relacy model (Rewake with a 2-slot mailbox): a TopicWake refused as full
// left what was published unread until the next publish (for ever once the feed stopped).
// A refused wake now goes to the priority lane.
TEST_CASE("a subscriber whose mailbox is full still gets the last value") {
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 16});
  Manager mgr;
  auto owned = std::make_unique<NudgedSub>(topic, SlowPolicy::drop_oldest);
  NudgedSub& s = *owned;
  ActorRef ref = mgr.manage("busy", std::move(owned), {}, MailboxConfig{4});
  mgr.init();
  REQUIRE(topic.try_publish(Tick{0, 1, 0.0}) == SendResult::ok);
  REQUIRE(wait_until([&] { return s.count.load() == 1; }));
  // the subscriber is held in a direct message's handler, its mailbox full behind it
  s.hold = true;
  REQUIRE(ref.try_send(Nudge{}) == SendResult::ok);
  REQUIRE(wait_until([&] { return s.nudges.load() == 1; }));
  int sent = 1;
  while (sent < 16 && ref.try_send(Nudge{}) == SendResult::ok) ++sent;
  REQUIRE(ref.try_send(Nudge{}) == SendResult::full);
  // the last value: its wake-up finds the normal lane full
  REQUIRE(topic.try_publish(Tick{0, 2, 0.0}) == SendResult::ok);
  s.hold = false;
  CHECK(wait_until([&] { return s.count.load() == 2; }, std::chrono::seconds(5)));
  CHECK(wait_until([&] { return s.nudges.load() == sent; }));
  mgr.end();
  CHECK(topic.stats().wakes_failed == 0);
  REQUIRE(s.got.size() == 2);
  CHECK(s.got[1] == 2);
}

TEST_CASE("conflate without keys, late subscribe and too many subscribers are set-up errors") {
  Topic<Tick> plain("plain");
  class A : public Actor {
   public:
    void on_tick(const Tick&) {}
  };
  A a;
  CHECK_THROWS_WITH_AS(plain.subscribe<&A::on_tick>(a, SlowPolicy::conflate),
                       doctest::Contains("conflate needs max_keys"), std::logic_error);
  CHECK_THROWS_AS(Topic<Tick>("bad", TopicConfig{.capacity = 1}), std::invalid_argument);
  CHECK_THROWS_AS(Topic<Tick>("bad", TopicConfig{.max_keys = 4}), std::invalid_argument);
  Topic<Tick> small("small", TopicConfig{.max_subscribers = 1});
  A b, c;
  small.subscribe<&A::on_tick>(b, SlowPolicy::drop_oldest);
  CHECK_THROWS_WITH_AS(small.subscribe<&A::on_tick>(c, SlowPolicy::drop_oldest),
                       doctest::Contains("max_subscribers (1)"), std::logic_error);
  Topic<Tick> t("t");
  Manager mgr;  // a publish wakes its subscribers: they need a mailbox (manage() makes it)
  auto d = std::make_unique<A>();
  A e;
  t.subscribe<&A::on_tick>(*d, SlowPolicy::drop_oldest);
  mgr.manage("d", std::move(d));
  CHECK(t.try_publish(Tick{}) == SendResult::ok);
  CHECK_THROWS_WITH_AS(t.subscribe<&A::on_tick>(e, SlowPolicy::drop_oldest),
                       doctest::Contains("after the first publish"), std::logic_error);
}

TEST_CASE("an actor subscribes to two topics; a stopped backpressure subscriber releases the publisher") {
  Topic<Tick> t1("t1", TopicConfig{.capacity = 8});
  Topic<Tick> t2("t2", TopicConfig{.capacity = 8});
  class Two : public Actor {
   public:
    Two(Topic<Tick>& a, Topic<Tick>& b) {
      a.subscribe<&Two::on_a>(*this, SlowPolicy::backpressure);
      b.subscribe<&Two::on_b>(*this, SlowPolicy::backpressure);
    }
    void on_a(const Tick&) { na.fetch_add(1); }
    void on_b(const Tick&) { nb.fetch_add(1); }
    std::atomic<int> na{0}, nb{0};
  };
  auto m = std::make_unique<Manager>();
  auto two = std::make_unique<Two>(t1, t2);
  Two& w = *two;
  m->manage("two", std::move(two));
  m->init();
  for (int i = 0; i < 100; ++i) {
    t1.publish(Tick{0, static_cast<std::uint64_t>(i + 1), 0});
    t2.publish(Tick{0, static_cast<std::uint64_t>(i + 1), 0});
  }
  CHECK(wait_until([&] { return w.na.load() == 100 && w.nb.load() == 100; }));
  m->end();
  // stopped: its mailbox refuses the wake, so the publisher no longer waits for it
  std::uint64_t ok = 0;
  for (int i = 0; i < 100; ++i) ok += t1.try_publish(Tick{}) == SendResult::ok;
  CHECK(ok == 100);
  CHECK(t1.subscription_stats()[0].closed);
}

// ---- TopicExport (tern/topic_export.hpp): credit-paced conflation for a subscriber that
// talks by messages (remote through the gateway in tests/integration/test_remote_topic.py;
// here a local actor, so ASan and TSan see it too) --------------------------------------

#include <tern/topic_export.hpp>

namespace {
class CreditSub : public Actor {
 public:
  explicit CreditSub(ActorRef exporter) : exporter_(exporter) {
    handle<&CreditSub::on_start>();
    handle<&CreditSub::on_tick>();
  }
  void on_start(const Start&) { (void)exporter_.send(TopicSubscribe{2}); }
  void on_tick(const Tick& t) {
    if (t.sym < latest.size()) {
      if (t.seq <= latest[t.sym].load()) stale.fetch_add(1);
      latest[t.sym].store(t.seq);
    }
    count.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    (void)exporter_.send(TopicCredit{1});
  }
  std::vector<std::atomic<std::uint64_t>> latest = std::vector<std::atomic<std::uint64_t>>(4);
  std::atomic<std::uint64_t> count{0}, stale{0};

 private:
  ActorRef exporter_;
};
}  // namespace

TEST_CASE("TopicExport: a credit-paced subscriber gets the latest per key, and every value is accounted for") {
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 64, .max_keys = 4}, &tick_key);
  Manager mgr;
  auto ex = std::make_unique<TopicExport<Tick>>(topic);
  TopicExport<Tick>& exporter = *ex;
  const ActorRef ex_ref = mgr.manage("ticks", std::move(ex));
  auto sub = std::make_unique<CreditSub>(ex_ref);
  CreditSub& s = *sub;
  mgr.manage("sub", std::move(sub));
  mgr.init();
  CHECK(wait_until([&] { return exporter.subscribers() == 1; }));
  const std::uint64_t n = scaled(20000);
  std::vector<std::uint64_t> last(4, 0);
  for (std::uint64_t i = 1; i <= n; ++i) {
    const auto k = static_cast<std::uint32_t>(i % 4);
    topic.publish(Tick{k, i, 0});
    last[k] = i;
  }
  CHECK(wait_until([&] {
    for (std::uint32_t k = 0; k < 4; ++k)
      if (s.latest[k].load() != last[k]) return false;
    return true;
  }));
  mgr.end();
  CHECK(s.stale.load() == 0);
  const auto st = exporter.subscriber_stats();
  REQUIRE(st.size() == 1);
  CHECK(st[0].sent == s.count.load());
  CHECK(s.count.load() < n);
  const std::uint64_t topic_conflated = topic.subscription_stats()[0].conflated;
  CHECK(st[0].sent + st[0].conflated + topic_conflated == n);
}

namespace {
/// Subscribes with a window of 4, takes `n` values, then unsubscribes.
class LeavingSub : public Actor {
 public:
  LeavingSub(ActorRef exporter, std::uint64_t n) : exporter_(exporter), n_(n) {
    handle<&LeavingSub::on_start>();
    handle<&LeavingSub::on_tick>();
  }
  void on_start(const Start&) { (void)exporter_.send(TopicSubscribe{4}); }
  void on_tick(const Tick&) {
    if (got.load() == n_) return;  // in flight when we left
    if (got.fetch_add(1) + 1 == n_)
      (void)exporter_.send(TopicUnsubscribe{});
    else
      (void)exporter_.send(TopicCredit{1});
  }
  std::atomic<std::uint64_t> got{0};

 private:
  ActorRef exporter_;
  std::uint64_t n_;
};
}  // namespace

TEST_CASE("TopicExport: totals() keep the counters of a subscriber that unsubscribed") {
  Topic<Tick> topic("ticks", TopicConfig{.capacity = 64, .max_keys = 4}, &tick_key);
  Manager mgr;
  auto ex = std::make_unique<TopicExport<Tick>>(topic);
  TopicExport<Tick>& exporter = *ex;
  const ActorRef ex_ref = mgr.manage("ticks", std::move(ex));
  auto sub = std::make_unique<LeavingSub>(ex_ref, 10);
  LeavingSub& s = *sub;
  mgr.manage("leaver", std::move(sub));
  mgr.init();
  REQUIRE(wait_until([&] { return exporter.subscribers() == 1; }));
  // publish until the subscriber has left (it leaves after 10 values)
  std::uint64_t i = 0;
  while (exporter.subscribers() != 0 && i < 1000000) {
    ++i;
    topic.publish(Tick{static_cast<std::uint32_t>(i % 4), i, 0});
    if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  REQUIRE(exporter.subscribers() == 0);
  mgr.end();
  CHECK(exporter.subscriber_stats().empty());
  const RemoteSubscriberTotals t = exporter.totals();
  CHECK(t.subscribed == 1);
  CHECK(t.departed == 1);
  CHECK(t.sent >= 10);  // what it took, plus at most its window in flight when it left
  CHECK(t.sent <= 10 + 4);
  CHECK(s.got.load() == 10);
}

TEST_CASE("TopicExport needs a keyed topic") {
  Topic<Tick> plain("plain");
  CHECK_THROWS_WITH_AS(TopicExport<Tick>{plain}, doctest::Contains("needs max_keys"), std::logic_error);
}
