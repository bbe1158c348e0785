#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tern/group.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;

namespace {
struct Msg {
  static constexpr MessageId message_id = 1;
  int n = 0;
};
struct Gate {
  static constexpr MessageId message_id = 2;
};
class Recorder : public Actor {
 public:
  Recorder() {
    handle<&Recorder::on_gate>();
    handle<&Recorder::on_msg>();
  }
  void on_gate(const Gate&) {
    while (!open.load()) std::this_thread::yield();
  }
  void on_msg(const Msg& m) {
    order.push_back(m.n);
    done.fetch_add(1);
  }
  std::atomic<bool> open{false};
  std::atomic<int> done{0};
  std::vector<int> order;
};
}  // namespace

TEST_CASE("high-priority messages are handled before normal ones already waiting") {
  Manager mgr;
  auto* r = new Recorder;
  ActorRef ref = mgr.manage("rec", std::unique_ptr<Actor>(r));
  mgr.init();
  CHECK(ref.send(Gate{}) == SendResult::ok);  // holds the actor while we queue
  for (int i = 1; i <= 3; ++i) CHECK(ref.send(Msg{i}) == SendResult::ok);
  CHECK(ref.try_send_priority(Msg{100}) == SendResult::ok);
  CHECK(ref.send_priority(Msg{101}) == SendResult::ok);
  CHECK(ref.send(Msg{4}) == SendResult::ok);
  r->open = true;
  REQUIRE(tern::test::wait_until([&] { return r->done.load() == 6; }));
  mgr.end();
  CHECK(r->order == std::vector<int>{100, 101, 1, 2, 3, 4});
}

namespace {
struct Boom {
  static constexpr MessageId message_id = 3;
};
struct Urgent {
  static constexpr MessageId message_id = 4;
  std::string text;  // long enough to live on the heap: a double destroy shows under ASan
};
class Thrower : public Actor {
 public:
  Thrower() {
    handle<&Thrower::on_boom>();
    handle<&Thrower::on_urgent>();
  }
  // A priority message arrives while a normal one's handler runs, and that handler throws.
  void on_boom(const Boom&) {
    (void)self().try_send_priority(Urgent{std::string(64, 'u')});
    throw std::runtime_error("boom");
  }
  void on_urgent(const Urgent& u) {
    if (u.text == std::string(64, 'u')) urgent_ok.fetch_add(1);
    urgent.fetch_add(1);
  }
  std::atomic<int> urgent{0}, urgent_ok{0};
};
}  // namespace

TEST_CASE("a throwing handler drops its own message, not a priority one that arrived meanwhile") {
  Manager mgr;
  auto* t = new Thrower;
  ActorRef ref = mgr.manage("thrower", std::unique_ptr<Actor>(t));
  mgr.init();
  for (int i = 0; i < 3; ++i) REQUIRE(ref.send(Boom{}) == SendResult::ok);
  REQUIRE(tern::test::wait_until([&] { return t->urgent.load() == 3; }));
  mgr.end();
  CHECK(t->urgent_ok.load() == 3);
  CHECK(t->stats().handler_exceptions == 3);
  CHECK(t->stats().handled == 6);  // 3 Boom (dropped, still consumed) + 3 Urgent
}

TEST_CASE("a priority message alone wakes a parked actor and a parked group worker") {
  for (int mode = 0; mode < 2; ++mode) {
    INFO("mode = ", mode == 0 ? "dedicated thread, futex, parks at once" : "1-worker group");
    Manager mgr;
    GroupConfig gc;
    gc.workers = 1;
    gc.spin_limit = 0;
    Group group("g", gc);
    Recorder* r = nullptr;
    ActorRef ref;
    if (mode == 0) {
      ThreadConfig tc;
      tc.wake = Wake::futex;
      tc.spin_limit = 0;
      r = new Recorder;
      ref = mgr.manage("rec", std::unique_ptr<Actor>(r), tc);
    } else {
      ref = group.emplace<Recorder>("rec", {});
      r = static_cast<Recorder*>(ref.actor());
      mgr.attach(group);
    }
    r->open = true;
    mgr.init();
    for (int i = 1; i <= 50; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // let it park
      REQUIRE(ref.try_send_priority(Msg{i}) == SendResult::ok);
      REQUIRE(tern::test::wait_until([&] { return r->done.load() == i; }));
    }
    mgr.end();
    CHECK(r->order.size() == 50);
  }
}
