#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include <tern/group.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::wait_until;

namespace {
struct Seq {
  static constexpr MessageId message_id = 10;
  std::uint32_t producer = 0;
  std::uint64_t n = 0;
};

std::atomic<std::uint64_t> g_total{0};
std::atomic<std::uint64_t> g_overlaps{0};
std::atomic<std::uint64_t> g_disorder{0};

class Cell : public Actor {
 public:
  Cell() {
    handle<&Cell::on_seq>();
    handle<&Cell::on_start>();
    handle<&Cell::on_shutdown>();
  }
  void on_start(const Start&) { started = true; }
  void on_shutdown(const Shutdown&) { shut = true; }
  void on_seq(const Seq& s) {
    // never two threads in one actor: an atomic guard that must always be free on entry
    if (guard.exchange(true, std::memory_order_acquire)) g_overlaps.fetch_add(1);
    if (!started) g_disorder.fetch_add(1);
    if (s.n != next[s.producer]) g_disorder.fetch_add(1);
    next[s.producer] = s.n + 1;
    ++count;
    g_total.fetch_add(1, std::memory_order_relaxed);
    guard.store(false, std::memory_order_release);
  }
  std::atomic<bool> guard{false};
  std::uint64_t next[4] = {0, 0, 0, 0};
  std::uint64_t count = 0;
  bool started = false, shut = false;
};
}  // namespace

TEST_CASE("1,000 actors on a group: exact counts, per-sender order, never two threads in one actor") {
  for (std::uint32_t workers : {2u, 3u, 4u}) {
    for (Wake w : {Wake::futex, Wake::yield}) {
      CAPTURE(workers);
      CAPTURE(static_cast<int>(w));
      g_total = 0;
      g_overlaps = 0;
      g_disorder = 0;
      Manager mgr;
      Group group("cells", GroupConfig{.workers = workers, .batch = 8, .wake = w});
      std::vector<Cell*> cells;
      std::vector<ActorRef> refs;
      for (int i = 0; i < 1000; ++i) {
        auto* c = new Cell;
        cells.push_back(c);
        refs.push_back(group.add("cell." + std::to_string(i), std::unique_ptr<Actor>(c),
                                 MailboxConfig{64}));
      }
      mgr.attach(group);
      mgr.init();
      for (Cell* c : cells) CHECK(c->started);
      constexpr std::uint32_t kProducers = 3;
      const std::uint64_t kRounds = tern::test::scaled(100);  // per producer per actor
      std::vector<std::thread> ps;
      for (std::uint32_t p = 0; p < kProducers; ++p)
        ps.emplace_back([&, p] {
          for (std::uint64_t r = 0; r < kRounds; ++r)
            for (ActorRef ref : refs) CHECK(ref.send(Seq{p, r}) == SendResult::ok);
        });
      for (auto& t : ps) t.join();
      const std::uint64_t expect = kProducers * kRounds * 1000;
      REQUIRE(wait_until([&] { return g_total.load() == expect; }, std::chrono::seconds(60)));
      mgr.end();
      CHECK(g_total.load() == expect);
      CHECK(g_overlaps.load() == 0);
      CHECK(g_disorder.load() == 0);
      for (Cell* c : cells) {
        CHECK(c->count == kProducers * kRounds);
        CHECK(c->shut);
      }
      CHECK(group.turns() > 0);
      CHECK(mgr.find("cell.999"));
    }
  }
}

namespace {
struct Ask {
  static constexpr MessageId message_id = 11;
  int x = 0;
};
struct Answer {
  static constexpr MessageId message_id = 12;
  int y = 0;
};
class Doubler : public Actor {
 public:
  Doubler() { handle<&Doubler::on_ask>(); }
  void on_ask(const Ask& a) { (void)reply(Answer{2 * a.x}); }
};
class Asker : public Actor {
 public:
  explicit Asker(ActorRef d) : d_(d) {
    handle<&Asker::on_start>();
    handle<&Asker::on_answer>();
  }
  void on_start(const Start&) { (void)d_.send(Ask{21}); }
  void on_answer(const Answer& a) {
    got = a.y;
    FastReply r = d_.fast_send(Ask{5});  // a grouped actor answers fast_send too
    if (const Answer* p = r.get<Answer>()) fast = p->y;
  }
  ActorRef d_;
  std::atomic<int> got{0};
  int fast = 0;
};
}  // namespace

