// Load: 4 producer threads x 1,000,000 messages into one actor's MPSC mailbox.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;

namespace {
struct Item {
  static constexpr MessageId message_id = 1;
  std::uint32_t producer = 0;
  std::uint64_t n = 0;
};
class Sink : public Actor {
 public:
  Sink() { handle<&Sink::on_item>(); }
  void on_item(const Item& it) {
    if (it.producer >= 4 || it.n != next[it.producer]) ++disorder;
    else next[it.producer] = it.n + 1;
    total.store(total.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  std::uint64_t next[4] = {0, 0, 0, 0};
  std::uint64_t disorder = 0;
  std::atomic<std::uint64_t> total{0};
};
}  // namespace

TEST_CASE("4 producers x 1,000,000 messages into one MPSC mailbox: exact count, per-producer order") {
  const std::uint64_t each = tern::test::scaled(1'000'000);
  for (Wake w : {Wake::futex, Wake::yield}) {
    CAPTURE(static_cast<int>(w));
    Manager mgr;
    auto* sink = new Sink;
    ThreadConfig tc;
    tc.wake = w;
    mgr.manage("sink", std::unique_ptr<Actor>(sink), tc, MailboxConfig{4096});
    mgr.init();
    ActorRef ref = mgr.find("sink");
    std::vector<std::thread> ps;
    std::atomic<std::uint64_t> not_ok{0};
    for (std::uint32_t p = 0; p < 4; ++p)
      ps.emplace_back([&, p] {
        for (std::uint64_t i = 0; i < each; ++i)
          if (ref.send(Item{p, i}) != SendResult::ok) not_ok.fetch_add(1);
      });
    for (auto& t : ps) t.join();
    REQUIRE(tern::test::wait_until([&] { return sink->total.load() == 4 * each; },
                                   std::chrono::seconds(120)));
    mgr.end();
    CHECK(not_ok.load() == 0);
    CHECK(sink->total.load() == 4 * each);
    CHECK(sink->disorder == 0);
    for (auto n : sink->next) CHECK(n == each);
    CHECK(sink->stats().max_depth <= 4096);
    CHECK(sink->stats().max_depth > 0);
  }
}
