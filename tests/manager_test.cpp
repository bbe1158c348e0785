#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <tern/histogram.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::wait_until;

namespace {
/// Sends `sig` to the process once run() has installed its handler (whatever handler was
/// there before, doctest's or the default, would end the test binary instead).
/// `before` is the handler read before run() was called.
void signal_once_run_handles(int sig, const struct sigaction& before) {
  (void)wait_until([&] {
    struct sigaction now {};
    sigaction(sig, nullptr, &now);
    return now.sa_handler != before.sa_handler;
  }, std::chrono::seconds(60));
  kill(getpid(), sig);
}
struct Ping {
  static constexpr MessageId message_id = 100;
  int count = 0;
};
struct Pong {
  static constexpr MessageId message_id = 101;
  int count = 0;
};

class PongActor : public Actor {
 public:
  PongActor() { handle<&PongActor::on_ping>(); }
  void on_ping(const Ping& m) { (void)reply(Pong{m.count}); }
};

class PingActor : public Actor {
 public:
  PingActor(ActorRef pong, int rounds) : pong_(pong), rounds_(rounds) {
    handle<&PingActor::on_start>();
    handle<&PingActor::on_pong>();
    handle<&PingActor::on_shutdown>();
  }
  void on_start(const Start&) {
    started = true;
    (void)pong_.send(Ping{1});
  }
  void on_pong(const Pong& m) {
    if (m.count != last + 1) ++bad;
    last = m.count;
    if (m.count < rounds_)
      (void)pong_.send(Ping{m.count + 1});
    else
      terminate();
  }
  void on_shutdown(const Shutdown&) { shut = true; }
  ActorRef pong_;
  int rounds_;
  int last = 0, bad = 0;
  bool started = false, shut = false;
};
}  // namespace

