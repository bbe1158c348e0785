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
class Clock : public Actor {
 public:
  Clock() {
    handle<&Clock::on_start>();
    handle<&Clock::on_timeout>();
  }
  void on_start(const Start&) {
    one_shot = start_timer(2000);
    periodic = start_timer(1000, 1000);
    cancelled = start_timer(5000);
    cancel_ok = cancel_timer(cancelled);
    cancel_twice = cancel_timer(cancelled);
  }
  void on_timeout(const Timeout& t) {
    CHECK(t.fired_ns >= t.due_ns);
    if (t.id == one_shot) ++one_shot_fired;
    if (t.id == cancelled) ++cancelled_fired;
    if (t.id == periodic) {
      if (cancel_ns && t.fired_ns > cancel_ns) ++sent_after_cancel;
      if (++periodic_fired == 5) {
        stop_ok = cancel_timer(periodic);
        cancel_ns = tern::detail::now_ns();
      }
    }
  }
  std::uint64_t one_shot = 0, periodic = 0, cancelled = 0;
  bool cancel_ok = false, cancel_twice = true, stop_ok = false;
  std::uint64_t cancel_ns = 0, sent_after_cancel = 0;
  std::atomic<int> one_shot_fired{0}, periodic_fired{0}, cancelled_fired{0};
};
}  // namespace

TEST_CASE("one-shot, periodic and cancelled timers arrive as Timeout through the mailbox") {
  for (bool grouped : {false, true}) {
    CAPTURE(grouped);
    Manager mgr;
    Group group("timers", GroupConfig{.workers = 1});
    auto* c = new Clock;
    if (grouped) {
      group.add("clock", std::unique_ptr<Actor>(c));
      mgr.attach(group);
    } else {
      mgr.manage("clock", std::unique_ptr<Actor>(c));
    }
    mgr.init();
    REQUIRE(wait_until([&] { return c->periodic_fired.load() >= 5 && c->one_shot_fired.load() == 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // would-be ticks after cancel
    mgr.end();
    CHECK(c->one_shot != 0);
    CHECK(c->periodic != c->one_shot);
    CHECK(c->one_shot_fired.load() == 1);
    CHECK(c->cancel_ok);
    CHECK_FALSE(c->cancel_twice);
    CHECK(c->cancelled_fired.load() == 0);
    CHECK(c->stop_ok);
    // Timeouts already queued when cancel ran may still arrive (a slow actor may have
    // several); none may have been sent after cancel_timer returned.
    CHECK(c->sent_after_cancel == 0);
  }
}

TEST_CASE("timers need a Manager and reject absurd durations") {
  struct Lone : Actor {
    std::uint64_t go() { return start_timer(10); }
    std::uint64_t huge(Manager&) { return start_timer(100'000'000'000'000ull); }
  };
  Lone l;
  CHECK_THROWS_WITH_AS(l.go(), doctest::Contains("no Manager"), std::logic_error);
  Manager mgr;
  auto* m = new Lone;
  mgr.manage("lone", std::unique_ptr<Actor>(m));
  CHECK_THROWS_WITH_AS(m->huge(mgr), doctest::Contains("longer than a day"), std::invalid_argument);
}

namespace {
struct Item {
  static constexpr MessageId message_id = 900;
  std::uint64_t n = 0;
};
// Its mailbox is spsc: one producer actor, and Timeouts from the timer thread.
class TimedSink : public Actor {
 public:
  TimedSink() {
    handle<&TimedSink::on_start>();
    handle<&TimedSink::on_item>();
    handle<&TimedSink::on_timeout>();
  }
  void on_start(const Start&) { (void)start_timer(100, 100); }
  void on_item(const Item& i) {
    if (i.n != items) ++out_of_order;
    items.store(items.load() + 1);
  }
  void on_timeout(const Timeout&) { timeouts.fetch_add(1); }
  std::atomic<std::uint64_t> items{0}, timeouts{0};
  std::uint64_t out_of_order = 0;
};
class Streamer : public Actor {
 public:
  Streamer(ActorRef to, std::uint64_t n) : to_(to), n_(n) { handle<&Streamer::on_start>(); }
  void on_start(const Start&) {
    for (std::uint64_t i = 0; i < n_; ++i) (void)to_.send(Item{i});
  }

 private:
  ActorRef to_;
  std::uint64_t n_;
};
}  // namespace

TEST_CASE("an spsc mailbox takes its one producer actor and its timers' Timeouts") {
  const std::uint64_t n = tern::test::scaled(200'000);
  Manager mgr;
  auto* sink = new TimedSink;
  ActorRef to = mgr.manage("sink", std::unique_ptr<Actor>(sink), {},
                           MailboxConfig{1024, MailboxKind::spsc});
  mgr.emplace<Streamer>("streamer", {}, {}, to, n);
  mgr.init();
  REQUIRE(wait_until([&] { return sink->items.load() == n && sink->timeouts.load() >= 5; },
                     std::chrono::seconds(60)));
  mgr.end();
  CHECK(sink->out_of_order == 0);
}