TEST_CASE("grouped and dedicated actors talk through the same ActorRef API, reply and fast_send") {
  Manager mgr;
  Group group("g", GroupConfig{.workers = 2});
  ActorRef d = group.emplace<Doubler>("doubler", MailboxConfig{});
  auto* asker = new Asker(d);
  mgr.manage("asker", std::unique_ptr<Actor>(asker));
  mgr.attach(group);
  mgr.init();
  REQUIRE(wait_until([&] { return asker->got.load() == 42; }));
  mgr.end();
  CHECK(asker->fast == 10);
}

TEST_CASE("Group rejects bad configuration naming the value") {
  CHECK_THROWS_WITH_AS(Group("x", GroupConfig{.workers = 0}), doctest::Contains("workers 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(Group("x", GroupConfig{.batch = 0}), doctest::Contains("batch"),
                       std::invalid_argument);
  Group g("x");
  g.emplace<Doubler>("a", MailboxConfig{});
  CHECK_THROWS_WITH_AS(g.emplace<Doubler>("a", MailboxConfig{}), doctest::Contains("'a'"),
                       std::invalid_argument);
}

namespace {
class Greeter : public Actor {
 public:
  explicit Greeter(ActorRef to) : to_(to) { handle<&Greeter::on_start>(); }
  void on_start(const Start&) { (void)to_.send(Ask{1}); }
  ActorRef to_;
};
class Counter2 : public Actor {
 public:
  Counter2() { handle<&Counter2::on_ask>(); }
  void on_ask(const Ask&) { got.fetch_add(1); }
  std::atomic<int> got{0};
};
}  // namespace

TEST_CASE("a Start handler may send into a group attached after its own") {
  Manager mgr;
  Group first("first", GroupConfig{.workers = 1});
  Group second("second", GroupConfig{.workers = 1});
  auto* c = new Counter2;
  ActorRef target = second.add("counter", std::unique_ptr<Actor>(c));
  first.add("greeter", std::make_unique<Greeter>(target));
  mgr.attach(first);   // starts first: its Start handler sends to `second` before it starts
  mgr.attach(second);
  mgr.init();
  REQUIRE(wait_until([&] { return c->got.load() == 1; }));
  mgr.end();
}

TEST_CASE("sends to a group's actors before init are kept and handled after Start, counts exact") {
  for (Wake w : {Wake::futex, Wake::spin}) {
    CAPTURE(static_cast<int>(w));
    g_total = 0;
    g_overlaps = 0;
    g_disorder = 0;
    Manager mgr;
    Group group("early", GroupConfig{.workers = 2, .batch = 4, .wake = w});
    std::vector<Cell*> cells;
    std::vector<ActorRef> refs;
    for (int i = 0; i < 8; ++i) {
      auto* c = new Cell;
      cells.push_back(c);
      refs.push_back(group.add("early." + std::to_string(i), std::unique_ptr<Actor>(c),
                               MailboxConfig{64}));
    }
    mgr.attach(group);
    // before init: no run queue yet, no worker; the messages wait in the mailboxes
    constexpr std::uint64_t kEarly = 50;  // per actor, below the capacity (64)
    for (std::uint64_t n = 0; n < kEarly; ++n)
      for (ActorRef r : refs) CHECK(r.try_send(Seq{0, n}) == SendResult::ok);
    for (Cell* c : cells) CHECK(c->stats().depth == kEarly);
    mgr.init();
    // after init: more, in the same per-sender sequence
    constexpr std::uint64_t kLate = 30;
    for (std::uint64_t n = kEarly; n < kEarly + kLate; ++n)
      for (ActorRef r : refs) CHECK(r.send(Seq{0, n}) == SendResult::ok);
    const std::uint64_t expect = (kEarly + kLate) * cells.size();
    REQUIRE(wait_until([&] { return g_total.load() == expect; }));
    mgr.end();
    CHECK(g_total.load() == expect);
    CHECK(g_disorder.load() == 0);  // Start first, then every message in order
    CHECK(g_overlaps.load() == 0);
    for (Cell* c : cells) {
      CHECK(c->count == kEarly + kLate);
      CHECK(c->shut);
    }
  }
}