TEST_CASE("ping-pong runs end to end with each wake strategy and terminate from an actor") {
  for (Wake w : {Wake::spin, Wake::futex, Wake::yield}) {
    CAPTURE(static_cast<int>(w));
    Manager mgr;
    ThreadConfig tc;
    tc.wake = w;
    ActorRef pong = mgr.emplace<PongActor>("pong", tc, {});
    const int rounds = static_cast<int>(tern::test::scaled(5'000));
    auto* ping = new PingActor(pong, rounds);
    mgr.manage("ping", std::unique_ptr<Actor>(ping), tc);
    mgr.init();
    CHECK(ping->started);
    std::thread watchdog([&] {
      // bounded: if the exchange stalls, stop run() anyway so the test fails, not hangs
      for (int i = 0; i < 1200 && !mgr.terminated(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      mgr.terminate();
    });
    mgr.run();
    watchdog.join();
    mgr.end();
    CHECK(ping->last == rounds);
    CHECK(ping->bad == 0);
    CHECK(ping->shut);
    CHECK(mgr.find("pong").actor()->stats().handled == static_cast<std::uint64_t>(rounds));
  }
}

TEST_CASE("SIGTERM makes run() return and end() stops cleanly") {
  Manager mgr;
  mgr.emplace<PongActor>("pong", {}, {});
  mgr.init();
  struct sigaction before {};
  sigaction(SIGTERM, nullptr, &before);
  std::thread t([&before] { signal_once_run_handles(SIGTERM, before); });
  mgr.run();
  t.join();
  CHECK(mgr.terminated());
  mgr.end();
}

TEST_CASE("SIGINT makes run() return too") {
  Manager mgr;
  mgr.emplace<PongActor>("pong", {}, {});
  mgr.init();
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  std::thread t([&before] { signal_once_run_handles(SIGINT, before); });
  mgr.run();
  t.join();
  CHECK(mgr.terminated());
}

namespace {
struct Work {
  static constexpr MessageId message_id = 500;
  std::uint32_t producer = 0;
  std::uint64_t n = 0;
};
class Sink : public Actor {
 public:
  Sink() {
    handle<&Sink::on_work>();
    handle<&Sink::on_shutdown>();
  }
  void on_work(const Work& w) {
    if (w.n != next[w.producer]) ++bad;
    next[w.producer] = w.n + 1;
    ++handled;
  }
  void on_shutdown(const Shutdown&) { handled_at_shutdown = handled; }
  std::uint64_t next[4] = {0, 0, 0, 0};
  std::uint64_t handled = 0, bad = 0, handled_at_shutdown = 0;
};
}  // namespace

TEST_CASE("shutdown under load: every accepted message is handled, the rest refused as closed") {
  Manager mgr;
  auto* sink = new Sink;
  ThreadConfig tc;
  tc.wake = Wake::futex;
  ActorRef ref = mgr.manage("sink", std::unique_ptr<Actor>(sink), tc, MailboxConfig{1024});
  mgr.init();
  std::atomic<std::uint64_t> accepted{0}, refused{0};
  std::vector<std::thread> ps;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (std::uint32_t p = 0; p < 4; ++p)
    ps.emplace_back([&, p] {
      // send until the mailbox says closed (bounded by the deadline)
      std::uint64_t n = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        const SendResult r = ref.try_send(Work{p, n});
        if (r == SendResult::ok) {
          ++n;
          ++accepted;
        } else if (r == SendResult::closed) {
          ++refused;
          break;
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  mgr.end();  // producers are still sending
  for (auto& t : ps) t.join();
  CHECK(refused.load() == 4);  // every producer was told, none was left hanging
  CHECK(sink->handled == accepted.load());
  CHECK(sink->handled_at_shutdown == accepted.load());
  CHECK(sink->bad == 0);
  CHECK(ref.try_send(Work{}) == SendResult::closed);
  CHECK(sink->stats().refused_closed >= refused.load());
}

TEST_CASE("manage rejects duplicate names and find/stats see the actors") {
  Manager mgr;
  mgr.emplace<PongActor>("pong", {}, {});
  CHECK_THROWS_WITH_AS(mgr.emplace<PongActor>("pong", {}, {}),
                       doctest::Contains("duplicate actor name 'pong'"), std::invalid_argument);
  CHECK_THROWS_AS(mgr.emplace<PongActor>("", {}, {}), std::invalid_argument);
  CHECK_THROWS_WITH(mgr.emplace<PongActor>("tiny", {}, MailboxConfig{1}),
                    doctest::Contains("capacity 1"));
  CHECK(mgr.find("pong"));
  CHECK_FALSE(mgr.find("nobody"));
  REQUIRE(mgr.stats().size() == 1);
  CHECK(mgr.stats()[0].name == "pong");
}

TEST_CASE("a strict ThreadConfig the OS refuses makes init() throw naming the value") {
  Manager mgr;
  ThreadConfig tc;
  tc.cpus = {4000};
  tc.strict = true;
  mgr.emplace<PongActor>("pinned", tc, {});
  CHECK_THROWS_WITH_AS(mgr.init(), doctest::Contains("CPU 4000 does not exist"), std::runtime_error);
}

TEST_CASE("a non-strict refused ThreadConfig warns and the actor still runs") {
  Manager mgr;
  ThreadConfig tc;
  tc.cpus = {4000};
  tc.policy = SchedPolicy::fifo;
  tc.priority = 500;
  ActorRef pong = mgr.emplace<PongActor>("pinned", tc, {});
  mgr.init();
  const ThreadReport rep = mgr.thread_report("pinned");
  CHECK_FALSE(rep.ok);
  REQUIRE(rep.problems.size() == 2);
  CHECK(rep.problems[0].find("CPU 4000") != std::string::npos);
  CHECK(rep.problems[1].find("priority 500") != std::string::npos);
  FastReply r = pong.fast_send(Ping{3});
  REQUIRE(r.get<Pong>());
  CHECK(r.get<Pong>()->count == 3);
  mgr.end();
}

TEST_CASE("a handler that throws is logged and counted; the actor keeps running") {
  struct Thrower : Actor {
    Thrower() { handle<&Thrower::on_ping>(); }
    void on_ping(const Ping& p) {
      if (p.count == 1) throw std::runtime_error("boom");
      ++ok;
    }
    std::atomic<int> ok{0};
  };
  Manager mgr;
  auto* t = new Thrower;
  ActorRef r = mgr.manage("thrower", std::unique_ptr<Actor>(t));
  mgr.init();
  (void)r.send(Ping{1});
  (void)r.send(Ping{2});
  REQUIRE(wait_until([&] { return t->ok.load() == 1; }));
  mgr.end();
  CHECK(t->stats().handler_exceptions == 1);
  CHECK(t->stats().handled == 2);
}

TEST_CASE("instrumentation records queue wait and handler time per actor, off by default") {
  {
    Manager mgr;
    ActorRef pong = mgr.emplace<PongActor>("pong", {}, {});
    CHECK(pong.actor()->queue_wait_histogram() == nullptr);
    CHECK(pong.actor()->handler_time_histogram() == nullptr);
  }
  Manager mgr;
  mgr.instrument();
  ActorRef pong = mgr.emplace<PongActor>("pong", {}, {});
  auto* ping = new PingActor(pong, 1000);
  mgr.manage("ping", std::unique_ptr<Actor>(ping));
  mgr.init();
  mgr.run();  // ping terminates after 1000 round trips
  mgr.end();
  const Histogram* q = pong.actor()->queue_wait_histogram();
  const Histogram* h = pong.actor()->handler_time_histogram();
  REQUIRE(q != nullptr);
  REQUIRE(h != nullptr);
  CHECK(q->count() == 1000);
  CHECK(h->count() == 1000);
  CHECK(q->max() > 0);
  CHECK(q->value_at_percentile(50) < 1'000'000'000);  // sane: under a second
}
