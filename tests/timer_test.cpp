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
