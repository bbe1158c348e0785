#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

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
